//! The Kubernetes behaviour of the fake API server: authentication, the routes kubectl and the
//! tool use, and response bodies shaped like kube-apiserver's (`Status` objects, legacy
//! discovery documents, reviews echoing their spec).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::body::{self, BodyError, ReviewKind};
use super::{Anonymous, RequestRecord, Shared};
use crate::demo::rbac::{SELF_REVIEWS, User};

/// Largest request body read (reviews are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// A response before the common headers are added.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
}

impl Reply {
    fn json(status: StatusCode, value: &impl Serialize) -> Reply {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Reply {
            status,
            content_type: "application/json",
            body: Bytes::from(body),
        }
    }

    fn text(status: StatusCode, text: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from(text.into()),
        }
    }
}

/// A `meta/v1 Status` failure body, fields in kube-apiserver's order.
#[derive(Serialize)]
struct Status<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Value,
    status: &'static str,
    message: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
    code: u16,
}

fn status(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Reply {
    let body = Status {
        kind: "Status",
        api_version: "v1",
        metadata: json!({}),
        status: "Failure",
        message,
        reason,
        details,
        code: code.as_u16(),
    };
    Reply::json(code, &body)
}

fn unauthorized() -> Reply {
    status(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        None,
    )
}

fn not_found() -> Reply {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn method_not_allowed(method: &Method) -> Reply {
    let message =
        format!("the server does not allow this method on the requested resource ({method})");
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &message,
        Some(json!({})),
    )
}

/// What a request asks the authorizer, for 403 messages and access checks.
enum Attributes<'a> {
    NonResource {
        path: &'a str,
    },
    Resource {
        verb: &'static str,
        group: &'static str,
        resource: &'static str,
        namespace: &'a str,
    },
}

/// The 403 kube-apiserver sends when RBAC denies, e.g. `networkpolicies.networking.k8s.io is
/// forbidden: User "X" cannot list resource "networkpolicies" in API group "networking.k8s.io"
/// in the namespace "ci"`.
fn forbidden(user: &User, attributes: &Attributes<'_>) -> Reply {
    let (message, details) = match attributes {
        Attributes::NonResource { path } => (
            format!(
                "forbidden: User \"{}\" cannot get path \"{path}\"",
                user.username
            ),
            json!({}),
        ),
        Attributes::Resource {
            verb,
            group,
            resource,
            namespace,
        } => {
            let qualified = if group.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}.{group}")
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{namespace}\"")
            };
            let message = format!(
                "{qualified} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}",
                user.username
            );
            let details = if group.is_empty() {
                json!({ "kind": resource })
            } else {
                json!({ "group": group, "kind": resource })
            };
            (message, details)
        }
    };
    status(StatusCode::FORBIDDEN, "Forbidden", &message, Some(details))
}

/// The routes the fake knows.
enum Endpoint<'a> {
    Version,
    Livez,
    Readyz,
    Healthz,
    Api,
    Apis,
    GroupVersion {
        group: &'a str,
        version: &'a str,
    },
    SelfSubjectReview,
    AccessReview,
    RulesReview,
    NetworkPolicies {
        namespace: Option<&'a str>,
    },
    /// A fixture object (pod, service) by name, or a list of EndpointSlices.
    Object {
        kind: ObjectKind,
        namespace: &'a str,
        name: Option<&'a str>,
    },
    Unknown,
}

