//! Why a chain is not trusted (spec §2, "Telling trust failures apart"). kubectl prints
//! `x509: certificate signed by unknown authority` for all of these; the fix differs in each, so
//! the reading is made from what the chain itself carries (names, key identifiers, AIA,
//! basicConstraints, which certificate's key signed which) and from where the trust anchors
//! came from. Pure: no I/O, and an AIA URL is evidence, never fetched.

use std::time::SystemTime;

use rustls::pki_types::CertificateDer;

use x509_parser::prelude::X509Certificate;

use crate::catalogue::Reason;
use crate::x509::{self, CertFacts, format_time, key_id_hex, signed_by, weak_signature_hash};

/// One certificate, parsed once: its bytes, the parsed form (to check signatures) and what it
/// says.
#[derive(Clone)]
pub struct Cert<'a> {
    pub der: &'a CertificateDer<'static>,
    x509: X509Certificate<'a>,
    pub facts: CertFacts,
}

impl<'a> Cert<'a> {
    pub fn parse(der: &'a CertificateDer<'static>) -> Option<Cert<'a>> {
        let x509 = x509::parse(der)?;
        let facts = CertFacts::of(&x509);
        Some(Cert { der, x509, facts })
    }

    /// Whether `issuer`'s key signed this certificate; `None` when it cannot be told.
    fn signed_by(&self, issuer: &Cert<'_>) -> Option<bool> {
        signed_by(&self.x509, &issuer.x509)
    }

    fn self_signed(&self) -> bool {
        self.facts.self_issued && self.signed_by(self) != Some(false)
    }
}

/// What the judgement starts from.
pub struct TrustInput<'a> {
    /// The chain as presented, leaf first (certificates that do not parse left out; empty
    /// when the leaf itself does not parse).
    pub chain: Vec<Cert<'a>>,
    /// CA certificates the target configures (kubeconfig, `--ca-file`, `KUBE_CA_PEM`,
    /// `CI_SERVER_TLS_CA_FILE`); empty when only the system roots are trusted.
    pub anchors: Vec<Cert<'a>>,
    /// The route's proxy, when the chain came through one.
    pub via_proxy: Option<&'a str>,
    /// webpki said a signature did not verify.
    pub bad_signature: bool,
    /// webpki said a certificate is out of date. `net::tls::verify` already forgives the
    /// leaf's own dates (tls.validity's business), so this is about a CA on the path.
    pub out_of_date: bool,
    /// webpki refused a signature algorithm (SHA-1, MD5; or one ring lacks, such as P-521):
    /// the right CA may have signed.
    pub unsupported_algorithm: bool,
    /// webpki said the leaf's extendedKeyUsage does not allow serverAuth.
    pub wrong_purpose: bool,
    /// The moment the chain was judged at.
    pub now: SystemTime,
    /// What the verifier said, for readings where the chain does reach a configured CA.
    pub verifier: String,
    /// Where this target takes a CA from, for fixes ([`crate::catalogue::ca_setting`]).
    pub ca_setting: &'a str,
}

/// The likelier reading, with what was seen and, where another reading stays possible, that
/// reading and what would tell the two apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub reason: Reason,
    pub evidence: Vec<String>,
    /// A concrete fix for this chain, put before the catalogue's general one.
    pub fix_detail: Option<String>,
}

impl Reading {
    fn new(reason: Reason, evidence: impl Into<String>) -> Reading {
        Reading {
            reason,
            evidence: vec![evidence.into()],
            fix_detail: None,
        }
    }
    fn also(mut self, line: impl Into<String>) -> Reading {
        self.evidence.push(line.into());
        self
    }
    fn fix(mut self, detail: impl Into<String>) -> Reading {
        self.fix_detail = Some(detail.into());
        self
    }
}

