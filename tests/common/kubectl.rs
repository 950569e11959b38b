//! The real kubectl for the cross-checks (the loopback `kubectl_crosscheck` suite and the
//! netns suite's comparison). A machine without kubectl skips them, saying so; with
//! `KUBE_REACH_REQUIRE_KUBECTL=1` (`.ci/run` sets it, after installing kubectl) a missing kubectl
//! fails the test instead, so CI can never pass a cross-check that did not run.

use std::path::PathBuf;

/// The variable that turns a skip into a failure.
pub const REQUIRE_VAR: &str = "KUBE_REACH_REQUIRE_KUBECTL";

/// The first `kubectl` file on `search_path` (a `PATH`-style list).
pub fn find_on(search_path: &str) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

/// kubectl on `search_path`, or `None` after saying (on stdout and stderr) that `what` is
/// skipped; panics instead when [`REQUIRE_VAR`] is `1`.
pub fn kubectl_or_skip(search_path: &str, what: &str) -> Option<PathBuf> {
    let found = find_on(search_path);
    if found.is_none() {
        skip_or_fail(what, std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1"));
    }
    found
}

/// Says that `what` is skipped for want of kubectl, or panics when kubectl is `required`.
fn skip_or_fail(what: &str, required: bool) {
    let message = format!("{what} SKIPPED: kubectl is not on PATH");
    assert!(!required, "{message}, and {REQUIRE_VAR}=1 requires it");
    println!("{message}");
    eprintln!("{message}");
}

#[cfg(test)]
mod self_test {
    #[test]
    #[should_panic(expected = "KUBE_REACH_REQUIRE_KUBECTL=1 requires it")]
    fn a_required_kubectl_that_is_missing_fails() {
        super::skip_or_fail("cross-check", true);
    }

    #[test]
    fn kubectl_is_found_only_where_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().display().to_string();
        assert_eq!(super::find_on(&path), None);
        std::fs::write(dir.path().join("kubectl"), "").expect("write");
        assert_eq!(super::find_on(&path), Some(dir.path().join("kubectl")));
    }
}