impl<'a> Endpoint<'a> {
    fn parse(path: &'a str) -> Endpoint<'a> {
        let trimmed = path.trim_matches('/');
        let parts: Vec<&str> = trimmed.split('/').collect();
        match parts.as_slice() {
            ["version"] => Endpoint::Version,
            ["livez"] => Endpoint::Livez,
            ["readyz"] => Endpoint::Readyz,
            ["healthz"] => Endpoint::Healthz,
            ["api"] => Endpoint::Api,
            ["apis"] => Endpoint::Apis,
            ["api", "v1"] => Endpoint::GroupVersion {
                group: "",
                version: "v1",
            },
            ["apis", group, version] => Endpoint::GroupVersion { group, version },
            ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"] => {
                Endpoint::SelfSubjectReview
            }
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
            ] => Endpoint::AccessReview,
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectrulesreviews",
            ] => Endpoint::RulesReview,
            ["apis", "networking.k8s.io", "v1", "networkpolicies"] => {
                Endpoint::NetworkPolicies { namespace: None }
            }
            [
                "apis",
                "networking.k8s.io",
                "v1",
                "namespaces",
                ns,
                "networkpolicies",
            ] => Endpoint::NetworkPolicies {
                namespace: Some(ns),
            },
            ["api", "v1", "namespaces", ns, "pods", name] => Endpoint::Object {
                kind: ObjectKind::Pod,
                namespace: ns,
                name: Some(name),
            },
            ["api", "v1", "namespaces", ns, "services", name] => Endpoint::Object {
                kind: ObjectKind::Service,
                namespace: ns,
                name: Some(name),
            },
            [
                "apis",
                "discovery.k8s.io",
                "v1",
                "namespaces",
                ns,
                "endpointslices",
            ] => Endpoint::Object {
                kind: ObjectKind::EndpointSlice,
                namespace: ns,
                name: None,
            },
            _ => Endpoint::Unknown,
        }
    }

    /// Paths `system:public-info-viewer` opens to everyone.
    fn is_public(&self) -> bool {
        matches!(
            self,
            Endpoint::Version | Endpoint::Livez | Endpoint::Readyz | Endpoint::Healthz
        )
    }

    fn attributes<'p>(&self, path: &'p str) -> Attributes<'p>
    where
        'a: 'p,
    {
        let resource = |verb, group, resource, namespace| Attributes::Resource {
            verb,
            group,
            resource,
            namespace,
        };
        match self {
            Endpoint::SelfSubjectReview => {
                resource("create", "authentication.k8s.io", "selfsubjectreviews", "")
            }
            Endpoint::AccessReview => resource(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
            ),
            Endpoint::RulesReview => resource(
                "create",
                "authorization.k8s.io",
                "selfsubjectrulesreviews",
                "",
            ),
            Endpoint::NetworkPolicies { namespace } => resource(
                "list",
                "networking.k8s.io",
                "networkpolicies",
                namespace.unwrap_or(""),
            ),
            Endpoint::Object {
                kind, namespace, ..
            } => {
                let (verb, group, plural) = kind.rbac();
                resource(verb, group, plural, namespace)
            }
            _ => Attributes::NonResource { path },
        }
    }
}

/// Answers one request and records it (without credentials).
pub(crate) async fn handle(
    request: Request<Incoming>,
    shared: &Shared,
    cert_user: Option<&User>,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let query = request.uri().query().unwrap_or("").to_string();
    let http_version = format!("{:?}", request.version());
    let token = bearer_token(request.headers());
    let caller = authenticate(token.as_deref(), cert_user, shared);
    let username = caller.as_ref().ok().map(|u| u.username.clone());
    let acting = caller.and_then(|user| impersonate(request.headers(), user, shared));
    let impersonated = match (&acting, &username) {
        (Ok(user), Some(base)) if &user.username != base => Some(user.username.clone()),
        _ => None,
    };
    let reply = if shared.options.html_front {
        html_login()
    } else {
        match acting {
            Ok(user) => route(request, &method, &path, &query, &user, shared).await,
            Err(reply) => reply,
        }
    };
    shared.record(RequestRecord {
        method: method.to_string(),
        path: path_and_query,
        http_version,
        bearer: token.is_some(),
        client_cert: cert_user.is_some(),
        user: username,
        impersonated,
        status: reply.status.as_u16(),
    });
    finish(reply, shared)
}

