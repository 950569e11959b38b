//! The engine's side of `net::fleet`: which targets may share a lookup or a connection, and
//! how a target that joins another's connection still reports every layer itself. The
//! target that opened the connection records its TCP, proxy and TLS results as usual; every
//! target that joins gets those same results, each with evidence naming the sharing, so its
//! report has every row with its own subject; its requests carry its own credentials.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OnceCell};

use crate::catalogue::CheckId;
use crate::checks::netpol;
use crate::model::CheckResult;
use crate::net::fleet::{Key, KeyBuilder, MAX_SHARERS, Shared};
use crate::net::http::{AnswerMemo, HttpConnection, Impersonation};
use crate::net::resolve::{self, ResolveFailure, Resolved};
use crate::plan::{Route, Target};
use crate::secret::Secret;

use super::{Recorder, RunContext};

type Lookup = Arc<(Result<Resolved, ResolveFailure>, Duration)>;

/// The run's shared work: one lookup per name, one connection per [`link_key`] (and per
/// [`MAX_SHARERS`] targets), one answer per identical request over connections of one
/// [`link_key`] ([`AnswerMemo`]: the same question with the same credentials).
pub struct Fleet {
    lookups: Shared<String, Lookup>,
    links: Shared<Key, Arc<Opening>>,
    answers: Arc<AnswerMemo>,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet {
            // Every target asks the one resolv.conf: any number may share a lookup.
            lookups: Shared::new(usize::MAX),
            links: Shared::new(MAX_SHARERS),
            answers: Arc::new(Shared::new(usize::MAX)),
        }
    }
}

/// A connection one target opens for the targets with its [`link_key`]: who opens it (so a
/// target still waiting to join when the run stops can say where the opening stood) and,
/// once opened, what it recorded.
pub struct Opening {
    opener: Arc<Recorder>,
    /// The opener's progress when it began (see [`Recorder::progress`]).
    from: (usize, usize),
    name: String,
    link: OnceCell<Arc<Link>>,
    /// Wakes the targets waiting to join once `link` is set. Only the opener initialises
    /// `link`: a joiner that entered `get_or_init` first would hold its only init permit while
    /// waiting for the opener, and the opener would then wait for it (a deadlock until the run's
    /// deadline, seen under load).
    opened: Notify,
}

/// What the target that opened a connection recorded while opening it, for the targets that
/// join it.
struct Link {
    /// The TCP, proxy and TLS results (and the HTTP start failure, if any).
    results: Vec<CheckResult>,
    paths: Vec<netpol::Attempted>,
    client_cert_requested: Option<bool>,
    /// The connection, without the opener's credentials.
    conn: Option<HttpConnection>,
    opener: String,
}

/// The bearer token a target's requests carry: its own, unless config withheld it.
pub fn own_bearer(target: &Target) -> Option<Secret> {
    let sendable = target.credentials.sendable();
    sendable.and_then(|c| c.bearer().cloned())
}

/// The `Impersonate-*` headers a target's requests carry with its credentials: its user's
/// `as*` fields, unless config withheld the credentials or it has none (an anonymous request
/// impersonates no one here).
pub fn own_impersonation(target: &Target) -> Option<Impersonation> {
    let sendable = target.credentials.sendable().filter(|c| !c.is_empty())?;
    sendable.impersonation.as_ref().map(Impersonation::new)
}

/// The name's lookup, made once per run; whether it was another target's.
pub async fn resolve(name: &str, ctx: &RunContext) -> (Lookup, bool) {
    let make = || async { Arc::new(resolve::resolve(&ctx.dns, name, ctx.timeout).await) };
    let (lookup, made) = ctx.fleet.lookups.get(name.to_ascii_lowercase(), make).await;
    (lookup, !made)
}

/// The evidence a shared lookup's `dns.resolve` carries.
pub fn shared_lookup_note(name: &str) -> String {
    format!("one lookup of {name} answered every target of this run that names it")
}

