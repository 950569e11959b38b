//! Request bodies of the self-reviews, in the media types a real kube-apiserver reads for them.
//!
//! kubectl 1.32 and later send the self-reviews (`auth whoami`, `auth can-i`) as protobuf, not
//! JSON (`-v=9`: 1.31.9 sends JSON, 1.32.4 and 1.37.1 protobuf): client-go's generated clients
//! for built-in kinds are built with `gentype.PrefersProtobuf` ("Use protobuf for core
//! clients", August 2024; `kubernetes/typed/authorization/v1/selfsubjectaccessreview.go`),
//! so a request carries `Content-Type: application/vnd.kubernetes.protobuf` and
//! `Accept: application/vnd.kubernetes.protobuf,application/json`
//! (`rest/request.go`, `UseProtobufAsDefault`; client-go 32ce75a). A real server reads it, so the
//! fake must too: client-go's only fallback on `415 Unsupported Media Type` is for CBOR
//! (`rest/client.go`, `requestClientContentConfigProvider.UnsupportedMediaType`, from KEP-4222
//! "CBOR Serializer"), and even that only switches *later* requests to JSON; the refused one
//! fails. A 415 to protobuf would therefore fail kubectl where a real server succeeds.
//!
//! What the fake reads: JSON (also when `Content-Type` is absent: kube-apiserver then takes its
//! first media type, JSON, see `NegotiateInputSerializerForMediaType` in k8s.io/apiserver
//! `pkg/endpoints/handlers/negotiation/negotiate.go`), and protobuf for the three self-review
//! kinds. Anything else (CBOR, YAML, `text/plain`) is answered `415` with the `Status` a real
//! server sends (`errUnsupportedMediaType` in `negotiation/errors.go`), listing what the fake
//! reads; a body is never accepted undecoded. The responses stay JSON, which the `Accept` above
//! allows.

use prost::Message;
use serde_json::{Map, Value, json};

/// `Content-Type` of Kubernetes protobuf.
pub(super) const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// The media types the fake reads, as named in its 415 message.
pub(super) const READABLE: &str = "application/json, application/vnd.kubernetes.protobuf";
/// Every Kubernetes protobuf body starts with these four bytes (`k8s\0`), then a
/// `runtime.Unknown` (k8s.io/apimachinery `pkg/runtime/serializer/protobuf/protobuf.go`).
const PROTOBUF_MAGIC: &[u8] = b"k8s\0";

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BodyError {
    /// The `Content-Type` is one the fake does not read: a real server's 415.
    UnsupportedMediaType,
    /// The body is not a valid object of that media type and kind: a real server's 400.
    Malformed(String),
}

/// The self-review kinds whose bodies the fake reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReviewKind {
    /// `authentication.k8s.io/v1 SelfSubjectReview` (`kubectl auth whoami`).
    Identity,
    /// `authorization.k8s.io/v1 SelfSubjectAccessReview` (`kubectl auth can-i`).
    Access,
    /// `authorization.k8s.io/v1 SelfSubjectRulesReview` (`kubectl auth can-i --list`).
    Rules,
}

impl ReviewKind {
    fn kind(self) -> &'static str {
        match self {
            ReviewKind::Identity => "SelfSubjectReview",
            ReviewKind::Access => "SelfSubjectAccessReview",
            ReviewKind::Rules => "SelfSubjectRulesReview",
        }
    }
}

/// The body as the JSON object it stands for, whatever media type it came in.
pub(super) fn decode(
    content_type: Option<&str>,
    body: &[u8],
    kind: ReviewKind,
) -> Result<Value, BodyError> {
    match media_type(content_type).as_deref() {
        None | Some("application/json") => decode_json(body),
        Some(PROTOBUF) => decode_protobuf(body, kind),
        Some(_) => Err(BodyError::UnsupportedMediaType),
    }
}

/// `application/json; charset=utf-8` → `application/json`; an absent or blank header → `None`.
fn media_type(content_type: Option<&str>) -> Option<String> {
    let essence = content_type?.split(';').next()?.trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

fn decode_json(body: &[u8]) -> Result<Value, BodyError> {
    match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) | Err(_) => Err(malformed("the request body is not a JSON object")),
    }
}