/// `Authorization: Bearer X` → X. Other schemes are ignored, as kube-apiserver ignores them.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// kube-apiserver's impersonation filter (`WithImpersonation`), after authentication and before
/// any authorization of the request itself: with `Impersonate-*` headers, the authenticated
/// user must be allowed `impersonate` on `users` (a `system:serviceaccount:<ns>:<name>` user:
/// `serviceaccounts` in `<ns>`), on `groups` for each `Impersonate-Group`,
/// `userextras/<key>` (group `authentication.k8s.io`) for each `Impersonate-Extra-<key>`,
/// and `uids` for `Impersonate-Uid`, or every request is 403 `cannot impersonate`. Allowed,
/// the request acts as the impersonated user: its groups are the `Impersonate-Group` values
/// and `system:authenticated`; its rules those of the configured user of that name, if any.
fn impersonate(headers: &HeaderMap, base: User, shared: &Shared) -> Result<User, Reply> {
    let values = |name: &str| -> Vec<String> {
        (headers.get_all(name).iter())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let user = values("impersonate-user")
        .into_iter()
        .next()
        .unwrap_or_default();
    let uid = values("impersonate-uid")
        .into_iter()
        .next()
        .unwrap_or_default();
    let groups = values("impersonate-group");
    let extras: Vec<(String, String)> = (headers.keys())
        .filter_map(|name| {
            let key = name.as_str().strip_prefix("impersonate-extra-")?;
            let value = headers.get(name)?.as_bytes();
            Some((
                unescape_extra_key(key),
                String::from_utf8_lossy(value).into_owned(),
            ))
        })
        .collect();
    let asked = headers.contains_key("impersonate-user")
        || !uid.is_empty()
        || !groups.is_empty()
        || !extras.is_empty();
    if !asked {
        return Ok(base);
    }
    if user.is_empty() {
        return Err(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "Internal error occurred: requested groups, extra or uid without impersonating a user",
            None,
        ));
    }
    let refuse = |kind: &str, group: &str, resource: &str, name: &str| {
        let qualified = match group {
            "" => kind.to_string(),
            g => format!("{kind}.{g}"),
        };
        let message = format!(
            "{qualified} \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"{group}\" at the cluster scope",
            base.username
        );
        Err(status(StatusCode::FORBIDDEN, "Forbidden", &message, None))
    };
    match user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((namespace, name)) if !base.can("impersonate", "", "serviceaccounts", namespace) => {
            let message = format!(
                "serviceaccounts \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"{namespace}\"",
                base.username
            );
            return Err(status(StatusCode::FORBIDDEN, "Forbidden", &message, None));
        }
        Some(_) => {}
        None if !base.can("impersonate", "", "users", "") => {
            return refuse("users", "", "users", &user);
        }
        None => {}
    }
    for group in &groups {
        if !base.can("impersonate", "", "groups", "") {
            return refuse("groups", "", "groups", group);
        }
    }
    for (key, value) in &extras {
        let resource = format!("userextras/{key}");
        if !base.can("impersonate", "authentication.k8s.io", &resource, "") {
            return refuse("userextras", "authentication.k8s.io", &resource, value);
        }
    }
    if !uid.is_empty() && !base.can("impersonate", "authentication.k8s.io", "uids", "") {
        return refuse("uids", "authentication.k8s.io", "uids", &uid);
    }
    let configured = (shared.options.tokens.iter())
        .map(|(_, known)| known)
        .find(|known| known.username == user);
    let mut acting_groups = groups;
    if !acting_groups.iter().any(|g| g == "system:authenticated") {
        acting_groups.push("system:authenticated".into());
    }
    Ok(User {
        username: user,
        uid,
        groups: acting_groups,
        rules: configured.map(|u| u.rules.clone()).unwrap_or_default(),
    })
}

