//! A fake GitLab agent server (KAS) `k8s-proxy`, reproducing the behaviour of KAS's
//! `internal/module/kubernetes_api/server/proxy.go` (research/gitlab-facts.md §1.9): the
//! `url_path_prefix` check, the `Authorization: Bearer ci:<agent id>:<job token>` parsing, its
//! own errors as Kubernetes `Status` objects (`GitLab Agent Server: <msg>. Trace ID: <id>`,
//! `Server: gitlab-kas/…`, `Gitlab-Unauthorized: true` on every 401), and the proxied answers of
//! the cluster behind it (`Via: gRPC/1.0 gitlab-kas/…`).
//!
//! The cluster is the project's own fake API server (`kube_reach::demo::apiserver`, plain HTTP
//! on 127.0.0.1), reached the way agentk reaches it: KAS strips the job's credentials and the
//! agent authenticates with its own service account token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::kubeconfig::GOOD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Response;
use hyper::header::{AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use kube_reach::demo::{ApiServerHandle, ApiServerOptions, Transport, apiserver};
use tokio::runtime::Runtime;

use crate::server::{FakeServer, Handler, Req, reply};

pub const KAS_SERVER: &str = "gitlab-kas/v17.0.0/abc";
pub const KAS_VIA: &str = "gRPC/1.0 gitlab-kas/v17.0.0/abc";
/// KAS forces its `url_path_prefix` to end with `/`.
pub const PREFIX: &str = "/k8s-proxy/";
pub const NOT_CONNECTED: &str = "HTTP->gRPC: failed to read gRPC response: rpc error: code = DeadlineExceeded desc = Agent connection not found. Is agent up to date and connected?";

/// How long `AgentNotConnectedSlowly` keeps the authenticated request waiting: longer than
/// the real KAS's 20 s, so a client that waits for it is caught by a short `--deadline`.
const SLOW_TUNNEL_WAIT: Duration = Duration::from_secs(30);

/// What the agent server does with a well-formed `ci:` credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KasMode {
    /// Checks the credential (this job's token, the allowed agent) and proxies to the cluster.
    Healthy,
    /// GitLab told KAS the job token is invalid: 401 `Unauthorized: CI job token: …`.
    JobTokenRejected,
    /// The agent id is not in the job's allowed agents: 403 `Forbidden: agentId is not allowed`.
    AgentNotAllowed,
    /// No agentk tunnel: 502 `HTTP->gRPC: … Agent connection not found …`, at once (the real
    /// KAS gives up after 20 s; the tool must not need the wait to tell).
    AgentNotConnected,
    /// Not KAS at all: a load balancer answering 401 with its own HTML page.
    LoadBalancer,
    /// No agentk tunnel, as the real KAS does it: the authenticated request waits (here 30 s,
    /// bounded) before the 502, so only a client that waits long enough hears why.
    AgentNotConnectedSlowly,
}

/// The agent server plus the cluster behind it.
pub struct Kas {
    pub server: FakeServer,
    _cluster: Option<ApiServerHandle>,
}

struct Config {
    mode: KasMode,
    agent_id: i64,
    job_token: String,
    cluster: Option<SocketAddr>,
}

impl Kas {
    /// Starts the agent server on 127.0.0.1 (TLS with `tls`, else plain HTTP). In `Healthy`
    /// mode it accepts exactly `ci:<agent_id>:<job_token>`.
    pub fn start(
        rt: &Runtime,
        mode: KasMode,
        tls: Option<Arc<rustls::ServerConfig>>,
        agent_id: i64,
        job_token: &str,
    ) -> Kas {
        Kas::start_before(
            rt,
            mode,
            tls,
            agent_id,
            job_token,
            ApiServerOptions::default(),
        )
    }

    /// The same in front of a cluster with `cluster` options (in `Healthy` mode): who the
    /// agent's requests arrive as (`access_as: ci_job` is the job's identity), what RBAC allows.
    pub fn start_before(
        rt: &Runtime,
        mode: KasMode,
        tls: Option<Arc<rustls::ServerConfig>>,
        agent_id: i64,
        job_token: &str,
        cluster: ApiServerOptions,
    ) -> Kas {
        let cluster = (mode == KasMode::Healthy).then(|| {
            rt.block_on(apiserver::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                Transport::PlainHttp,
                cluster,
            ))
            .expect("the cluster behind the agent")
        });
        let config = Arc::new(Config {
            mode,
            agent_id,
            job_token: job_token.to_string(),
            cluster: cluster.as_ref().map(ApiServerHandle::addr),
        });
        let handler: Handler = Arc::new(move |req| {
            let config = config.clone();
            Box::pin(async move { handle(req, &config).await })
        });
        Kas {
            server: FakeServer::start(rt, tls, job_token, handler),
            _cluster: cluster,
        }
    }

    /// The `server:` GitLab writes into the kubeconfig: `<scheme>://127.0.0.1:PORT/k8s-proxy`.
    pub fn k8s_proxy_url(&self) -> String {
        format!("{}/k8s-proxy", self.server.url())
    }
}

