//! The GitLab side of the path: agent targets, the agent server (KAS), the job's allowed agents,
//! the agent configuration in the repository, the identity Kubernetes will see, and the legacy
//! certificate-based integration.
//!
//! Everything here is pure: functions take what the engine already fetched (HTTP status,
//! headers, body bytes, YAML text, CI variables) and return [`CheckResult`]s or small typed
//! values. The one exception is [`check_agent_configs`], which reads the agent configuration
//! files from the job's checkout (bounded, never panicking).
//!
//! The job token is a [`JobToken`] (the crate's `Secret`): no `Display`, a redacted `Debug`; it leaves
//! this module only through `expose()`, for the one request that may carry it
//! ([`allowed_agents_request`], to the GitLab server itself and nowhere else).
//!
//! [`CheckResult`]: crate::model::CheckResult

mod agent;
mod agent_config;
mod allowed;
mod allowed_answer;
mod ci;
mod identity;
mod kas;
mod legacy;
mod likely;
mod text;

pub use agent::{
    AgentIdentity, AgentTarget, STALE_TOKEN_DETAIL, agent_insecure_scheme,
    agent_insecure_scheme_fix_detail, agent_tls_fix_detail, agent_token_id, is_agent_target,
};
pub use agent_config::check_agent_configs;
pub use allowed::{
    AgentExpectation, explain_not_set, judge_allowed_agents, judge_allowed_agents_for,
};
pub(crate) use ci::JOB_SUBJECT;
pub use ci::{
    CiFacts, JobToken, Request, allowed_agents_request, gitlab_server_target, plan_allowed_agents,
};
pub use kas::{
    AUTHENTICATED_PROBE_TIMEOUT, KAS_SUBJECT, classify_kas_anonymous, classify_kas_authenticated,
    classify_kas_no_response, explain_short_agent_wait,
};
pub use legacy::{LEGACY_CONTEXT, LegacySignals, detect_legacy, is_legacy_context, legacy_note};