/// An `Impersonate-Extra-` header name's key: lowercased by HTTP, then `url.PathUnescape`d,
/// as kube-apiserver reads it.
fn unescape_extra_key(escaped: &str) -> String {
    let bytes = escaped.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A valid client certificate wins over a token (kube-apiserver's union authenticator tries x509
/// first); otherwise an unknown bearer token is 401 on every path, public ones included, and no
/// credentials at all make the caller `system:anonymous` (or 401 when anonymous is disabled).
fn authenticate(
    token: Option<&str>,
    cert_user: Option<&User>,
    shared: &Shared,
) -> Result<User, Reply> {
    let options = &shared.options;
    if let Some(user) = cert_user {
        return Ok(user.clone());
    }
    match token {
        Some(token) => options
            .tokens
            .iter()
            .find(|(known, _)| known == token)
            .map(|(_, user)| user.clone())
            .ok_or_else(unauthorized),
        None if options.anonymous == Anonymous::Disabled => Err(unauthorized()),
        None => Ok(User::anonymous()),
    }
}

async fn route(
    request: Request<Incoming>,
    method: &Method,
    path: &str,
    query: &str,
    user: &User,
    shared: &Shared,
) -> Reply {
    let endpoint = Endpoint::parse(path);
    if user.is_anonymous() && !endpoint.is_public() {
        return match shared.options.anonymous {
            Anonymous::SystemAnonymous => forbidden(user, &endpoint.attributes(path)),
            _ => unauthorized(),
        };
    }
    if let Some((impersonated, agent)) = &shared.options.impersonation_denied
        && !user.is_anonymous()
    {
        let message = format!(
            "users \"{impersonated}\" is forbidden: User \"{agent}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        return status(StatusCode::FORBIDDEN, "Forbidden", &message, None);
    }
    let reading = matches!(*method, Method::GET | Method::HEAD);
    match endpoint {
        Endpoint::Unknown => not_found(),
        Endpoint::SelfSubjectReview if !shared.options.self_subject_review => not_found(),
        Endpoint::SelfSubjectReview | Endpoint::AccessReview | Endpoint::RulesReview => {
            if *method != Method::POST {
                return method_not_allowed(method);
            }
            let content_type = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            match read_body(request).await {
                Ok(body) => review(&endpoint, content_type.as_deref(), &body, user),
                Err(reply) => reply,
            }
        }
        _ if !reading => method_not_allowed(method),
        Endpoint::Version => version(shared),
        Endpoint::Livez => health("livez", LIVEZ_CHECKS, true, query),
        Endpoint::Readyz => health("readyz", READYZ_CHECKS, shared.options.ready, query),
        Endpoint::Healthz => health("healthz", HEALTHZ_CHECKS, shared.options.ready, query),
        Endpoint::Api => api_versions(shared),
        Endpoint::Apis => api_group_list(shared),
        Endpoint::GroupVersion { group, version } => resource_list(group, version, shared),
        Endpoint::NetworkPolicies { namespace } => network_policies(namespace, user, shared, path),
        Endpoint::Object {
            kind,
            namespace,
            name,
        } => fixture_object(kind, namespace, name, query, user, shared, path),
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Reply> {
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "the request body is too large or could not be read",
            None,
        )),
    }
}

/// Adds the headers every kube-apiserver response has (and the configured `Server`).
fn finish(reply: Reply, shared: &Shared) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
    {
        headers.insert(header::DATE, date);
    }
    if let Some(server) = shared.options.server_header.as_deref()
        && let Ok(value) = HeaderValue::from_str(server)
    {
        headers.insert(header::SERVER, value);
    }
    if shared.options.html_front {
        return response;
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(audit) = HeaderValue::from_str(&shared.next_audit_id()) {
        headers.insert("audit-id", audit);
    }
    headers.insert(
        "x-kubernetes-pf-flowschema-uid",
        HeaderValue::from_static("5a3f2f9e-1b9c-4c55-9f55-6b1f0c0d0001"),
    );
    headers.insert(
        "x-kubernetes-pf-prioritylevel-uid",
        HeaderValue::from_static("5a3f2f9e-1b9c-4c55-9f55-6b1f0c0d0002"),
    );
    response
}

fn html_login() -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: "text/html; charset=utf-8",
        body: Bytes::from_static(HTML_LOGIN.as_bytes()),
    }
}

const HTML_LOGIN: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Sign in</title></head>\n<body>\n<h1>Sign in to continue</h1>\n<form method=\"post\" action=\"/login\">\n<input name=\"username\" placeholder=\"Username\">\n<input name=\"password\" type=\"password\" placeholder=\"Password\">\n<button type=\"submit\">Sign in</button>\n</form>\n</body>\n</html>\n";

/// `/version`, optionally padded with spaces inside the object (still valid JSON).
fn version(shared: &Shared) -> Reply {
    let mut reply = Reply::json(StatusCode::OK, &shared.options.version);
    let padding = shared.options.version_padding_bytes;
    if padding > 0 && reply.body.ends_with(b"}") {
        let mut body = reply.body[..reply.body.len() - 1].to_vec();
        body.resize(body.len() + padding, b' ');
        body.push(b'}');
        reply.body = Bytes::from(body);
    }
    reply
}