/// Issuer-name fragments of TLS-inspection products, matched case-insensitively in the
/// subjects and issuers of the presented chain. Each is a default CA name the product ships
/// with (or its vendor's `O=`), specific enough not to match a CA that signs API servers:
/// Zscaler Root CA; Netskope (`ca.<tenant>.goskope.com`); Palo Alto Networks; Fortinet /
/// FortiGate CA; Blue Coat ProxySG; Cisco Umbrella Root CA; mitmproxy; Charles Proxy (XK72);
/// Fiddler (DO_NOT_TRUST_FiddlerRoot); Kaspersky; ESET SSL Filter CA; Avast/AVG Web/Mail
/// Shield; Sophos; Forcepoint / Websense; Check Point; Barracuda. Bare "Symantec" or "Cisco"
/// are left out: both also name ordinary CAs.
const INTERCEPTORS: &[(&str, &str)] = &[
    ("zscaler", "Zscaler"),
    ("netskope", "Netskope"),
    ("goskope", "Netskope"),
    ("palo alto networks", "Palo Alto Networks"),
    ("fortinet", "Fortinet"),
    ("fortigate", "FortiGate"),
    ("blue coat", "Blue Coat"),
    ("bluecoat", "Blue Coat"),
    ("proxysg", "Blue Coat ProxySG"),
    ("cisco umbrella", "Cisco Umbrella"),
    ("mitmproxy", "mitmproxy"),
    ("charles proxy", "Charles Proxy"),
    ("xk72", "Charles Proxy"),
    ("fiddler", "Fiddler"),
    ("kaspersky", "Kaspersky"),
    ("eset ssl filter", "ESET"),
    ("avast", "Avast"),
    ("avg web/mail shield", "AVG"),
    ("sophos", "Sophos"),
    ("forcepoint", "Forcepoint"),
    ("websense", "Forcepoint (Websense)"),
    ("check point", "Check Point"),
    ("checkpoint", "Check Point"),
    ("barracuda", "Barracuda"),
];

/// Cluster CAs by their common name, with where the distribution keeps the CA certificate.
/// They sign the API server's leaf directly (no intermediate), and a rebuilt cluster gets a CA
/// of the same name with a new key.
fn cluster_ca(common_name: &str) -> Option<(&'static str, &'static str)> {
    let cn = common_name;
    if cn == "kubernetes" || cn == "kubernetes-ca" {
        Some(("kubeadm", "/etc/kubernetes/pki/ca.crt"))
    } else if cn.starts_with("k3s-server-ca@") {
        Some(("k3s", "/var/lib/rancher/k3s/server/tls/server-ca.crt"))
    } else if cn.starts_with("rke2-server-ca@") {
        Some(("RKE2", "/var/lib/rancher/rke2/server/tls/server-ca.crt"))
    } else if cn == "minikubeCA" {
        Some(("minikube", "~/.minikube/ca.crt"))
    } else if cn == "kube-ca" {
        Some(("RKE", "/etc/kubernetes/ssl/kube-ca.pem"))
    } else {
        None
    }
}

/// How far the presented chain links up by itself, following names and signatures.
struct Path {
    /// Indices into the chain, leaf first.
    links: Vec<usize>,
    /// A sent certificate with the issuer's name whose key did not sign the one below it.
    wrong_key: Option<(usize, usize)>,
}