fn malformed(message: &str) -> BodyError {
    BodyError::Malformed(message.to_string())
}

fn decode_protobuf(body: &[u8], kind: ReviewKind) -> Result<Value, BodyError> {
    let envelope = body
        .strip_prefix(PROTOBUF_MAGIC)
        .ok_or_else(|| malformed("the protobuf request body does not start with k8s\\0"))?;
    let unknown = Unknown::decode(envelope)
        .map_err(|_| malformed("the protobuf request body is not a runtime.Unknown"))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    if type_meta.kind != kind.kind() {
        return Err(BodyError::Malformed(format!(
            "the protobuf request body is a {:?}, not a {}",
            type_meta.kind,
            kind.kind()
        )));
    }
    let not_kind = || BodyError::Malformed(format!("the protobuf object is not a {}", kind.kind()));
    let spec = match kind {
        ReviewKind::Identity => None,
        ReviewKind::Access => AccessReview::decode(unknown.raw.as_slice())
            .map_err(|_| not_kind())?
            .spec
            .map(|spec| spec.to_json()),
        ReviewKind::Rules => RulesReview::decode(unknown.raw.as_slice())
            .map_err(|_| not_kind())?
            .spec
            .map(|spec| json!({"namespace": spec.namespace})),
    };
    let mut object =
        json!({"kind": type_meta.kind, "apiVersion": type_meta.api_version, "metadata": {}});
    if let Some(spec) = spec {
        object["spec"] = spec;
    }
    Ok(object)
}

/// A JSON object of the non-empty strings among `fields` (Go's `omitempty`).
fn non_empty(fields: &[(&str, &str)]) -> Value {
    let map: Map<String, Value> = fields
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key.to_string(), json!(value)))
        .collect();
    Value::Object(map)
}

// The messages below carry only the fields the fake reads; prost skips the others (metadata,
// status, selectors). Field numbers from k8s.io/api `authorization/v1/generated.proto` and
// k8s.io/apimachinery `pkg/runtime/generated.proto`.

/// `runtime.Unknown`: the envelope of every Kubernetes protobuf object.
#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReview {
    #[prost(message, optional, tag = "2")]
    spec: Option<AccessReviewSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
}

impl AccessReviewSpec {
    fn to_json(&self) -> Value {
        let mut spec = json!({});
        if let Some(ra) = &self.resource_attributes {
            spec["resourceAttributes"] = non_empty(&[
                ("namespace", &ra.namespace),
                ("verb", &ra.verb),
                ("group", &ra.group),
                ("version", &ra.version),
                ("resource", &ra.resource),
                ("subresource", &ra.subresource),
                ("name", &ra.name),
            ]);
        }
        if let Some(nra) = &self.non_resource_attributes {
            spec["nonResourceAttributes"] = non_empty(&[("path", &nra.path), ("verb", &nra.verb)]);
        }
        spec
    }
}