const LIVEZ_CHECKS: &[&str] = &[
    "ping",
    "log",
    "etcd",
    "poststarthook/start-apiserver-admission-initializer",
];
const READYZ_CHECKS: &[&str] = &[
    "ping",
    "log",
    "etcd",
    "etcd-readiness",
    "informer-sync",
    "poststarthook/start-apiserver-admission-initializer",
    "shutdown",
];
const HEALTHZ_CHECKS: &[&str] = &[
    "ping",
    "log",
    "etcd",
    "poststarthook/start-apiserver-admission-initializer",
];

/// `/livez`, `/readyz`, `/healthz`: `ok`, or the check list when `?verbose` or failing; when not
/// healthy the etcd checks fail and the status is 500, as kube-apiserver does.
fn health(name: &str, checks: &[&str], healthy: bool, query: &str) -> Reply {
    let verbose = query
        .split('&')
        .any(|kv| kv.split('=').next() == Some("verbose"));
    if healthy && !verbose {
        return Reply::text(StatusCode::OK, "ok");
    }
    let mut text = String::new();
    for check in checks {
        if !healthy && check.starts_with("etcd") {
            text.push_str(&format!("[-]{check} failed: reason withheld\n"));
        } else {
            text.push_str(&format!("[+]{check} ok\n"));
        }
    }
    if healthy {
        text.push_str(&format!("{name} check passed\n"));
        Reply::text(StatusCode::OK, text)
    } else {
        text.push_str(&format!("{name} check failed\n"));
        Reply::text(StatusCode::INTERNAL_SERVER_ERROR, text)
    }
}

/// A resource in a legacy discovery `APIResourceList`.
struct ResourceDef {
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short: &'static [&'static str],
}

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CREATE: &[&str] = &["create"];

const fn res(
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short: &'static [&'static str],
) -> ResourceDef {
    ResourceDef {
        name,
        singular,
        kind,
        namespaced,
        verbs,
        short,
    }
}

const CORE_V1: &[ResourceDef] = &[
    res("configmaps", "configmap", "ConfigMap", true, CRUD, &["cm"]),
    res("namespaces", "namespace", "Namespace", false, CRUD, &["ns"]),
    res("pods", "pod", "Pod", true, CRUD, &["po"]),
    res("secrets", "secret", "Secret", true, CRUD, &[]),
    res(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        CRUD,
        &["sa"],
    ),
    res("services", "service", "Service", true, CRUD, &["svc"]),
];
const APPS_V1: &[ResourceDef] = &[
    res("daemonsets", "daemonset", "DaemonSet", true, CRUD, &["ds"]),
    res(
        "deployments",
        "deployment",
        "Deployment",
        true,
        CRUD,
        &["deploy"],
    ),
    res(
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        CRUD,
        &["rs"],
    ),
    res(
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        CRUD,
        &["sts"],
    ),
];
const NETWORKING_V1: &[ResourceDef] = &[res(
    "networkpolicies",
    "networkpolicy",
    "NetworkPolicy",
    true,
    CRUD,
    &["netpol"],
)];
const DISCOVERY_V1: &[ResourceDef] = &[res(
    "endpointslices",
    "endpointslice",
    "EndpointSlice",
    true,
    CRUD,
    &[],
)];
const AUTHORIZATION_V1: &[ResourceDef] = &[
    res(
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        true,
        CREATE,
        &[],
    ),
    res(
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        CREATE,
        &[],
    ),
    res(
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        false,
        CREATE,
        &[],
    ),
    res(
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
        CREATE,
        &[],
    ),
];
const AUTHENTICATION_V1: &[ResourceDef] = &[
    res(
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        false,
        CREATE,
        &[],
    ),
    res(
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        false,
        CREATE,
        &[],
    ),
];

/// Named groups served (all at `v1`).
const GROUPS: &[(&str, &[ResourceDef])] = &[
    ("apps", APPS_V1),
    ("networking.k8s.io", NETWORKING_V1),
    ("discovery.k8s.io", DISCOVERY_V1),
    ("authentication.k8s.io", AUTHENTICATION_V1),
    ("authorization.k8s.io", AUTHORIZATION_V1),
];

fn api_versions(shared: &Shared) -> Reply {
    Reply::json(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}],
        }),
    )
}

