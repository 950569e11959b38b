//! Loopback integration tests: the real engine against the project's own fake API server
//! (real TLS with certificates made here, HTTP/2, a real CONNECT proxy), asserting the root
//! cause `{check, reason}` of every failure class reachable on 127.0.0.1, and that nothing
//! downstream is blamed. Everything binds to 127.0.0.1 and nothing resolves through the
//! system resolver (IP literals, or a hosts file and an empty resolv.conf made here).

#[path = "common/child.rs"]
mod child;
#[path = "common/kubeconfig.rs"]
mod kubeconfig;
#[path = "common/kubectl.rs"]
mod kubectl;
#[path = "common/report.rs"]
mod report;
#[path = "loopback/support.rs"]
mod support;

#[path = "loopback/client_cert.rs"]
mod client_cert;
#[path = "loopback/discovery.rs"]
mod discovery;
#[path = "loopback/exec_plugin.rs"]
mod exec_plugin;
#[path = "loopback/field_attacks.rs"]
mod field_attacks;
#[path = "loopback/fleet.rs"]
mod fleet;
#[path = "loopback/fleet_hostile.rs"]
mod fleet_hostile;
#[path = "loopback/gitlab_view.rs"]
mod gitlab_view;
#[path = "loopback/hostile2.rs"]
mod hostile2;
#[path = "loopback/hostile_pipe.rs"]
mod hostile_pipe;
#[path = "loopback/impersonation.rs"]
mod impersonation;
#[path = "loopback/in_cluster.rs"]
mod in_cluster;
#[path = "loopback/kubeconfig_content.rs"]
mod kubeconfig_content;
#[path = "loopback/odd_certs.rs"]
mod odd_certs;
#[path = "loopback/outputs.rs"]
mod outputs;
#[path = "loopback/protocols.rs"]
mod protocols;
#[path = "loopback/python_fake.rs"]
mod python_fake;
#[path = "loopback/reasons.rs"]
mod reasons;
#[path = "loopback/robust.rs"]
mod robust;
#[path = "loopback/shape.rs"]
mod shape;
#[path = "loopback/tools.rs"]
mod tools;
#[path = "loopback/trust.rs"]
mod trust;
