//! An in-cluster world for the fake API server, read from a JSON file (`demo-server
//! --in-cluster-fixture`): the runner pod's service-account token and identity, and the objects
//! the API serves (NetworkPolicies, the pod, `default/kubernetes` and its EndpointSlices).
//!
//! ```json
//! {"token": "…", "namespace": "gitlab", "serviceAccount": "runner",
//!  "networkPolicies": [], "pods": [], "services": [], "endpointSlices": []}
//! ```

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::apiserver::ApiServerOptions;
use super::apiserver::routes::Objects;
use super::rbac::{Rule, User, deploy_rules};

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InClusterFixture {
    /// The token the pod's service account presents.
    pub token: String,
    pub namespace: String,
    pub service_account: String,
    #[serde(default)]
    pub network_policies: Vec<NetworkPolicy>,
    #[serde(default)]
    pub pods: Vec<Pod>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub endpoint_slices: Vec<EndpointSlice>,
}

impl InClusterFixture {
    /// Reads the fixture, naming the file and what was expected when it is wrong.
    pub fn read(path: &Path) -> Result<InClusterFixture, String> {
        let bytes = crate::env::read_bounded(path)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not an in-cluster fixture (JSON with token, namespace, serviceAccount and optional networkPolicies, pods, services, endpointSlices): {e}",
                path.display()
            )
        })
    }

    /// Adds the service account (allowed to deploy in its namespace and to read what
    /// `netpol.egress` needs) and the objects to `options`.
    pub fn apply(self, options: &mut ApiServerOptions) {
        let ns = self.namespace.as_str();
        let mut rules: Vec<Rule> = deploy_rules()
            .into_iter()
            .map(|r| r.in_namespaces(&[ns]))
            .collect();
        rules.extend([
            Rule::new(&["get"], &[""], &["pods"]).in_namespaces(&[ns]),
            Rule::new(&["get"], &[""], &["services"]).in_namespaces(&["default"]),
            Rule::new(&["list"], &["discovery.k8s.io"], &["endpointslices"])
                .in_namespaces(&["default"]),
        ]);
        let user = User::service_account(ns, &self.service_account, "uid-in-cluster", rules);
        options.tokens.push((self.token, user));
        options.network_policies.extend(self.network_policies);
        options.objects = Objects {
            pods: self.pods,
            services: self.services,
            endpoint_slices: self.endpoint_slices,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_file_becomes_a_token_and_objects_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fixture.json");
        std::fs::write(
            &path,
            r#"{"token": "t", "namespace": "gitlab", "serviceAccount": "runner",
                "networkPolicies": [{"metadata": {"name": "deny", "namespace": "gitlab"}, "spec": {"podSelector": {}}}]}"#,
        )
        .expect("write");
        let mut options = ApiServerOptions::default();
        InClusterFixture::read(&path)
            .expect("valid")
            .apply(&mut options);
        let (_, user) = options.tokens.last().expect("token");
        assert_eq!(user.username, "system:serviceaccount:gitlab:runner");
        assert!(user.can("list", "networking.k8s.io", "networkpolicies", "gitlab"));
        assert_eq!(options.network_policies.len(), 1);
        std::fs::write(&path, r#"{"token": 1}"#).expect("write");
        let err = InClusterFixture::read(&path).expect_err("invalid");
        assert!(
            err.contains("fixture.json") && err.contains("serviceAccount"),
            "{err}"
        );
    }
}
