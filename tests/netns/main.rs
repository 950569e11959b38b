//! Network-namespace end-to-end suite: each test builds a small world of Linux network namespaces
//! (a CI job's client, an API server, and sometimes a proxy or a router between them) with real
//! DNS (unbound), proxies (tinyproxy, squid), firewalls (nft) and an MTU black hole, breaks it in
//! one way, and checks that kube-reach names that break as the root cause.
//!
//! Two kinds of tests per case:
//! - `world_*` prove the world itself with real clients in the client namespace (dig, getent,
//!   curl, and kubectl-compatible HTTPS from an in-process server), independently of kube-reach;
//! - the others run `kube-reach --json -` there against `kube-reach demo-server`, and assert the
//!   root cause `{check, reason}`, that later layers are skipped as blocked, the exit status, the
//!   evidence a person needs, and a bound on the time to verdict.
//!
//! Needs root (with CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip`, `nft`, `unbound`, `tinyproxy`,
//! `squid`, `nginx`, `haproxy`, `dig`, `curl`. Where any is missing, every world test prints `netns SKIPPED <test>:
//! missing …` and passes, so `cargo test` passes on any machine; with `KUBE_REACH_REQUIRE_NETNS=1`
//! (`.ci/run` sets it) it fails instead, naming what is missing. Run:
//!
//! ```sh
//! cargo test --test netns -- --test-threads 8
//! ```
//!
//! (most of a test's time is spent waiting for a timeout, so more threads than cores pay off).
//! `cargo test --test netns ::world_` proves the worlds alone (no kube-reach needed), and
//! `cargo test --test netns self_test` checks the assertions themselves (no root needed). See
//! `kubectl.rs` for the comparison table and `bench.sh` for timings.

#[path = "../common/child.rs"]
mod child;
#[path = "../common/kubeconfig.rs"]
mod common_kubeconfig;
#[path = "../common/kubectl.rs"]
mod common_kubectl;
mod dns;
mod firewall;
mod fixture;
mod haproxy;
mod kubeconfig;
mod kubectl;
mod mtu;
mod nginx;
mod pki;
mod proxy;
mod reach;
#[path = "../common/report.rs"]
mod report;
mod site;
mod sys;
mod world;

mod cases;
