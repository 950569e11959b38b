//! Secrets never leave (spec §5), tested the way an attacker or a careless user would try:
//! hostile servers on loopback that echo our credentials back in every place evidence is taken
//! from, one test per leak class found in issue 9, and property tests that put fresh canary
//! secrets in every position of random, corrupted inputs. Everything binds to 127.0.0.1 and
//! nothing resolves through the system resolver (IP literals and the world's own hosts file).

#[path = "common/child.rs"]
mod child;
#[path = "common/kubeconfig.rs"]
mod kubeconfig;
#[path = "common/report.rs"]
mod report;
#[path = "loopback/support.rs"]
#[allow(dead_code, unused_imports)]
mod support;

#[path = "secrets/attacks.rs"]
mod attacks;
#[path = "secrets/hostile.rs"]
mod hostile;
#[path = "secrets/leaks.rs"]
mod leaks;
#[path = "secrets/outputs.rs"]
mod outputs;
#[path = "secrets/props.rs"]
mod props;