/// The target's connection to its API server: opened by `open_link` (the link steps,
/// `engine/connect`), or the one an earlier target with the same [`link_key`] opened, whose
/// results are then this target's.
pub async fn connection<Opened>(
    target: &Arc<Target>,
    addresses: &[IpAddr],
    ctx: &RunContext,
    rec: &Arc<Recorder>,
    open_link: impl FnOnce() -> Opened,
) -> Option<HttpConnection>
where
    Opened: Future<Output = Option<HttpConnection>>,
{
    let begin = || async {
        Arc::new(Opening {
            opener: rec.clone(),
            from: rec.progress(),
            name: target.name.clone(),
            link: OnceCell::new(),
            opened: Notify::new(),
        })
    };
    let key = link_key(target, addresses);
    let questioner = Some(questioner_key(target));
    let (opening, _) = ctx.fleet.links.get_as(key.clone(), questioner, begin).await;
    let answering = |conn: HttpConnection, link: &Link| {
        let key = answer_key(&key, link.client_cert_requested);
        conn.answering_once(ctx.fleet.answers.clone(), key)
    };
    // Only the target that began the opening opens the connection.
    let opener = Arc::ptr_eq(&opening.opener, rec);
    if opener {
        let own = open_link().await;
        let link = Arc::new(rec.link_since(opening.from, own.as_ref(), &target.name));
        // Only this target sets the cell, so the set cannot fail; either way the joiners
        // read what is in it.
        let _ = opening.link.set(link.clone());
        opening.opened.notify_waiters();
        return own.map(|conn| answering(conn, &link));
    }
    // The opener may stop before it finishes: the run's deadline stops every target (this
    // one's report then says where the opener stood, `stopped_while_joining`), or kube-reach
    // failed inside it (its report says so). Beginning anew here would only be stopped in its
    // first step, blaming a layer the opener had passed.
    rec.waiting_for(Some(opening.clone()));
    let link = loop {
        // Registered before the check, so a notification between the two is not missed.
        let opened = opening.opened.notified();
        if let Some(link) = opening.link.get() {
            break link.clone();
        }
        opened.await;
    };
    rec.waiting_for(None);
    rec.join(&link, &target.name);
    let conn = link.conn.as_ref()?;
    Some(answering(
        conn.shared_with(own_bearer(target), own_impersonation(target)),
        &link,
    ))
}

/// What makes a target's questions its own, given its link: the credentials its requests
/// carry and the namespace its reviews ask about. Targets alike in these ask identical
/// questions, answered once ([`AnswerMemo`]), so one more of them adds no stream to a shared
/// connection and does not count against [`MAX_SHARERS`]: fifty contexts of one user on one
/// server share one connection, fifty users get ten.
fn questioner_key(target: &Target) -> Key {
    let key = (KeyBuilder::default())
        .optional(own_bearer(target).as_ref().map(Secret::expose))
        .part(&target.namespace);
    match own_impersonation(target) {
        Some(impersonation) => impersonation.key_parts(key.part([1])),
        None => key.part([0]),
    }
    .finish()
}

/// The key of the answers over a connection of `link` ([`AnswerMemo`]): its link key, and
/// whether its server asked for a client certificate. Two connections of one link key may
/// reach different servers (a balancer's backends, one terminating TLS): a client certificate
/// sent on one and never asked for on the other makes their answers differ.
fn answer_key(link: &Key, client_cert_requested: Option<bool>) -> Key {
    (KeyBuilder::default().part(link.as_bytes()))
        .optional(client_cert_requested.map(|asked| [asked as u8]))
        .finish()
}

/// The evidence of a result judged on an answer another target's identical request got.
pub const SHARED_ANSWER_NOTE: &str = "answered once for every target of this run that asked the \
    same question of the same server, over the same route and TLS settings, with the same \
    credentials";

/// The evidence every result a target took from `opener`'s connection carries.
fn shared_note(opener: &str) -> String {
    format!(
        "shared with target {opener}: the same address, route, TLS settings and client \
         identity: one connection serves them all"
    )
}

impl Recorder {
    /// Notes the opening this target waits to join (`None`: it waits no more).
    fn waiting_for(&self, opening: Option<Arc<Opening>>) {
        if let Ok(mut joining) = self.joining.lock() {
            *joining = opening;
        }
    }