#[derive(Clone, PartialEq, Message)]
struct ResourceAttributes {
    #[prost(string, tag = "1")]
    namespace: String,
    #[prost(string, tag = "2")]
    verb: String,
    #[prost(string, tag = "3")]
    group: String,
    #[prost(string, tag = "4")]
    version: String,
    #[prost(string, tag = "5")]
    resource: String,
    #[prost(string, tag = "6")]
    subresource: String,
    #[prost(string, tag = "7")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct NonResourceAttributes {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(string, tag = "2")]
    verb: String,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReview {
    #[prost(message, optional, tag = "2")]
    spec: Option<RulesReviewSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReviewSpec {
    #[prost(string, tag = "1")]
    namespace: String,
}

/// Test helpers: protobuf bodies as kubectl ≥ 1.32 sends them.
#[cfg(test)]
pub(super) mod wire {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: api_version.into(),
                kind: kind.into(),
            }),
            raw,
        };
        [PROTOBUF_MAGIC, &unknown.encode_to_vec()].concat()
    }

    /// A protobuf `SelfSubjectAccessReview` for a resource.
    pub(crate) fn access_review(
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
    ) -> Vec<u8> {
        let review = AccessReview {
            spec: Some(AccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: namespace.into(),
                    verb: verb.into(),
                    group: group.into(),
                    resource: resource.into(),
                    ..ResourceAttributes::default()
                }),
                non_resource_attributes: None,
            }),
        };
        envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            review.encode_to_vec(),
        )
    }

    /// A protobuf `SelfSubjectReview` (no fields but its type).
    pub(crate) fn self_subject_review() -> Vec<u8> {
        envelope("authentication.k8s.io/v1", "SelfSubjectReview", Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body kubectl 1.37.1 sent for `auth can-i create deployments.apps -n prod` without
    /// discovery (so the resource stays `deployments.apps`), from its `-v=9` dump: real bytes,
    /// not ones made by the same messages that decode them.
    const KUBECTL_1_37_CAN_I: &[u8] = &[
        0x6b, 0x38, 0x73, 0x00, 0x0a, 0x32, 0x0a, 0x17, 0x61, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69,
        0x7a, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2e, 0x6b, 0x38, 0x73, 0x2e, 0x69, 0x6f, 0x2f, 0x76,
        0x31, 0x12, 0x17, 0x53, 0x65, 0x6c, 0x66, 0x53, 0x75, 0x62, 0x6a, 0x65, 0x63, 0x74, 0x41,
        0x63, 0x63, 0x65, 0x73, 0x73, 0x52, 0x65, 0x76, 0x69, 0x65, 0x77, 0x12, 0x48, 0x0a, 0x10,
        0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42,
        0x00, 0x12, 0x2a, 0x0a, 0x28, 0x0a, 0x04, 0x70, 0x72, 0x6f, 0x64, 0x12, 0x06, 0x63, 0x72,
        0x65, 0x61, 0x74, 0x65, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x10, 0x64, 0x65, 0x70, 0x6c, 0x6f,
        0x79, 0x6d, 0x65, 0x6e, 0x74, 0x73, 0x2e, 0x61, 0x70, 0x70, 0x73, 0x32, 0x00, 0x3a, 0x00,
        0x1a, 0x08, 0x08, 0x00, 0x12, 0x00, 0x1a, 0x00, 0x20, 0x00, 0x1a, 0x00, 0x22, 0x00,
    ];

    #[test]
    fn kubectl_1_37s_own_protobuf_access_review_is_read() {
        let value = decode(Some(PROTOBUF), KUBECTL_1_37_CAN_I, ReviewKind::Access).unwrap();
        assert_eq!(
            value["spec"],
            json!({"resourceAttributes": {"namespace": "prod", "verb": "create", "resource": "deployments.apps"}})
        );
        assert_eq!(value["apiVersion"], "authorization.k8s.io/v1");
    }

    #[test]
    fn protobuf_access_review_reads_as_its_json() {
        let body = wire::access_review("create", "apps", "deployments", "prod");
        let value = decode(Some(PROTOBUF), &body, ReviewKind::Access).unwrap();
        assert_eq!(
            value["spec"],
            json!({"resourceAttributes": {"namespace": "prod", "verb": "create", "group": "apps", "resource": "deployments"}})
        );
        assert_eq!(value["kind"], "SelfSubjectAccessReview");
    }

    #[test]
    fn a_body_of_another_kind_or_without_the_magic_is_malformed() {
        let whoami = wire::self_subject_review();
        assert!(matches!(
            decode(Some(PROTOBUF), &whoami, ReviewKind::Access),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            decode(Some(PROTOBUF), b"{}", ReviewKind::Identity),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn media_types_other_than_json_and_protobuf_are_unsupported() {
        for content_type in ["application/cbor", "application/yaml", "text/plain"] {
            assert_eq!(
                decode(Some(content_type), b"{}", ReviewKind::Rules),
                Err(BodyError::UnsupportedMediaType),
                "{content_type}"
            );
        }
        for content_type in [None, Some("Application/JSON; charset=utf-8")] {
            assert!(decode(content_type, b"{}", ReviewKind::Rules).is_ok());
        }
    }
}