fn api_group_list(_shared: &Shared) -> Reply {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(name, _)| {
            let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
            json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    Reply::json(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

fn resource_list(group: &str, version: &str, shared: &Shared) -> Reply {
    let resources = match (group, version) {
        ("", "v1") => CORE_V1,
        (group, "v1") => match GROUPS.iter().find(|(name, _)| *name == group) {
            Some((_, resources)) => *resources,
            None => return not_found(),
        },
        _ => return not_found(),
    };
    let resources: Vec<Value> = resources
        .iter()
        .filter(|r| shared.options.self_subject_review || r.name != "selfsubjectreviews")
        .map(resource_json)
        .collect();
    let group_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/{version}")
    };
    Reply::json(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn resource_json(r: &ResourceDef) -> Value {
    let mut value = json!({
        "name": r.name,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs,
    });
    if !r.short.is_empty() {
        value["shortNames"] = json!(r.short);
    }
    value
}

/// Non-resource URLs every authenticated user may GET (`system:discovery`,
/// `system:public-info-viewer`).
const DISCOVERY_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

fn non_resource_allowed(user: &User, verb: &str, path: &str) -> bool {
    let public = ["/healthz", "/livez", "/readyz", "/version", "/version/"].contains(&path);
    let listed = DISCOVERY_URLS
        .iter()
        .any(|url| match url.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => *url == path,
        });
    verb == "get" && (public || (listed && !user.is_anonymous()))
}

fn invalid(kind: &str, message: &str) -> Reply {
    let full = format!("{kind}.authorization.k8s.io \"\" is invalid: {message}");
    status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &full,
        Some(json!({"kind": kind})),
    )
}

fn bad_request(message: &str) -> Reply {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

/// A real server's 415 for a body in a media type it does not read (`errUnsupportedMediaType`
/// in k8s.io/apiserver `pkg/endpoints/handlers/negotiation/errors.go`).
fn unsupported_media_type() -> Reply {
    let message = format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        body::READABLE
    );
    status(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        &message,
        None,
    )
}

fn review(endpoint: &Endpoint<'_>, content_type: Option<&str>, body: &[u8], user: &User) -> Reply {
    let kind = match endpoint {
        Endpoint::SelfSubjectReview => ReviewKind::Identity,
        Endpoint::AccessReview => ReviewKind::Access,
        _ => ReviewKind::Rules,
    };
    let request = match body::decode(content_type, body, kind) {
        Ok(request) => request,
        Err(BodyError::UnsupportedMediaType) => return unsupported_media_type(),
        Err(BodyError::Malformed(message)) => return bad_request(&message),
    };
    match kind {
        ReviewKind::Identity => self_subject_review(user),
        ReviewKind::Access => access_review(request, user),
        ReviewKind::Rules => rules_review(request, user),
    }
}

fn self_subject_review(user: &User) -> Reply {
    let mut info = json!({"username": user.username, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    Reply::json(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": info},
        }),
    )
}

fn str_field<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Echoes the review with `status.allowed` decided by the user's rules.
fn access_review(mut review: Value, user: &User) -> Reply {
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let allowed = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(ra), None) => user.can(
            str_field(ra, "verb"),
            str_field(ra, "group"),
            str_field(ra, "resource"),
            str_field(ra, "namespace"),
        ),
        (None, Some(nra)) => {
            non_resource_allowed(user, str_field(nra, "verb"), str_field(nra, "path"))
        }
        _ => {
            return invalid(
                "SelfSubjectAccessReview",
                "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            );
        }
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = if allowed {
        json!({"allowed": true, "reason": format!(
            "RBAC: allowed by ClusterRoleBinding \"kube-reach-demo\" of ClusterRole \"kube-reach-demo\" to User \"{}\"",
            user.username
        )})
    } else {
        json!({"allowed": false})
    };
    Reply::json(StatusCode::CREATED, &review)
}

/// The user's rules that apply in `spec.namespace`, plus the self-review and discovery rules
/// every authenticated user has.
fn rules_review(mut review: Value, user: &User) -> Reply {
    let namespace = review
        .get("spec")
        .map(|spec| str_field(spec, "namespace").to_string())
        .unwrap_or_default();
    let mut resource_rules: Vec<Value> = SELF_REVIEWS
        .iter()
        .map(|(group, resource)| json!({"verbs": ["create"], "apiGroups": [group], "resources": [resource]}))
        .collect();
    resource_rules.extend(
        user.rules
            .iter()
            .filter(|rule| rule.applies_in(&namespace))
            .map(|rule| json!({"verbs": rule.verbs, "apiGroups": rule.groups, "resources": rule.resources})),
    );
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectRulesReview");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": DISCOVERY_URLS}],
        "incomplete": false,
    });
    Reply::json(StatusCode::CREATED, &review)
}

