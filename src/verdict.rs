//! Root cause and verdicts: pure functions over finished results. The layer order lives in
//! `Layer::rank`; the first `fail` or `error` in that order (ties broken by the order checks
//! ran) is the root cause, because everything after it is a consequence.

use crate::model::{CheckResult, RootCause, Status, Verdict};

pub fn root_cause(checks: &[CheckResult]) -> Option<RootCause> {
    checks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.status.is_failure())
        .min_by_key(|(i, c)| (c.layer().rank(), *i))
        .map(|(_, c)| RootCause {
            check: c.id,
            reason: c.reason.unwrap_or(crate::catalogue::Reason::Internal),
        })
}

pub fn verdict(checks: &[CheckResult]) -> Verdict {
    let worst = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    match worst {
        Status::Fail | Status::Error => Verdict::Fail,
        Status::Warn => Verdict::Warn,
        Status::Pass | Status::Skip => Verdict::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{CheckId, Reason};

    #[test]
    fn the_lowest_layer_failure_is_the_root_cause_whatever_the_order() {
        let checks = vec![
            CheckResult::finding(CheckId::AuthWhoami, "x", Reason::Unauthorized),
            CheckResult::pass(CheckId::DnsResolve, "x", "ok"),
            CheckResult::finding(CheckId::TlsTrust, "x", Reason::UnknownAuthority),
            CheckResult::finding(CheckId::TcpConnect, "a", Reason::Timeout)
                .with_status(Status::Warn),
        ];
        let rc = root_cause(&checks).expect("a failure");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::TlsTrust, Reason::UnknownAuthority)
        );
        assert_eq!(verdict(&checks), Verdict::Fail);
        assert_eq!(verdict(&checks[1..2]), Verdict::Pass);
        assert_eq!(verdict(&checks[3..]), Verdict::Warn);
    }
}
