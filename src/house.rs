//! Tests that read this crate's own source to pin rules of the house the compiler cannot:
//! modules form no cycle, and every `(check, reason)` a check builds has a catalogue row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::catalogue::CATALOGUE;
use crate::vocab::{CheckId, Reason};

/// Every `.rs` file under `src/`, with its module path (`checks::tls::trust`; `lib.rs` is "").
fn source_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut pending = vec![root.clone()];
    let mut files = Vec::new();
    // Bounded: the tree is this crate's own source.
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !is_test_only(&path) {
                let text = std::fs::read_to_string(&path).expect("source file");
                files.push((
                    module_path(&root, &path),
                    strip_comments(without_tests(&text)),
                ));
            }
        }
    }
    files.sort();
    files
}

/// Test-only files (`tests.rs`, `trust_tests.rs`, `test_support.rs`): a test may reach
/// across the house to build its fixtures; the graph is about what the shipped code uses.
fn is_test_only(path: &Path) -> bool {
    path.file_stem()
        .is_some_and(|s| s == "tests" || s.to_string_lossy().contains("test_"))
        || path
            .file_stem()
            .is_some_and(|s| s.to_string_lossy().ends_with("_tests"))
}

/// The source up to its first `#[cfg(test)]` module (a file keeps its tests at the end).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod ").map_or(text, |i| &text[..i])
}

fn module_path(root: &Path, file: &Path) -> String {
    let relative: PathBuf = file
        .strip_prefix(root)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without `//` comments, so doc links and prose do not count as uses.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The node a module belongs to in the graph: its first two path segments.
fn node_of(module: &str) -> String {
    module.split("::").take(2).collect::<Vec<_>>().join("::")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first two segments of every path in the `use` tree that starts at `text`
/// (`{catalogue::{self, CheckId}, model}` → `catalogue::self`, `catalogue::CheckId`, `model`).
fn path_heads(text: &str) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        return top_level_items(group)
            .iter()
            .flat_map(|item| path_heads(item))
            .collect();
    }
    let ident: String = text.chars().take_while(|c| is_ident_char(*c)).collect();
    if ident.is_empty() {
        return Vec::new();
    }
    let tails = text[ident.len()..]
        .strip_prefix("::")
        .map(path_heads)
        .unwrap_or_default();
    if tails.is_empty() {
        return vec![vec![ident]];
    }
    tails
        .into_iter()
        .map(|tail| {
            [vec![ident.clone()], tail]
                .concat()
                .into_iter()
                .take(2)
                .collect()
        })
        .collect()
}

/// The comma-separated items of a `{…}` group whose opening brace was just consumed.
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut depth = 0usize;
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = items.last_mut() {
            last.push(c);
        }
    }
    items
        .into_iter()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect()
}

/// The node a path used from `module` names: `crate::a::b…` or `super::…`, resolved to the
/// deepest of its first two segments that is a module.
fn resolve(modules: &BTreeSet<String>, base: &[&str], head: &[String]) -> Option<String> {
    let mut path: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    path.extend(head.iter().cloned());
    let two = path.iter().take(2).cloned().collect::<Vec<_>>().join("::");
    if modules.contains(&two) {
        return Some(two);
    }
    path.first().filter(|m| modules.contains(*m)).cloned()
}

/// Edges between graph nodes, from every `crate::` and `super::` path in the source.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = source_files();
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &files {
        let from = node_of(module);
        let segments: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        for (marker, base) in [
            ("crate::", Vec::new()),
            (
                "super::",
                segments[..segments.len().saturating_sub(1)].to_vec(),
            ),
        ] {
            for (at, _) in text.match_indices(marker) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| is_ident_char(c) || c == '$' || c == ':') {
                    continue;
                }
                for head in path_heads(&text[at + marker.len()..]) {
                    let Some(to) = resolve(&modules, &base, &head) else {
                        continue;
                    };
                    let to = node_of(&to);
                    let related = to == from
                        || to.starts_with(&format!("{from}::"))
                        || from.starts_with(&format!("{to}::"));
                    if !related {
                        graph.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    graph
}

/// One cycle in `graph`, as the nodes along it, if there is any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// The nodes `from` reaches in `graph` (itself only through a cycle).
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<&String> = graph.get(from).into_iter().flatten().collect();
    while let Some(node) = pending.pop() {
        if seen.insert(node.clone()) {
            pending.extend(graph.get(node).into_iter().flatten());
        }
    }
    seen
}

/// Every edge that lies on a cycle, as `from -> to`.
fn edges_on_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (from, targets) in graph {
        for to in targets {
            if reachable(graph, to).contains(from) {
                out.push(format!("{from} -> {to}"));
            }
        }
    }
    out
}