fn network_policies(namespace: Option<&str>, user: &User, shared: &Shared, path: &str) -> Reply {
    let attributes = Endpoint::NetworkPolicies { namespace }.attributes(path);
    if !user.can(
        "list",
        "networking.k8s.io",
        "networkpolicies",
        namespace.unwrap_or(""),
    ) {
        return forbidden(user, &attributes);
    }
    let items: Vec<Value> = shared
        .options
        .network_policies
        .iter()
        .filter(|policy| namespace.is_none() || policy.metadata.namespace.as_deref() == namespace)
        .filter_map(|policy| serde_json::to_value(policy).ok())
        .collect();
    Reply::json(
        StatusCode::OK,
        &json!({
            "kind": "NetworkPolicyList",
            "apiVersion": "networking.k8s.io/v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }),
    )
}

/// The kinds of fixture object the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Pod,
    Service,
    EndpointSlice,
}

impl ObjectKind {
    /// (verb, API group, resource) the request needs from RBAC.
    fn rbac(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ObjectKind::Pod => ("get", "", "pods"),
            ObjectKind::Service => ("get", "", "services"),
            ObjectKind::EndpointSlice => ("list", "discovery.k8s.io", "endpointslices"),
        }
    }
}

/// Fixture objects of an in-cluster world, as the API would store them.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub pods: Vec<k8s_openapi::api::core::v1::Pod>,
    pub services: Vec<k8s_openapi::api::core::v1::Service>,
    pub endpoint_slices: Vec<k8s_openapi::api::discovery::v1::EndpointSlice>,
}

impl Objects {
    /// (metadata, JSON) of every object of `kind`.
    fn of(
        &self,
        kind: ObjectKind,
    ) -> Vec<(
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        Value,
    )> {
        fn each<T: Serialize>(
            items: &[T],
            meta: fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        ) -> Vec<(
            &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            Value,
        )> {
            items
                .iter()
                .filter_map(|i| Some((meta(i), serde_json::to_value(i).ok()?)))
                .collect()
        }
        match kind {
            ObjectKind::Pod => each(&self.pods, |p| &p.metadata),
            ObjectKind::Service => each(&self.services, |s| &s.metadata),
            ObjectKind::EndpointSlice => each(&self.endpoint_slices, |e| &e.metadata),
        }
    }
}

/// A GET by name (404 when absent) or a list filtered by an equality `labelSelector`.
fn fixture_object(
    kind: ObjectKind,
    namespace: &str,
    name: Option<&str>,
    query: &str,
    user: &User,
    shared: &Shared,
    path: &str,
) -> Reply {
    let (verb, group, plural) = kind.rbac();
    if !user.can(verb, group, plural, namespace) {
        let attributes = Endpoint::Object {
            kind,
            namespace,
            name,
        }
        .attributes(path);
        return forbidden(user, &attributes);
    }
    // Equality terms only (`k=v,k2=v2`, percent-encoded as clients send them).
    let selector: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("labelSelector="))
        .flat_map(|v| v.split("%2C"))
        .filter_map(|term| {
            let term = term.replace("%2F", "/").replace("%3D", "=");
            term.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let in_namespace = shared
        .options
        .objects
        .of(kind)
        .into_iter()
        .filter(|(meta, _)| meta.namespace.as_deref() == Some(namespace));
    match name {
        Some(name) => in_namespace
            .into_iter()
            .find(|(meta, _)| meta.name.as_deref() == Some(name))
            .map(|(_, v)| Reply::json(StatusCode::OK, &v))
            .unwrap_or_else(not_found),
        None => {
            let items: Vec<Value> = in_namespace
                .filter(|(meta, _)| {
                    let labels = meta.labels.clone().unwrap_or_default();
                    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
                .map(|(_, v)| v)
                .collect();
            Reply::json(
                StatusCode::OK,
                &json!({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {"resourceVersion": "1"}, "items": items}),
            )
        }
    }
}
