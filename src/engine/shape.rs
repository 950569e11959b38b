//! The report's shape: which rows a target of each kind always has, and the skip rows for the
//! ones the run did not reach. The engine records what it observed and stops where a layer
//! failed (or the deadline struck); [`fill`] then adds every row of the shape that is missing,
//! `skip` and `blocked_by` the failure that stopped it. So the set of rows (and the JUnit test
//! names built from them) is a function of the target's kind, route and requirements, never
//! of which layer failed.

use crate::catalogue::CheckId;
use crate::model::{CheckResult, Status};
use crate::plan::{Requirement, Target};

pub use super::pipeline::Row;

/// The rows of `target` in pipeline order: the connection layers along its route, then what its
/// kind asks of the server (its [`pipeline`](super::pipeline)). A GitLab server is asked
/// GitLab's questions, never Kubernetes' ones.
pub fn rows(target: &Target, requirements: &[Requirement]) -> Vec<Row> {
    super::pipeline::steps(target.kind)
        .flat_map(|step| step.rows(target, requirements))
        .collect()
}

/// The first row the results have not filled: where a run that stopped between checks was.
pub fn first_missing<'r>(rows: &'r [Row], results: &[CheckResult]) -> Option<&'r Row> {
    rows.iter()
        .find(|row| !results.iter().any(|r| row.is_filled_by(r)))
}

/// Adds a skip row for every row of the shape that `results` do not fill, `blocked_by` what
/// stopped the run before it.
pub fn fill(rows: &[Row], results: &mut Vec<CheckResult>) {
    for (at, row) in rows.iter().enumerate() {
        if results.iter().any(|r| row.is_filled_by(r)) {
            continue;
        }
        let filler = match blocker(rows, at, results) {
            Some(b) => CheckResult::blocked(row.id, row.subject.clone(), &b),
            None => CheckResult::not_applicable(row.id, row.subject.clone(), "not reached"),
        };
        results.push(filler);
    }
}

/// Where `result` sits in the pipeline: the row it fills, else (the `config.*` findings, which
/// stop the steps that need what they judged) before every row.
fn position(rows: &[Row], result: &CheckResult) -> Option<usize> {
    rows.iter().position(|row| row.is_filled_by(result))
}

/// What stopped the row at `at`: the latest barrier before it in the pipeline, a failure
/// (a `config.*` one counts as first; the earliest of those wins), else a warning of a step
/// (withheld credentials stop RBAC without failing). `http.health` never stops anything: a
/// server that is not ready still answers, and the steps after it run.
fn blocker(rows: &[Row], at: usize, results: &[CheckResult]) -> Option<CheckResult> {
    let before = |r: &&CheckResult| position(rows, r).is_none_or(|p| p < at);
    let latest = |candidates: Vec<&CheckResult>| {
        candidates
            .into_iter()
            .enumerate()
            .max_by_key(|(i, r)| (position(rows, r).map(|p| p + 1), std::cmp::Reverse(*i)))
            .map(|(_, r)| r.clone())
    };
    let failed: Vec<&CheckResult> = results
        .iter()
        .filter(before)
        .filter(|r| r.status.is_failure() && r.id != CheckId::HttpHealth)
        .collect();
    if !failed.is_empty() {
        return latest(failed);
    }
    latest(
        results
            .iter()
            .filter(before)
            .filter(|r| r.status == Status::Warn && position(rows, r).is_some())
            .collect(),
    )
}

#[cfg(test)]
mod tests;
