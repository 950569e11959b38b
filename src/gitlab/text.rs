//! Small text helpers shared by the GitLab checks: header lookup, body excerpts that are safe
//! to print, and masking of anything shaped like a credential.

use serde::Deserialize;

/// How much of a response body an excerpt shows.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// Bodies larger than this are not parsed as JSON (the engine bounds reads; this is a backstop).
pub(crate) const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;

/// The value of the first header named `name` (case-insensitive), trimmed.
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// A header value fit for evidence: one line, bounded, credentials masked.
pub(crate) fn clean_header(value: &str) -> String {
    printable(&redact(value), 120)
}

/// The first bytes of a body as one printable line, with credentials masked.
pub(crate) fn excerpt(body: &[u8]) -> String {
    excerpt_masking(body, None)
}

/// Like [`excerpt`], also replacing every occurrence of a known secret.
pub(crate) fn excerpt_masking(body: &[u8], secret: Option<&str>) -> String {
    if body.is_empty() {
        return "(empty body)".to_string();
    }
    // Decode a little more than we show, so masking sees whole tokens before the cut.
    let head = &body[..body.len().min(EXCERPT_CHARS * 8)];
    let text = String::from_utf8_lossy(head);
    let mut known = crate::secret::Scrubber::new();
    if let Some(secret) = secret {
        known.add(secret);
    }
    let masked = known.scrub(&text);
    printable(&masked, EXCERPT_CHARS)
}

/// Replaces control characters, collapses whitespace and cuts to `max` characters.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if count == max {
            out.push('…');
            return out.trim_end().to_string();
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim_end().to_string()
}

/// Masks credential-shaped substrings (`ci:<id>:<token>`, `Bearer <token>`, `glcbt-…`, …): the
/// crate's one set of patterns, [`crate::secret::redact_patterns`].
pub(crate) fn redact(text: &str) -> String {
    crate::secret::redact_patterns(text)
}

/// The fields of a Kubernetes `Status` object that the checks read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct K8sStatus {
    pub kind: Option<String>,
    pub message: Option<String>,
    pub reason: Option<String>,
}

/// The body as a Kubernetes `Status`, when it is one.
pub(crate) fn k8s_status(body: &[u8]) -> Option<K8sStatus> {
    if body.len() > MAX_JSON_BYTES {
        return None;
    }
    let status: K8sStatus = serde_json::from_slice(body).ok()?;
    (status.kind.as_deref() == Some("Status")).then_some(status)
}

/// The top-level namespace (group or user) of a GitLab path: `a/b/proj` → `a`.
pub(crate) fn top_level(path: &str) -> &str {
    path.trim_matches('/').split('/').next().unwrap_or_default()
}

/// Whether `group` is `path` itself or one of its ancestors (case-insensitive, whole segments).
pub(crate) fn path_is_within(path: &str, group: &str) -> bool {
    let path = path.trim_matches('/').to_ascii_lowercase();
    let group = group.trim_matches('/').to_ascii_lowercase();
    !group.is_empty() && (path == group || path.starts_with(&format!("{group}/")))
}

/// Every group above a project path, nearest first: `a/b/c/proj` → `a/b/c`, `a/b`, `a`.
pub(crate) fn ancestor_groups(project_path: &str) -> Vec<String> {
    let segments: Vec<&str> = project_path.trim_matches('/').split('/').collect();
    (1..segments.len())
        .rev()
        .map(|n| segments[..n].join("/"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_agent_tokens_bearer_and_jwt_job_tokens() {
        let text = r#"{"msg":"ci:137:abc-DEF_123 and pat:2:glpat-x, Bearer s3cr3t; mycompany-glcbt-eyJabc"}"#;
        let masked = redact(text);
        assert_eq!(
            masked,
            r#"{"msg":"ci:137:[REDACTED] and pat:2:[REDACTED], Bearer [REDACTED]; mycompany-glcbt-[REDACTED]"}"#
        );
        assert_eq!(redact("magic:1:x"), "magic:1:x", "only whole words");
        assert_eq!(redact("ci:abc:x and ci:1:"), "ci:abc:x and ci:1:");
    }

    #[test]
    fn odd_input_never_panics() {
        let samples: [&[u8]; 9] = [
            b"",
            b"ci:",
            b"ci:1:",
            b"Bearer",
            b"Bearer ",
            "ci:\u{663}:x \u{e9}Bearer \u{1F600}".as_bytes(),
            &[0xe2, 0x82],
            b"glcbt-",
            b"pat:99999999999999999999999:x",
        ];
        for sample in samples {
            let text = String::from_utf8_lossy(sample);
            let _ = redact(&text);
            let _ = excerpt(sample);
            let _ = k8s_status(sample);
            let _ = crate::gitlab::classify_kas_anonymous(401, &[], sample);
            let _ = crate::gitlab::classify_kas_authenticated(
                502,
                &[],
                sample,
                std::time::Duration::ZERO,
            );
            let _ = crate::gitlab::agent_config::parse_agent_config(&text);
            let _ = crate::gitlab::allowed_answer::parse_allowed_agents(sample);
            let _ = crate::gitlab::agent::parse_agent_context(&text);
            let _ = crate::gitlab::agent::is_agent_server_url(&text);
        }
        assert_eq!(
            redact("pat:99999999999999999999999:x"),
            "pat:99999999999999999999999:[REDACTED]"
        );
    }

    #[test]
    fn excerpt_is_one_bounded_line() {
        let body = format!("<html>\n\t<body>{}</body>", "x".repeat(500));
        let e = excerpt(body.as_bytes());
        assert!(e.starts_with("<html> <body>xxx"));
        assert!(e.ends_with('…'));
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b""), "(empty body)");
        assert_eq!(excerpt(&[0xff, 0xfe, b'a']), "\u{fffd}\u{fffd}a");
    }

    #[test]
    fn excerpt_masks_the_known_secret_as_a_server_echoes_it() {
        let secret = "tok3n/with/slashes/in/it";
        let body =
            br#"{"token":"tok3n\/with\/slashes\/in\/it","plain":"tok3n/with/slashes/in/it"}"#;
        let e = excerpt_masking(body, Some(secret));
        assert!(!e.contains("slashes"), "{e}");
        assert!(e.contains(crate::secret::REDACTED), "{e}");
    }

    #[test]
    fn paths_and_groups() {
        assert_eq!(top_level("a/b/c"), "a");
        assert!(path_is_within("Group/Sub/proj", "group/sub"));
        assert!(!path_is_within("group/subway/proj", "group/sub"));
        assert_eq!(ancestor_groups("a/b/p"), vec!["a/b", "a"]);
        assert!(ancestor_groups("p").is_empty());
    }
}
