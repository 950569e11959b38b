//! A fake GitLab REST API (`CI_SERVER_URL`): `GET /api/v4/version`, which a job token cannot
//! open (401), and `GET /api/v4/job/allowed_agents`, which needs `JOB-TOKEN: <job token>` and
//! answers the JSON of GitLab's `lib/api/ci/jobs.rb` (research/gitlab-facts.md §2.3).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use serde_json::json;
use tokio::runtime::Runtime;

use crate::job::{JOB_ID, PROJECT_ID};
use crate::server::{FakeServer, Handler, Req, reply};

pub const ALLOWED_AGENTS: &str = "/api/v4/job/allowed_agents";

/// Starts the API on 127.0.0.1 with TLS. With `accept`, it takes exactly `job_token` (this
/// job's, still running) and lists `agents`; without, it rejects every job token (the job is
/// over, or the token is not this job's).
pub fn start(
    rt: &Runtime,
    tls: Arc<rustls::ServerConfig>,
    job_token: &str,
    accept: bool,
    agents: &[i64],
) -> FakeServer {
    let body = allowed_agents_json(agents).to_string();
    let valid = accept.then(|| job_token.to_string());
    let handler: Handler = Arc::new(move |req| {
        let response = handle(&req, valid.as_deref(), &body);
        Box::pin(async move { response })
    });
    FakeServer::start(rt, Some(tls), job_token, handler)
}

fn handle(req: &Req, valid_token: Option<&str>, allowed: &str) -> Response<Full<Bytes>> {
    let json = |status: u16, body: &str| {
        reply(
            status,
            &[("Content-Type", "application/json"), ("Server", "nginx")],
            Bytes::from(body.to_string()),
        )
    };
    let unauthorized = || json(401, r#"{"message":"401 Unauthorized"}"#);
    match (&req.method, req.path.as_str()) {
        // `authenticate!` without `job_token_allowed`: a job token does not open it either.
        (&Method::GET, "/api/v4/version" | "/api/v4/metadata") => unauthorized(),
        (&Method::GET, ALLOWED_AGENTS) => {
            let token = req.headers.get("job-token").map(|v| v.as_bytes());
            if token.is_some() && token == valid_token.map(str::as_bytes) {
                json(200, allowed)
            } else {
                unauthorized()
            }
        }
        _ => json(404, r#"{"error":"404 Not Found"}"#),
    }
}

/// `allowed_agents`: each agent with its configuration project (`group/agent-config`) and
/// `ci_access` entry; the job, pipeline, project and user. No `environment` (the job has none).
fn allowed_agents_json(agents: &[i64]) -> serde_json::Value {
    let agents: Vec<_> = agents
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "config_project": {
                    "id": 12, "description": null, "name": "agent-config",
                    "name_with_namespace": "group / agent-config", "path": "agent-config",
                    "path_with_namespace": "group/agent-config",
                    "created_at": "2024-01-01T00:00:00.000Z"
                },
                "configuration": {"default_namespace": "ci"}
            })
        })
        .collect();
    json!({
        "allowed_agents": agents,
        "job": {"id": JOB_ID},
        "pipeline": {"id": 6},
        "project": {"id": PROJECT_ID, "groups": [{"id": 23}]},
        "user": {"id": 1, "username": "root",
                 "roles_in_project": ["guest", "reporter", "developer", "maintainer"]}
    })
}
