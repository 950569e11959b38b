//! The server steps of a target's pipeline, run over its one HTTP connection. The independent
//! questions go out at once before any is judged; each step then judges its answers through its
//! check (a [`Context`] in, [`Findings`] out) and says whether the steps after it can run.
//! Whatever did not run becomes a skip row of the report's shape (`shape::fill`).

use std::time::Duration;

use super::pipeline::{self, Step};
use super::{Recorder, RunContext, share};
use crate::catalogue::CheckId;
use crate::checks::{Context, Findings, auth, gitlab_server, http, kas, netpol, rbac};
use crate::model::CheckResult;
use crate::net::http::{GitlabConnection, HttpConnection, HttpFailure, Response};
use crate::plan::Target;

type Answer = Result<Response, HttpFailure>;

/// The answers asked at once, before judging; each step takes its own.
#[derive(Default)]
struct Asked {
    anonymous: Option<Answer>,
    version: Option<Answer>,
    readyz: Option<Answer>,
    whoami: Option<Answer>,
    reviews: Vec<Answer>,
}

/// One target's server steps: its connection, what was asked, and what earlier steps found.
struct Stage<'a> {
    conn: &'a HttpConnection,
    target: &'a Target,
    ctx: &'a RunContext,
    rec: &'a Recorder,
    cx: Context<'a>,
    asked: Asked,
    /// Who `auth.whoami` found, for RBAC.
    identity: Option<auth::Identity>,
}

/// Runs the server steps of `target`'s kind over `conn`, in pipeline order, until one stops.
pub(super) async fn run(conn: &HttpConnection, target: &Target, ctx: &RunContext, rec: &Recorder) {
    let Some(endpoint) = target.endpoint.as_ref() else {
        return;
    };
    let authority = endpoint.authority();
    let steps = pipeline::server_steps(target.kind);
    let cx = Context {
        target,
        authority: &authority,
        credentials_sent: conn.has_credentials(),
        verified: conn.is_verified(),
        ci: &ctx.ci,
        agents: &ctx.agents,
        agent_expectation: &ctx.agent_expectation,
        agent_configs: &ctx.agent_configs,
        agent_timeout: ctx.agent_timeout,
        service_account: ctx.service_account.as_deref(),
    };
    let mut stage = Stage {
        conn,
        target,
        ctx,
        rec,
        cx,
        asked: Asked::default(),
        identity: None,
    };
    stage.ask(steps).await;
    for step in steps {
        let found = stage.step(*step).await;
        let go_on = found.go_on;
        rec.push_all(found.results);
        if !go_on {
            return;
        }
    }
}