fn build_path(chain: &[Cert<'_>]) -> Path {
    let mut path = Path {
        links: vec![0],
        wrong_key: None,
    };
    // Each step uses a new certificate, so this ends after at most chain.len() steps.
    while let Some(&at) = path.links.last() {
        let cert = &chain[at];
        if cert.facts.self_issued {
            break;
        }
        let named = (0..chain.len())
            .filter(|i| !path.links.contains(i) && cert.facts.named_issuer_is(&chain[*i].facts));
        let mut next = None;
        for i in named {
            match cert.signed_by(&chain[i]) {
                Some(false) => path.wrong_key = path.wrong_key.or(Some((i, at))),
                _ => {
                    next = Some(i);
                    break;
                }
            }
        }
        match next {
            Some(i) => path.links.push(i),
            None => break,
        }
    }
    path
}

/// The one reason a person can act on, for a chain webpki did not trust.
pub fn read(input: &TrustInput<'_>) -> Reading {
    let Some(leaf) = input.chain.first() else {
        return Reading::new(
            Reason::UnknownAuthority,
            "the server's certificate (the first presented) is not a readable X.509 certificate",
        );
    };
    if let Some(r) = weak_signature(input)
        .or_else(|| issuer_out_of_date(input))
        .or_else(|| wrong_purpose(input))
    {
        return r;
    }
    let path = build_path(&input.chain);
    if let Some(r) = broken_link(input, &path).or_else(|| reaches_anchor(input, &path)) {
        return r;
    }
    if let Some(r) = inspection_product(input) {
        return r;
    }
    if leaf.self_signed() {
        return self_signed(input, leaf);
    }
    let top = &input.chain[*path.links.last().unwrap_or(&0)];
    let reading = if top.facts.self_issued {
        complete_chain(input, top)
    } else {
        missing_issuer(input, &path, top)
    };
    through_proxy(input, top, reading)
}

/// webpki refused an algorithm, and a certificate (sent or configured) is signed with a
/// retired hash: say which, whatever the names say, since reissuing it is the fix.
fn weak_signature(input: &TrustInput<'_>) -> Option<Reading> {
    if !input.unsupported_algorithm {
        return None;
    }
    // Only signatures someone checks: a configured CA is trusted as it is, a self-issued
    // root's signature on itself is checked by nobody (webpki, like Go, trusts its key), and a
    // sent certificate no path from the leaf reaches by name is never tried.
    let on_path = named_from_leaf(&input.chain);
    let weak = on_path
        .iter()
        .map(|&i| &input.chain[i])
        .filter(|c| !c.facts.self_issued && !is_anchor(input, c))
        .find_map(|c| weak_signature_hash(&c.x509).map(|h| (c, h)));
    let Some((cert, hash)) = weak else {
        // Not a retired hash: an algorithm the verifier lacks, which kubectl may have.
        return Some(Reading::new(
            Reason::UnsupportedAlgorithm,
            "the verifier does not support a signature algorithm or key in this chain (ring lacks ECDSA P-521 and RSA under 2048 bits); Go's crypto/x509 may accept it",
        ));
    };
    Some(Reading::new(
        Reason::WeakSignature,
        format!(
            "{} is signed with {hash}, which the verifier (like kubectl's Go crypto/x509) no longer accepts",
            cert.facts.subject
        ),
    ))
}

/// The sent certificates a verifier can try on a path from the leaf: the leaf, and every one
/// whose subject is the issuer named by one already reached (by name only, as path building
/// picks its candidates; every same-named candidate counts). Indices into `chain`, leaf first.
fn named_from_leaf(chain: &[Cert<'_>]) -> Vec<usize> {
    let mut reached = Vec::new();
    if !chain.is_empty() {
        reached.push(0);
    }
    let mut at = 0;
    // Each index is added once, so this ends after at most chain.len() rounds.
    while let Some(&i) = reached.get(at) {
        at += 1;
        if chain[i].facts.self_issued {
            continue;
        }
        for (j, c) in chain.iter().enumerate() {
            if !reached.contains(&j) && chain[i].facts.named_issuer_is(&c.facts) {
                reached.push(j);
            }
        }
    }
    reached
}

/// webpki refused the leaf for its purpose: an extendedKeyUsage without serverAuth.
fn wrong_purpose(input: &TrustInput<'_>) -> Option<Reading> {
    input.wrong_purpose.then(|| {
        Reading::new(
            Reason::WrongPurpose,
            "the server's certificate has an extendedKeyUsage without serverAuth",
        )
    })
}

/// webpki found a CA on the path out of date (the leaf's own dates are forgiven before this
/// is asked): name the sent intermediate or configured anchor whose dates exclude now.
fn issuer_out_of_date(input: &TrustInput<'_>) -> Option<Reading> {
    if !input.out_of_date {
        return None;
    }
    let now = input.now;
    let stale = |c: &&Cert<'_>| c.facts.not_after < now || c.facts.not_before > now;
    let sent = input.chain.iter().skip(1).find(stale);
    let (cert, whose) = match sent {
        Some(c) => (c, "the server sends"),
        None => (input.anchors.iter().find(stale)?, "the configured CA"),
    };
    let when = if cert.facts.not_after < now {
        format!("expired {}", format_time(cert.facts.not_after))
    } else {
        format!("valid only from {}", format_time(cert.facts.not_before))
    };
    Some(Reading::new(
        Reason::IssuerExpired,
        format!("{whose} {}, which {when}", cert.facts.subject),
    ))
}

/// A link inside the sent chain is broken: a non-CA issuer, or a stale intermediate.
fn broken_link(input: &TrustInput<'_>, path: &Path) -> Option<Reading> {
    let chain = &input.chain;
    if let Some(&issuer) = path.links.iter().skip(1).find(|&&i| !chain[i].facts.is_ca) {
        return Some(Reading::new(
            Reason::NotACa,
            format!(
                "{} signs the certificate below it but is not a CA (no basicConstraints CA:TRUE)",
                chain[issuer].facts.subject
            ),
        ));
    }
    let (issuer, below) = path.wrong_key?;
    let top_is_linked = path.links.last() == Some(&below);
    (input.bad_signature || top_is_linked).then(|| {
        Reading::new(
            Reason::BadSignature,
            format!(
                "the server sends {} as the issuer of {}, but its key did not sign it",
                chain[issuer].facts.subject, chain[below].facts.subject
            ),
        )
        .also(key_ids(&chain[below].facts, &chain[issuer].facts))
        .fix("The intermediate sent is not the one that issued the certificate below it (an old copy after the CA was renewed?): send the current intermediate.")
    })
}

/// An inspection product named by an issuer, or by a CA certificate's own subject (never by a
/// leaf's subject: a company's API server may carry its name).
fn inspection_product(input: &TrustInput<'_>) -> Option<Reading> {
    input.chain.iter().find_map(|c| {
        let subject = if c.facts.is_ca {
            c.facts.subject.as_str()
        } else {
            ""
        };
        let names = format!("{subject} {}", c.facts.issuer).to_lowercase();
        let (_, product) = INTERCEPTORS.iter().find(|(w, _)| names.contains(w))?;
        let mut r = Reading::new(
            Reason::Intercepted,
            format!(
                "{} issued by {}: a {product} TLS-inspection CA",
                c.facts.subject, c.facts.issuer
            ),
        );
        if let Some(proxy) = input.via_proxy {
            r = r.also(format!("the connection went through the proxy {proxy}"));
        }
        Some(r)
    })
}

fn self_signed(input: &TrustInput<'_>, leaf: &Cert<'_>) -> Reading {
    let mut r = Reading::new(
        Reason::SelfSigned,
        format!(
            "{} is its own issuer and is not trusted",
            leaf.facts.subject
        ),
    );
    if let Some((a, Tie::OtherKey)) = named_anchor(input, &leaf.facts.subject_der, leaf) {
        r = r
            .also(format!(
                "the configured CA has the same name but another key: the server's certificate was regenerated ({})",
                key_ids(&leaf.facts, &a.facts)
            ))
            .fix(format!("Put the server's current certificate in {} (the one there is an older copy).", input.ca_setting));
    }
    r
}

/// The server sent a chain up to a root: that root is simply not trusted here.
fn complete_chain(input: &TrustInput<'_>, root: &Cert<'_>) -> Reading {
    let name = &root.facts.subject;
    if input.anchors.is_empty() {
        return Reading::new(
            Reason::UnknownAuthority,
            format!("the server sends a complete chain up to the root {name}, a private CA: no CA is configured, and the system roots do not include it"),
        )
        .fix(unknown_authority_fix(input, root.facts.common_name.as_deref(), name));
    }
    let mut r = Reading::new(
        Reason::CaMismatch,
        format!(
            "the server sends a complete chain up to the root {name}, which is not the configured CA ({})",
            anchor_names(input)
        ),
    );
    if let Some((a, Tie::OtherKey)) = named_anchor(input, &root.facts.subject_der, root) {
        r = r.also(format!(
            "same CA name, another key: {}",
            key_ids(&root.facts, &a.facts)
        ));
    }
    r
}

/// The top of what was sent names an issuer that was not sent.
fn missing_issuer(input: &TrustInput<'_>, path: &Path, top: &Cert<'_>) -> Reading {
    let issuer = &top.facts.issuer;
    if let Some((anchor, _)) = named_anchor(input, &top.facts.issuer_der, top) {
        return same_name_other_key(input, top, anchor);
    }
    if let Some(url) = top.facts.ca_issuers.first() {
        return Reading::new(
            Reason::MissingIntermediate,
            format!(
                "{} names its issuer {issuer}, published at {url} (AIA caIssuers, not fetched): an intermediate the server did not send",
                top.facts.subject
            ),
        )
        .fix(format!(
            "Append the certificate of {issuer} (its CA publishes it at {url}) to the server's certificate file, after the leaf."
        ));
    }
    if input.anchors.is_empty() {
        return private_issuer(input, top);
    }
    if let Some(r) = tied_to_anchor(input, path, top) {
        return r;
    }
    if let Some(r) = same_organisation(input, path, top) {
        return r;
    }
    other_ca(input, top)
}

/// No CA configured and a private issuer: the everyday `unknown authority`.
fn private_issuer(input: &TrustInput<'_>, top: &Cert<'_>) -> Reading {
    let issuer = &top.facts.issuer;
    let cn = top.facts.issuer_common_name.as_deref();
    let mut r = Reading::new(
        Reason::UnknownAuthority,
        format!("{} was issued by {issuer}, a private CA (no AIA caIssuers): no CA is configured, and the system roots do not include it", top.facts.subject),
    )
    .fix(unknown_authority_fix(input, cn, issuer));
    if cn.and_then(cluster_ca).is_none() {
        r = r.also(format!(
            "other reading: missing-intermediate, if {issuer} is an intermediate of a public CA that the server should send; a public CA's certificates carry an AIA caIssuers URL, these do not"
        ));
    }
    r
}

fn unknown_authority_fix(input: &TrustInput<'_>, issuer_cn: Option<&str>, issuer: &str) -> String {
    let setting = input.ca_setting;
    match issuer_cn.and_then(cluster_ca) {
        Some((kind, path)) => format!(
            "The server's certificate was issued by the {kind} cluster CA {issuer}: put that CA ({path} on a control-plane node) in {setting}."
        ),
        None => format!("Put the CA that issued the server's certificate ({issuer}) in {setting}."),
    }
}

/// A configured CA carries the missing issuer's name and did not sign it ([`reaches_anchor`]
/// took the case where it did): a CA of the same name with another key.
fn same_name_other_key(input: &TrustInput<'_>, top: &Cert<'_>, anchor: &Cert<'_>) -> Reading {
    let issuer = &top.facts.issuer;
    let kind = top
        .facts
        .issuer_common_name
        .as_deref()
        .and_then(cluster_ca)
        .map(|(kind, path)| format!(" (a {kind} CA: take the current one from {path})"))
        .unwrap_or_default();
    Reading::new(
        Reason::CaMismatch,
        format!("the configured CA and the server's issuer are both named {issuer}, but the configured CA's key did not sign {}: a CA of the same name with another key", top.facts.subject),
    )
    .also(key_ids(&top.facts, &anchor.facts))
    .fix(format!(
        "The cluster's CA was regenerated (rebuilt cluster) or this is another cluster of the same kind: replace the CA in {} with the cluster's current CA{kind}.", input.ca_setting
    ))
}

/// A sent certificate (not on the leaf's path) was signed by a configured CA: the server sends
/// part of the chain up to it but not the link from the leaf.
fn tied_to_anchor(input: &TrustInput<'_>, path: &Path, top: &Cert<'_>) -> Option<Reading> {
    let (sent, anchor) = input
        .chain
        .iter()
        .enumerate()
        .filter(|(i, _)| !path.links.contains(i))
        .find_map(|(_, c)| {
            let aki = c.facts.authority_key_id.as_ref()?;
            let a = input
                .anchors
                .iter()
                .find(|a| a.facts.subject_key_id.as_ref() == Some(aki))?;
            Some((c, a))
        })?;
    Some(Reading::new(
        Reason::MissingIntermediate,
        format!(
            "{} names its issuer {}, which was not sent; the server did send {}, issued by the configured CA {} (authorityKeyIdentifier = its subjectKeyIdentifier): the intermediate between them is missing",
            top.facts.subject, top.facts.issuer, sent.facts.subject, anchor.facts.subject
        ),
    ).fix(send_issuer(&top.facts.issuer)))
}

/// The leaf's issuer was not sent and belongs to the organisation of a configured root.
fn same_organisation(input: &TrustInput<'_>, path: &Path, top: &Cert<'_>) -> Option<Reading> {
    if path.links.len() != 1 {
        // The missing link is above a sent intermediate: that is another root as often as
        // another intermediate, and `other_ca` says so.
        return None;
    }
    let anchor = input.anchors.iter().find(|a| {
        a.facts.is_ca
            && a.facts.self_issued
            && a.facts
                .subject_orgs
                .iter()
                .any(|o| top.facts.issuer_orgs.contains(o))
    })?;
    let issuer = &top.facts.issuer;
    Some(
        Reading::new(
            Reason::MissingIntermediate,
            format!(
                "the leaf's issuer {issuer} was not sent; the configured CA {} is a root of the same organisation ({}), so {issuer} is most likely its issuing intermediate",
                anchor.facts.subject,
                shared_orgs(&anchor.facts, &top.facts).join(", ")
            ),
        )
        .also(format!(
            "other reading: ca-mismatch, if {issuer} is not under {}; the intermediate's own certificate tells them apart (its issuer is the configured CA, or not)",
            anchor.facts.subject
        ))
        .fix(send_issuer(issuer)),
    )
}

fn send_issuer(issuer: &str) -> String {
    format!("Append the certificate of {issuer} to the server's certificate file, after the leaf.")
}

/// Issued by a CA the configured one is not and has no visible tie to.
fn other_ca(input: &TrustInput<'_>, top: &Cert<'_>) -> Reading {
    let issuer = &top.facts.issuer;
    let cluster = top.facts.issuer_common_name.as_deref().and_then(cluster_ca);
    let mut r = Reading::new(
        Reason::CaMismatch,
        format!(
            "{} was issued by {issuer}; the configured CA ({}) is another CA, with no tie to it (name, organisation or key identifier)",
            top.facts.subject,
            anchor_names(input)
        ),
    );
    match cluster {
        Some((kind, path)) => {
            r = r.also(format!("{issuer} is a {kind} cluster CA, which signs the API server directly: the kubeconfig holds another cluster's CA")).fix(format!(
                "Replace the CA in {} with this cluster's CA ({path} on a control-plane node), or point the server URL at the cluster the CA belongs to.", input.ca_setting
            ));
        }
        None => {
            r = r.also(format!(
                "other reading: missing-intermediate, if {issuer} is an intermediate under the configured CA that the server does not send; the server's full chain (`openssl s_client -showcerts`) or the CA's own certificate tells them apart"
            ));
        }
    }
    r
}

/// Through a proxy, a chain not tied to the configured CA and not from a cluster CA is most
/// likely the proxy's own (TLS inspection).
fn through_proxy(input: &TrustInput<'_>, top: &Cert<'_>, reading: Reading) -> Reading {
    let Some(proxy) = input.via_proxy else {
        return reading;
    };
    let from_cluster_ca = [
        top.facts.common_name.as_deref(),
        top.facts.issuer_common_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|cn| cluster_ca(cn).is_some());
    let tied = named_anchor(input, &top.facts.issuer_der, top).is_some()
        || named_anchor(input, &top.facts.subject_der, top).is_some();
    let readable = matches!(
        reading.reason,
        Reason::UnknownAuthority | Reason::CaMismatch
    );
    if !readable || tied || from_cluster_ca {
        return reading.also(format!(
            "the connection went through the proxy {proxy}; the chain looks like the cluster's own, so the proxy passed TLS through"
        ));
    }
    let mut r = Reading::new(
        Reason::Intercepted,
        format!(
            "the connection went through the proxy {proxy}, and the chain ({}) is neither from the configured CA nor from a cluster CA: most likely the proxy's TLS inspection",
            top.facts.issuer
        ),
    );
    r.evidence.extend(reading.evidence);
    r.also(format!(
        "other reading: {}, if the API server itself presents this chain; connecting without the proxy (host in NO_PROXY) or asking the proxy's administrators tells them apart",
        reading.reason.as_str()
    ))
}

/// How a configured CA relates to a certificate: the one answer to "is this the configured
/// CA (or signed by it)?" that every reading asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tie {
    /// The very certificate configured, byte for byte.
    Identical,
    /// Its key signed the certificate (a root's own self-signature included: then it is the
    /// same key).
    SameKey,
    /// It carries the name, but its key did not sign the certificate: another key.
    OtherKey,
    /// The signature could not be checked (an algorithm the checker lacks).
    Untold,
}

/// The configured CA named `name_der` (the certificate's issuer, or for a root its own
/// subject) and how it relates to `cert`; among CAs of the same name (old and new), one that
/// ties comes first.
fn named_anchor<'i>(
    input: &'i TrustInput<'_>,
    name_der: &[u8],
    cert: &Cert<'_>,
) -> Option<(&'i Cert<'i>, Tie)> {
    let mut found = None;
    for anchor in input
        .anchors
        .iter()
        .filter(|a| a.facts.subject_der == name_der)
    {
        let tie = if anchor.der.as_ref() == cert.der.as_ref() {
            Tie::Identical
        } else {
            match cert.signed_by(anchor) {
                Some(true) => Tie::SameKey,
                Some(false) => Tie::OtherKey,
                None => Tie::Untold,
            }
        };
        if matches!(tie, Tie::Identical | Tie::SameKey) {
            return Some((anchor, tie));
        }
        found = found.or(Some((anchor, tie)));
    }
    found
}

