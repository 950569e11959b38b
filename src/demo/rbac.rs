//! Identities and a tiny RBAC model for the fake API server: enough to answer
//! SelfSubjectAccessReview / SelfSubjectRulesReview and to deny a list with a real-looking 403.

/// One allow rule, like a (Cluster)Role rule bound to the user. `"*"` matches anything;
/// an empty `namespaces` list means every namespace and the cluster scope (a ClusterRoleBinding),
/// a non-empty one only those namespaces (RoleBindings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Verbs, e.g. `get`, `create`.
    pub verbs: Vec<String>,
    /// API groups, `""` for the core group.
    pub groups: Vec<String>,
    /// Resources (plural), e.g. `deployments`.
    pub resources: Vec<String>,
    /// Namespaces the rule is bound in; empty = cluster-wide.
    pub namespaces: Vec<String>,
}

impl Rule {
    /// A cluster-wide rule.
    pub fn new(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        Rule {
            verbs: strings(verbs),
            groups: strings(groups),
            resources: strings(resources),
            namespaces: Vec::new(),
        }
    }

    /// Restricts the rule to `namespaces` (as a RoleBinding would).
    pub fn in_namespaces(mut self, namespaces: &[&str]) -> Self {
        self.namespaces = strings(namespaces);
        self
    }

    /// Whether this rule allows `verb` on `group`/`resource` in `namespace` (`""` = cluster scope).
    pub fn allows(&self, verb: &str, group: &str, resource: &str, namespace: &str) -> bool {
        matches_any(&self.verbs, verb)
            && matches_any(&self.groups, group)
            && matches_any(&self.resources, resource)
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace))
    }

    /// Whether the rule applies to requests in `namespace` (for SelfSubjectRulesReview).
    pub fn applies_in(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

/// An authenticated identity as the API server sees it, with the rules bound to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// `user.username`, e.g. `system:serviceaccount:ci:deployer`.
    pub username: String,
    /// `user.uid` (empty for client-certificate users, as in Kubernetes).
    pub uid: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
    /// What the user may do.
    pub rules: Vec<Rule>,
}

impl User {
    /// A service account `system:serviceaccount:NS:NAME` with its standard groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str, rules: Vec<Rule>) -> Self {
        User {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            rules,
        }
    }

    /// The anonymous identity a server assigns to requests without credentials.
    pub fn anonymous() -> Self {
        User {
            username: ANONYMOUS.into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            rules: Vec::new(),
        }
    }

    /// Whether the user is `system:anonymous`.
    pub fn is_anonymous(&self) -> bool {
        self.username == ANONYMOUS
    }

    /// RBAC decision: the user's own rules plus `system:basic-user` (every authenticated user may
    /// create self-reviews, as in a default cluster).
    pub fn can(&self, verb: &str, group: &str, resource: &str, namespace: &str) -> bool {
        let basic =
            !self.is_anonymous() && verb == "create" && SELF_REVIEWS.contains(&(group, resource));
        basic
            || self
                .rules
                .iter()
                .any(|r| r.allows(verb, group, resource, namespace))
    }
}

/// Username Kubernetes gives requests that carry no credentials.
pub const ANONYMOUS: &str = "system:anonymous";

/// Self-review resources every authenticated user may create (ClusterRole `system:basic-user`).
pub const SELF_REVIEWS: &[(&str, &str)] = &[
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
];

/// What a deploy job needs (spec §4 defaults) plus reading NetworkPolicies, so a healthy demo
/// lets every check run: pods get/list/watch; deployments.apps, services, configmaps, secrets
/// get/list/watch/create/patch/update; networkpolicies get/list/watch. Cluster-wide.
pub fn deploy_rules() -> Vec<Rule> {
    const EDIT: &[&str] = &["get", "list", "watch", "create", "patch", "update"];
    const READ: &[&str] = &["get", "list", "watch"];
    vec![
        Rule::new(READ, &[""], &["pods"]),
        Rule::new(EDIT, &["apps"], &["deployments"]),
        Rule::new(EDIT, &[""], &["services", "configmaps", "secrets"]),
        Rule::new(READ, &["networking.k8s.io"], &["networkpolicies"]),
    ]
}

fn matches_any(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| p == "*" || p == value)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_rules_cover_the_spec_defaults_and_nothing_else() {
        let user = User::service_account("ci", "deployer", "u", deploy_rules());
        for (verb, group, resource) in [
            ("list", "", "pods"),
            ("create", "apps", "deployments"),
            ("patch", "", "secrets"),
            ("update", "", "configmaps"),
            ("list", "networking.k8s.io", "networkpolicies"),
        ] {
            assert!(user.can(verb, group, resource, "prod"), "{verb} {resource}");
        }
        assert!(!user.can("delete", "apps", "deployments", "prod"));
        assert!(
            !user.can("create", "", "deployments", "prod"),
            "wrong group"
        );
        assert!(!user.can("list", "", "nodes", ""));
        assert!(user.can(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            ""
        ));
    }

    #[test]
    fn namespaced_rules_and_wildcards() {
        let rule = Rule::new(&["*"], &["*"], &["*"]).in_namespaces(&["ci"]);
        assert!(rule.allows("delete", "apps", "deployments", "ci"));
        assert!(!rule.allows("delete", "apps", "deployments", "prod"));
        assert!(!rule.allows("list", "", "nodes", ""));
        assert!(!User::anonymous().can(
            "create",
            "authentication.k8s.io",
            "selfsubjectreviews",
            ""
        ));
    }
}