impl Stage<'_> {
    /// Sends at once every request whose answer a Kubernetes step judges, with the credentials
    /// when the connection carries them.
    async fn ask(&mut self, steps: &[Step]) {
        let (conn, ctx) = (self.conn, self.ctx);
        let wants = |step| steps.contains(&step);
        if !wants(Step::Version) {
            return;
        }
        let creds = self.cx.credentials_sent;
        // The agent server waits about 20 s for the agent's tunnel before it gives up: without
        // `--timeout`, an authenticated request through it gets that long to say "agent not
        // connected".
        let t = match wants(Step::AgentServer) {
            true => ctx.agent_timeout,
            false => ctx.timeout,
        };
        let ns = &self.target.namespace;
        let (first_path, first_api) = auth::WHOAMI_PATHS[0];
        self.rec.start(CheckId::HttpVersion, self.cx.authority);
        let (anonymous, version, readyz, whoami, reviews) = tokio::join!(
            optional(wants(Step::AgentServer), || conn.send(
                "GET",
                "/version",
                None,
                false,
                ctx.timeout
            )),
            conn.send("GET", "/version", None, creds, t),
            optional(wants(Step::Health), || conn.send(
                "GET",
                "/readyz?verbose",
                None,
                creds,
                t
            )),
            optional(wants(Step::Whoami), || conn.send(
                "POST",
                first_path,
                Some(auth::whoami_body(first_api)),
                creds,
                t
            )),
            futures_util::future::join_all(
                ctx.requirements
                    .iter()
                    .filter(|_| wants(Step::Rbac))
                    .map(|r| {
                        let namespace = r.namespace.resolve(ns);
                        let body = Some(rbac::ssar_body(r, &namespace));
                        conn.send("POST", rbac::SSAR_PATH, body, creds, t)
                    })
            ),
        );
        if let Ok(r) = &version {
            self.rec.date(r);
        }
        self.asked = Asked {
            anonymous,
            version: Some(version),
            readyz,
            whoami,
            reviews,
        };
    }

    async fn step(&mut self, step: Step) -> Findings {
        match step {
            // The connection steps (`engine/connect`) ran before the HTTP connection existed.
            Step::Resolve | Step::Connect | Step::Tunnel | Step::Handshake | Step::Certificate => {
                Findings::nothing()
            }
            Step::AgentServer => self.agent_server(),
            Step::Version => self.version(),
            Step::Health => self.health(),
            Step::Whoami => self.whoami().await,
            Step::Rbac => self.rbac(),
            Step::ClusterRead => {
                self.read_surroundings().await;
                Findings::nothing()
            }
            Step::GitlabServer => self.gitlab_server().await,
            Step::AllowedAgents => self.allowed_agents().await,
        }
    }

    fn agent_server(&self) -> Findings {
        match (&self.asked.anonymous, &self.asked.version) {
            (Some(anonymous), Some(version)) => kas::agent_server(&self.cx, anonymous, version),
            _ => Findings::nothing(),
        }
    }

    fn version(&self) -> Findings {
        let Some(version) = &self.asked.version else {
            return Findings::nothing();
        };
        let result = http::version(self.cx.authority, version, self.cx.credentials_sent);
        let result = answered(result, version);
        Findings::judged(vec![kas::version(&self.cx, result)])
    }

    /// `http.health` never stops the steps after it: a server that is not ready still answers.
    fn health(&self) -> Findings {
        let Some(readyz) = &self.asked.readyz else {
            return Findings::nothing();
        };
        let result = answered(http::health(self.cx.authority, readyz), readyz);
        Findings::noted(vec![result])
    }

    /// `auth.whoami` with kubectl's fallbacks (v1, then v1beta1, then "unsupported"). Credentials
    /// that config.credentials found unusable were never sent: auth and RBAC are consequences of
    /// that finding (their skip rows name it), not new ones.
    async fn whoami(&mut self) -> Findings {
        if self.target.credentials.sendable().is_none() {
            return Findings::last(Vec::new());
        }
        if let Some(withheld) = auth::withheld(&self.cx) {
            return Findings::last(vec![withheld]);
        }
        let Some(mut outcome) = self.asked.whoami.take() else {
            return Findings::nothing();
        };
        let mut fallbacks = auth::WHOAMI_PATHS[1..].iter();
        let requested = self.rec.client_cert_requested();
        let (result, identity) = loop {
            if let Some(judged) = auth::judge_answer(&self.cx, &outcome, requested) {
                break judged;
            }
            match fallbacks.next() {
                Some((path, api)) => {
                    let body = Some(auth::whoami_body(api));
                    let creds = self.cx.credentials_sent;
                    outcome = self
                        .conn
                        .send("POST", path, body, creds, self.ctx.timeout)
                        .await;
                }
                None => {
                    break (
                        auth::unsupported(self.cx.authority),
                        auth::Identity::default(),
                    );
                }
            }
        };
        let impersonation = self.target.credentials.impersonation.as_ref();
        let result = rbac::user_impersonation_fix(result, &outcome, impersonation);
        let result = answered(result, &outcome);
        let found = Findings::judged(vec![result]);
        if found.go_on {
            self.identity = Some(auth::rbac_identity(&self.cx, identity));
        }
        found
    }

    fn rbac(&self) -> Findings {
        let Some(identity) = &self.identity else {
            return Findings::last(Vec::new());
        };
        let ns = &self.target.namespace;
        let mut judged: Vec<_> = self
            .ctx
            .requirements
            .iter()
            .zip(self.asked.reviews.iter())
            .map(|(req, outcome)| {
                let namespace = req.namespace.resolve(ns);
                let result = rbac::judge(req, &namespace, outcome, &identity.username);
                let result = answered(result, outcome);
                (req.clone(), namespace, result)
            })
            .collect();
        rbac::attach_fixes(&mut judged, identity);
        Findings::noted(judged.into_iter().map(|(_, _, r)| r).collect())
    }

    /// The in-cluster target reads, with its own credentials over its verified connection, what
    /// the NetworkPolicy evaluation needs; judging waits until every target has tried its
    /// addresses.
    async fn read_surroundings(&self) {
        let (target, rec) = (self.target, self.rec);
        let ns = &target.namespace;
        // Both go into request paths: only names the API server could hold.
        if let Err(problem) = crate::plan::check_namespace(ns) {
            let why = format!("{problem}: nothing was asked");
            return rec.cluster(netpol::ClusterView::unasked(&target.name, ns, why));
        }
        let pod = self
            .ctx
            .pod_name
            .as_deref()
            .filter(|p| netpol::is_object_name(p));
        rec.start(CheckId::NetpolEgress, ns);
        let paths = netpol::ClusterView::paths(ns, pod);
        let creds = self.cx.credentials_sent;
        let answers = futures_util::future::join_all(
            paths
                .iter()
                .map(|p| self.conn.send("GET", p, None, creds, self.ctx.timeout)),
        )
        .await;
        rec.cluster(netpol::ClusterView::from_answers(
            &target.name,
            ns,
            pod,
            &answers,
        ));
    }

    /// `gitlab.server`: asked anonymously.
    async fn gitlab_server(&self) -> Findings {
        self.rec.start(CheckId::GitlabServer, self.cx.authority);
        let version = self
            .conn
            .send("GET", "/api/v4/version", None, false, self.ctx.timeout)
            .await;
        if let Ok(r) = &version {
            self.rec.date(r);
        }
        gitlab_server::server(&self.cx, &version)
    }

    /// `gitlab.allowed-agents`: the job token goes only here, only over verified TLS, and only
    /// to the host of `CI_SERVER_URL`.
    async fn allowed_agents(&self) -> Findings {
        let ask = match gitlab_server::allowed_agents_ask(&self.cx) {
            Ok(ask) => ask,
            Err(result) => return Findings::judged(vec![*result]),
        };
        self.rec.start(CheckId::GitlabAllowedAgents, "job");
        let answer = match GitlabConnection::verified(self.conn) {
            Ok(gitlab) => {
                let timeout = self.ctx.timeout;
                gitlab
                    .get_with_job_token(&ask.path, ask.header, ask.token, timeout)
                    .await
            }
            Err(refused) => Err(refused),
        };
        gitlab_server::allowed_agents(&self.cx, &ask.path, &answer)
    }
}

/// `ask()` when `wanted`, else nothing (the step that would judge it is not in the pipeline).
async fn optional<F: Future<Output = Answer>>(
    wanted: bool,
    ask: impl FnOnce() -> F,
) -> Option<Answer> {
    match wanted {
        true => Some(ask().await),
        false => None,
    }
}

/// `result`, judged on `outcome`: timed by its exchange, and saying so when the answer was
/// another target's identical request's.
fn answered(result: CheckResult, outcome: &Answer) -> CheckResult {
    let result = result.with_duration(took(outcome));
    match outcome {
        Ok(response) if response.shared => result.with_evidence(share::SHARED_ANSWER_NOTE),
        _ => result,
    }
}

/// How long an HTTP exchange took; zero when it has no answer (the recorder then times it).
fn took(outcome: &Answer) -> Duration {
    outcome.as_ref().map(|r| r.elapsed).unwrap_or_default()
}
