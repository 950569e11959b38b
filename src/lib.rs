//! kube-reach: diagnoses, layer by layer, the path from a CI job to its Kubernetes API server.
pub mod demo;
