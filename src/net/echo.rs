//! Whether an answer could be the answer to its question, as far as the answer itself says.
//!
//! HTTP/1.1 matches responses to requests by order alone: a server (or a front) that answers
//! one pipelined request twice shifts every later answer by one, and nothing in the protocol
//! tells. Kubernetes gives one handle: an object created by `POST` comes back with the `kind`
//! and `spec` it was sent (reviews echo their spec and add a `status`), so a created answer
//! whose `kind` or `spec` differs from the request's answers another request. The pipe hands
//! such an answer to nobody ([`super::http`] asks again on a connection of its own).
//!
//! A `GET` carries no question to compare, and an error (`Status`) names none: those pass.
//! Go omits empty fields when it encodes (`omitempty`), so an absent field and its zero value
//! (`""`, `false`, `0`, `null`, `[]`, `{}`) agree.

use bytes::Bytes;
use serde_json::Value;

/// Whether `answer` (status and body) can answer `request`: false only when both are JSON
/// objects, the answer a success, and a `kind` or `spec` it names disagrees with the
/// request's (an answer without them claims nothing).
pub fn may_answer(request: &http::Request<Bytes>, status: u16, answer: &[u8]) -> bool {
    if request.method() != http::Method::POST || !(200..300).contains(&status) {
        return true;
    }
    let (Some(asked), Some(answered)) = (object(request.body()), object(answer)) else {
        return true;
    };
    ["kind", "spec"].iter().all(|field| {
        (answered.get(*field)).is_none_or(|named| agree(asked.get(*field), Some(named)))
    })
}

fn object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(body).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Two JSON values agree when equal, reading an absent field as its zero value; objects field
/// by field. A field only one side has agrees when it is a zero value.
fn agree(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            (a.keys().chain(b.keys())).all(|key| agree(a.get(key), b.get(key)))
        }
        (Some(a), Some(b)) if a == b => true,
        (Some(value), None) | (None, Some(value)) => zero(value),
        (None, None) => true,
        (Some(a), Some(b)) => zero(a) && zero(b),
    }
}

/// What Go's `omitempty` leaves out.
fn zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(zero),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn post(body: &Value) -> http::Request<Bytes> {
        let body = Bytes::from(body.to_string());
        http::Request::post("/apis/x").body(body).expect("request")
    }

    fn review(verb: &str, group: &str) -> Value {
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "spec": {"resourceAttributes": {"verb": verb, "group": group,
                        "resource": "pods", "namespace": "ci"}}})
    }

    fn answered(mut review: Value, allowed: bool) -> Vec<u8> {
        review["status"] = json!({"allowed": allowed});
        review["metadata"] = json!({"creationTimestamp": null});
        review.to_string().into_bytes()
    }

    #[test]
    fn a_review_answers_only_its_own_spec() {
        let get = review("get", "");
        // The server omits the empty group, as Go does.
        let mut echoed = review("get", "");
        echoed["spec"]["resourceAttributes"]
            .as_object_mut()
            .expect("object")
            .remove("group");
        assert!(may_answer(&post(&get), 201, &answered(echoed, true)));
        let other = answered(review("create", ""), true);
        assert!(!may_answer(&post(&get), 201, &other));
        let other_group = answered(review("get", "apps"), false);
        assert!(!may_answer(&post(&get), 200, &other_group));
    }

    #[test]
    fn another_kind_answers_another_request() {
        let whoami = json!({"kind": "SelfSubjectReview",
                            "apiVersion": "authentication.k8s.io/v1", "spec": {}});
        let review = answered(review("get", ""), true);
        assert!(!may_answer(&post(&whoami), 201, &review));
        assert!(!may_answer(&post(&whoami), 201, b"{\"kind\": \"Status\"}"));
        let echoed = json!({"kind": "SelfSubjectReview",
                            "status": {"userInfo": {"username": "u"}}});
        assert!(may_answer(
            &post(&whoami),
            201,
            echoed.to_string().as_bytes()
        ));
    }

    #[test]
    fn what_names_no_question_passes() {
        let get = http::Request::get("/version")
            .body(Bytes::new())
            .expect("request");
        assert!(may_answer(&get, 200, b"{\"kind\": \"Other\"}"));
        let asked = post(&review("get", ""));
        // Errors, and answers that are not JSON objects, are judged by the checks.
        assert!(may_answer(&asked, 403, b"{\"kind\": \"Status\"}"));
        assert!(may_answer(&asked, 201, b"ok"));
        assert!(may_answer(&asked, 201, b"[1]"));
        // An answer that names no kind or spec says nothing against the question.
        assert!(may_answer(
            &asked,
            201,
            b"{\"status\": {\"allowed\": true}}"
        ));
    }
}