#[test]
fn modules_form_no_cycle() {
    let graph = module_graph();
    assert!(
        graph
            .get("model")
            .is_some_and(|uses| uses.contains("catalogue")),
        "the graph sees `use crate::catalogue` in model.rs: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "module cycle: {}\nedges on cycles:\n{}",
            cycle.join(" -> "),
            edges_on_cycles(&graph).join("\n")
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c::d"), ("c::d", "a"), ("a", "e")] {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(
        find_cycle(&graph).map(|c| c.join(" -> ")),
        Some("a -> b -> c::d -> a".to_string())
    );
    graph.entry("c::d".into()).or_default().remove("a");
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn use_trees_are_read_to_two_segments() {
    let heads: Vec<String> = path_heads("{catalogue::{self, CheckId}, model, net::http::get};")
        .iter()
        .map(|h| h.join("::"))
        .collect();
    assert_eq!(
        heads,
        [
            "catalogue::self",
            "catalogue::CheckId",
            "model",
            "net::http"
        ]
    );
}

/// The identifiers that follow each `prefix` (`Reason::` → `Timeout`, `Refused`…) in `text`.
fn names_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .filter(|(at, _)| !text[..*at].ends_with(is_ident_char))
        .map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            &rest[..rest.find(|c| !is_ident_char(c)).unwrap_or(rest.len())]
        })
        .collect()
}

/// The arguments of the call whose `(` was just consumed, split at top-level commas.
fn call_arguments(text: &str) -> Vec<&str> {
    let mut args = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => {
                // rustfmt ends a call split over lines with a comma: no argument follows it.
                let last = text[start..i].trim();
                if !last.is_empty() || args.is_empty() {
                    args.push(last);
                }
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    args
}

/// The statement `let <name> = …;` nearest before the end of `before`, if any.
fn binding<'a>(before: &'a str, name: &str) -> Option<&'a str> {
    let at = before.rfind(&format!("let {name} = "))?;
    let statement = &before[at..];
    let mut depth = 0usize;
    for (i, c) in statement.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => return Some(&statement[..i]),
            _ => {}
        }
    }
    Some(statement)
}

/// What an argument names: `CheckId::X`/`Reason::X` written there, or in the `let` that bound
/// the variable it is. Empty when the value comes from further away (a parameter, a call).
fn named<'a>(argument: &'a str, before: &'a str, prefix: &str) -> Vec<&'a str> {
    let direct = names_after(argument, prefix);
    if !direct.is_empty() || !argument.chars().all(is_ident_char) {
        return direct;
    }
    binding(before, argument).map_or_else(Vec::new, |b| names_after(b, prefix))
}

/// Every `(check, reason)` a `CheckResult::finding(…)` call in the shipped source builds, as
/// far as reading the call and the `let` bindings before it tells; `None` for a check that
/// comes from a parameter.
fn constructed_pairs() -> Vec<(String, Option<CheckId>, Reason)> {
    let check = |name: &str| {
        CheckId::ALL
            .iter()
            .copied()
            .find(|c| c.variant_name() == name)
    };
    let reason = |name: &str| {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| r.variant_name() == name)
    };
    let mut pairs = Vec::new();
    // This file names the call in its own strings.
    for (module, text) in source_files().into_iter().filter(|(m, _)| m != "house") {
        let calls = text
            .match_indices("::finding(")
            .chain(text.match_indices("::finding_for("));
        for (at, call) in calls {
            let args = call_arguments(&text[at + call.len()..]);
            // Bindings count only inside the calling function.
            let before = &text[..at];
            let before = before.rfind("fn ").map_or(before, |f| &before[f..]);
            // A call the reader cannot split is a gap in the test, never skipped quietly (a
            // trailing comma once hid every call rustfmt had split over lines).
            // `finding_for` adds the target kind after the reason.
            let (&[id, _, why] | &[id, _, why, _]) = &args[..] else {
                panic!(
                    "{module}: cannot read the arguments of {}",
                    &text[at..at + 60]
                );
            };
            let mut ids: Vec<Option<CheckId>> = named(id, before, "CheckId::")
                .into_iter()
                .chain(named(id, before, "C::"))
                .map(check)
                .collect();
            if ids.is_empty() {
                ids.push(None);
            }
            for r in named(why, before, "Reason::")
                .into_iter()
                .filter_map(reason)
            {
                pairs.extend(ids.iter().map(|id| (module.clone(), *id, r)));
            }
        }
    }
    pairs
}

#[test]
fn every_constructed_finding_has_a_catalogue_row() {
    let pairs = constructed_pairs();
    let seen = |check: CheckId, reason: Reason| {
        pairs
            .iter()
            .any(|(_, c, r)| *c == Some(check) && *r == reason)
    };
    // The reader sees what it must: a literal pair, and a `let id = CheckId::…` binding.
    assert!(
        seen(CheckId::DnsResolve, Reason::PrivateAnswer),
        "{pairs:?}"
    );
    assert!(seen(CheckId::HttpHealth, Reason::NotReady), "{pairs:?}");
    // …a finding built for a target kind…
    assert!(seen(CheckId::TlsValidity, Reason::NotYetValid), "{pairs:?}");
    // …and a call rustfmt split over lines, which ends with a comma.
    assert!(
        seen(CheckId::GitlabAllowedAgents, Reason::JobTokenRejected),
        "{pairs:?}"
    );
    let has_row = |check: Option<CheckId>, reason: Reason| {
        CATALOGUE.iter().any(|e| {
            e.reason == reason && (e.check.is_none() || check.is_none() || e.check == check)
        })
    };
    let missing: Vec<String> = pairs
        .iter()
        .filter(|(_, c, r)| !has_row(*c, *r))
        .map(|(m, c, r)| {
            let check = c.map_or("(any check)", |c| c.as_str());
            format!("{m}: {check} {}", r.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "findings with no catalogue row (they would read \"unclassified finding\"):\n{}",
        missing.join("\n")
    );
}
