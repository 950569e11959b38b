//! kube-reach: diagnoses, layer by layer, the path from a CI job to its Kubernetes API server.
//!
//! Data flows one way: `cli` parses flags (bad flags exit 2 before anything runs) and `env`
//! captures the job's surroundings once; `plan` turns both into targets, each already carrying
//! its `config.*` results, without touching the network. `engine` walks every target through
//! the layers (config → runner → dns → tcp or proxy → tls → http → auth → rbac), asking `net`
//! for typed outcomes and turning them into `CheckResult`s through the `catalogue`; `verdict`
//! derives root causes; `secret` scrubs every string; the `report` sinks write from the same
//! finished `RunReport`.

pub mod catalogue;
pub mod checks;
pub mod cli;
pub mod credential_plugin;
pub mod demo;
pub mod engine;
pub mod env;
pub mod error;
pub mod exec;
pub mod gitlab;
pub mod guard;
pub mod in_process;
pub mod model;
pub mod net;
pub mod plan;
pub mod report;
pub mod secret;
pub mod targets;
pub mod verdict;
pub mod x509;
