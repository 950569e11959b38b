//! kube-reach: diagnoses, layer by layer, the path from a CI job to its Kubernetes API server.
//!
//! Data flows one way: `cli` parses flags (bad flags exit 2 before anything runs) and `env`
//! captures the job's surroundings once; `plan` turns both into targets, each already carrying
//! its `config.*` results, without touching the network. `engine` walks every target through
//! the layers (config → runner → dns → tcp or proxy → tls → http → auth → rbac), asking `net`
//! for typed outcomes and turning them into `CheckResult`s through the `catalogue`; `verdict`
//! derives root causes; `secret` scrubs every string; the `report` sinks write from the same
//! finished `RunReport`.
//!
//! Everything speaks the words of `vocab` (check ids with their layer, reasons, layers,
//! statuses, kinds), a leaf the catalogue and the model build on. The modules the binary and
//! the integration tests use are `pub`; the rest are crate-private. `in_process` is the one
//! entry the integration tests run a whole diagnosis through without a process (flags and an
//! `Env` in, the texts of the job log, JSON and JUnit out).

pub mod catalogue;
pub(crate) mod checks;
pub mod cli;
pub(crate) mod credential_plugin;
pub mod demo;
pub mod engine;
pub mod env;
pub(crate) mod error;
pub(crate) mod exec;
pub mod gitlab;
pub mod guard;
#[cfg(test)]
mod house;
pub mod in_process;
pub mod model;
pub mod net;
pub mod plan;
pub mod report;
pub mod secret;
pub mod targets;
pub(crate) mod verdict;
pub mod vocab;
pub(crate) mod x509;