    /// At an abort while this target waited to join a connection another target was still
    /// opening: the opener's results so far, each saying it was shared, go to `results`, and
    /// the check the opener was in is where this target stopped too (not its first row not
    /// reached, `tcp.connect`, which the opener may well have passed).
    pub(super) fn stopped_while_joining(
        &self,
        results: &mut Vec<CheckResult>,
    ) -> Option<(CheckId, String)> {
        let opening = self.joining.lock().ok()?.clone()?;
        if opening.link.initialized() {
            return None;
        }
        let note = shared_note(&opening.name);
        let so_far = (opening.opener.results.lock())
            .map(|r| r.get(opening.from.0..).unwrap_or_default().to_vec())
            .unwrap_or_default();
        results.extend(so_far.into_iter().map(|r| r.with_evidence(note.as_str())));
        opening.opener.current.lock().ok()?.clone()
    }

    /// How many results and tried paths are recorded so far.
    fn progress(&self) -> (usize, usize) {
        let results = self.results.lock().map(|r| r.len()).unwrap_or_default();
        let paths = self.paths.lock().map(|p| p.len()).unwrap_or_default();
        (results, paths)
    }

    /// What was recorded since `from`, for the targets that join `conn`.
    fn link_since(
        &self,
        (results, paths): (usize, usize),
        conn: Option<&HttpConnection>,
        opener: &str,
    ) -> Link {
        let since = |all: &[CheckResult]| all.get(results..).unwrap_or_default().to_vec();
        Link {
            results: self.results.lock().map(|r| since(&r)).unwrap_or_default(),
            paths: (self.paths.lock())
                .map(|p| p.get(paths..).unwrap_or_default().to_vec())
                .unwrap_or_default(),
            client_cert_requested: self.client_cert_requested(),
            conn: conn.map(HttpConnection::without_credentials),
            opener: opener.to_string(),
        }
    }

    /// Records `link`'s results as this target's own (`name`), each saying it was shared.
    fn join(&self, link: &Link, name: &str) {
        let note = shared_note(&link.opener);
        self.push_all(
            (link.results.iter())
                .map(|r| r.clone().with_evidence(note.as_str()))
                .collect::<Vec<_>>(),
        );
        if let Ok(mut paths) = self.paths.lock() {
            paths.extend(link.paths.iter().map(|p| netpol::Attempted {
                target: name.to_string(),
                ..p.clone()
            }));
        }
        if let Some(requested) = link.client_cert_requested {
            self.note_client_cert_requested(requested);
        }
    }
}

/// Everything the TCP, proxy and TLS layers of a target depend on: its kind, endpoint and
/// addresses, route (proxy and its credentials), TLS settings (CAs, where they came from,
/// server name, skip-verify), the client identity it presents and its config.tls finding.
/// Two targets with equal keys get equal results from those layers, and a connection one of
/// them verified is one the other's settings verify.
fn link_key(target: &Target, addresses: &[IpAddr]) -> Key {
    let mut key = KeyBuilder::default().part(target.kind.as_str());
    key = match &target.endpoint {
        None => key.part([0]),
        Some(e) => (key.part([1]).part([e.scheme as u8]))
            .part(e.authority())
            .part(&e.base_path),
    };
    for ip in addresses {
        key = key.part(ip.to_string());
    }
    key = match &target.route {
        Route::Direct => key.part("direct"),
        Route::Proxy(p) => (key.part("proxy").part(format!("{}:{}", p.host, p.port)))
            .part(&p.display)
            .part([p.tls as u8])
            .optional(p.authorization.as_ref().map(|a| a.expose())),
    };
    key = match &target.tls {
        None => key.part([0]),
        Some(tls) => {
            key = key.part([1]).part(tls.ca_certs.len().to_be_bytes());
            for ca in &tls.ca_certs {
                key = key.part(ca);
            }
            (key.optional(tls.ca_source.as_ref()))
                .part([
                    tls.ca_replaces_system_roots as u8,
                    tls.insecure_skip_verify as u8,
                ])
                .part(&tls.server_name)
        }
    };
    let presented = target
        .credentials
        .sendable()
        .and_then(|c| c.client_identity());
    key = match presented {
        None => key.part([0]),
        Some(id) => {
            key = key.part([1]).part(id.chain.len().to_be_bytes());
            for cert in &id.chain {
                key = key.part(cert);
            }
            key.part(id.key.secret_der())
        }
    };
    let config_tls = (target.config_checks.iter())
        .filter(|c| c.id == CheckId::ConfigTls && c.status.is_failure())
        .map(|c| c.reason.map(|r| r.as_str()).unwrap_or("failed"));
    for finding in config_tls {
        key = key.part(finding);
    }
    key.finish()
}