async fn handle(req: Req, config: &Config) -> Response<Full<Bytes>> {
    let healthy = match config.mode {
        KasMode::LoadBalancer => return nginx_401(),
        KasMode::Healthy => true,
        _ => false,
    };
    let Some(rest) = req.path.strip_prefix(PREFIX).map(str::to_string) else {
        return kas_error(
            400,
            "BadRequest",
            "Bad request: URL does not start with expected prefix",
        );
    };
    let (agent_id, job_token) = match credential(&req) {
        Ok(parts) => parts,
        Err(message) => return kas_error(401, "Unauthorized", &message),
    };
    if config.mode == KasMode::AgentNotConnectedSlowly {
        tokio::time::sleep(SLOW_TUNNEL_WAIT).await;
        return kas_error(502, "InternalError", NOT_CONNECTED);
    }
    let token_rejected =
        config.mode == KasMode::JobTokenRejected || healthy && job_token != config.job_token;
    let not_allowed =
        config.mode == KasMode::AgentNotAllowed || healthy && agent_id != config.agent_id;
    if token_rejected {
        return kas_error(
            401,
            "Unauthorized",
            "Unauthorized: CI job token: HTTP status code: 401 for path /api/v4/job/allowed_agents",
        );
    }
    if not_allowed {
        return kas_error(403, "Forbidden", "Forbidden: agentId is not allowed");
    }
    match config.cluster {
        Some(cluster) if healthy => proxy(&rest, req, cluster).await,
        // No agent connected: nothing to proxy to.
        _ => kas_error(502, "InternalError", NOT_CONNECTED),
    }
}

/// `getAgentIdAndTokenFromHeader`: one `Authorization: Bearer <type>:<agent id>:<token>`.
fn credential(req: &Req) -> Result<(i64, String), String> {
    let values: Vec<_> = req.headers.get_all(AUTHORIZATION).iter().collect();
    let value = match values.as_slice() {
        [] => return Err("Unauthorized: no valid credentials provided".into()),
        [one] => String::from_utf8_lossy(one.as_bytes()).into_owned(),
        many => {
            return Err(format!(
                "Unauthorized: Authorization header: expecting a single header, got {}",
                many.len()
            ));
        }
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Err("Unauthorized: Authorization header: expecting Bearer token".into());
    };
    let (kind, rest) = token
        .split_once(':')
        .ok_or("Unauthorized: Authorization header: invalid value")?;
    let (id, secret) = rest
        .split_once(':')
        .ok_or("Unauthorized: Authorization header: invalid value")?;
    if kind != "ci" {
        return Err("Unauthorized: Authorization header: unknown token type".into());
    }
    let id = id
        .parse::<i64>()
        .map_err(|e| format!("Unauthorized: Authorization header: failed to parse: {e}"))?;
    if secret.is_empty() {
        return Err("Unauthorized: Authorization header: empty token".into());
    }
    Ok((id, secret.to_string()))
}

/// `writeErrorResponse`: a `Status` object, `Server: gitlab-kas/…`, and on a 401 the
/// `Gitlab-Unauthorized: true` header only KAS sets.
fn kas_error(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("GitLab Agent Server: {message}. Trace ID: 1"),
        "reason": reason,
        "code": code,
    });
    let mut headers = vec![("Server", KAS_SERVER), ("Content-Type", "application/json")];
    if code == 401 {
        headers.push(("Gitlab-Unauthorized", "true"));
    }
    reply(code, &headers, body.to_string())
}

/// What nginx in front of something else answers: its own 401 page, no KAS header.
fn nginx_401() -> Response<Full<Bytes>> {
    reply(
        401,
        &[
            ("Server", "nginx/1.25.3"),
            ("Content-Type", "text/html"),
            ("WWW-Authenticate", "Basic realm=\"Restricted\""),
        ],
        "<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n",
    )
}

/// Headers never passed on: the job's credentials (KAS `pipeStreams` strips them) and
/// hop-by-hop headers.
const NOT_FORWARDED: &[&str] = &[
    "authorization",
    "cookie",
    "gitlab-agent-id",
    "x-csrf-token",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Forwards to the cluster as agentk does (with the agent's own service account token) and
/// marks the answer `Via: gRPC/1.0 gitlab-kas/…`.
async fn proxy(rest: &str, req: Req, cluster: SocketAddr) -> Response<Full<Bytes>> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(cluster)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut builder = hyper::Request::builder()
            .method(req.method)
            .uri(format!("/{rest}"))
            .header(HOST, cluster.to_string())
            .header(AUTHORIZATION, format!("Bearer {GOOD}"));
        for (name, value) in &req.headers {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                builder = builder.header(name, value);
            }
        }
        let request = builder
            .body(Full::new(req.body))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, 1 << 20)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let mut out = Response::builder().status(parts.status);
        for (name, value) in &parts.headers {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                out = out.header(name, value);
            }
        }
        out.header("Via", KAS_VIA)
            .body(Full::new(body))
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => kas_error(502, "InternalError", &format!("fake agent: {e}")),
        Err(_) => kas_error(504, "Timeout", "fake agent: the cluster did not answer"),
    }
}