/// Whether `cert` is itself a configured CA: the same certificate, or a root with the same
/// name and key (a re-issued copy of the same root).
fn is_anchor(input: &TrustInput<'_>, cert: &Cert<'_>) -> bool {
    match named_anchor(input, &cert.facts.subject_der, cert) {
        Some((_, Tie::Identical)) => true,
        Some((_, Tie::SameKey)) => cert.facts.self_issued,
        _ => false,
    }
}

/// The sent path reaches a configured CA (one of its certificates is that CA, or was signed
/// by it), yet the verifier refused the chain: no CA problem at all, so say what the verifier
/// said (a name constraint, a path length, a bad signature lower down).
fn reaches_anchor(input: &TrustInput<'_>, path: &Path) -> Option<Reading> {
    let (cert, anchor, tie) = path.links.iter().find_map(|&i| {
        let cert = &input.chain[i];
        let itself =
            named_anchor(input, &cert.facts.subject_der, cert).filter(|_| is_anchor(input, cert));
        let signed = named_anchor(input, &cert.facts.issuer_der, cert)
            .filter(|(_, t)| *t == Tie::SameKey && !cert.facts.self_issued);
        itself.or(signed).map(|(a, t)| (cert, a, t))
    })?;
    let relation = match tie {
        Tie::Identical => "is the configured CA itself",
        _ if cert.facts.self_issued => "has the configured CA's name and key",
        _ => "was signed by the configured CA",
    };
    let reason = if input.bad_signature {
        Reason::BadSignature
    } else {
        Reason::ChainRejected
    };
    Some(Reading::new(
        reason,
        format!(
            "{} {relation} ({}), so the CA is the right one: the verifier refused the chain for another reason: {}",
            cert.facts.subject, anchor.facts.subject, input.verifier
        ),
    ))
}

fn anchor_names(input: &TrustInput<'_>) -> String {
    input
        .anchors
        .iter()
        .map(|a| a.facts.subject.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn shared_orgs(a: &CertFacts, b: &CertFacts) -> Vec<String> {
    a.subject_orgs
        .iter()
        .filter(|o| b.issuer_orgs.contains(o))
        .cloned()
        .collect()
}

/// "signed by key X; the configured CA's key is Y", from the key identifiers when present.
fn key_ids(cert: &CertFacts, issuer: &CertFacts) -> String {
    let show = |id: &Option<Vec<u8>>| id.as_deref().map_or("none".to_string(), key_id_hex);
    format!(
        "{}: authorityKeyIdentifier {}; {}: subjectKeyIdentifier {}",
        cert.subject,
        show(&cert.authority_key_id),
        issuer.subject,
        show(&issuer.subject_key_id)
    )
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
