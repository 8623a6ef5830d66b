//! The one error type of the PVE client, and what a caller may safely do after each failure.
//!
//! Three families, after proxmox-client and kube: "never sent" ([`Error::Connect`]), "may have
//! been processed" ([`Error::Timeout`], [`Error::Transport`]) and "PVE said no" (status, message
//! and per-parameter errors). [`Error::is_retryable`] answers "is retrying the *same* request
//! safe?" so call sites never match on status codes.

use std::collections::BTreeMap;
use std::time::Duration;

use super::upid::Upid;

/// Everything that can go wrong talking to PVE. Messages are lowercase, name the object, the
/// cause and the next step. No variant ever contains the token secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be established: the request was never sent.
    #[error(
        "cannot connect to {endpoint}: {reason}; check that the host is reachable and pveproxy listens on the api port"
    )]
    Connect { endpoint: String, reason: String },

    /// The TLS handshake failed (untrusted certificate, fingerprint mismatch, wrong name...).
    /// `presented_fingerprint` is the SHA-256 of the leaf the server showed, when known.
    #[error("tls handshake with {endpoint} failed: {reason}")]
    Tls {
        endpoint: String,
        reason: String,
        presented_fingerprint: Option<String>,
    },

    /// No complete response within the per-request timeout. The request may have been processed.
    #[error(
        "request {method} {path} on {endpoint} got no answer within {timeout:?}; the request may still have been processed"
    )]
    Timeout {
        method: String,
        path: String,
        endpoint: String,
        timeout: Duration,
    },

    /// The connection broke after the request was (possibly) sent.
    #[error(
        "request {method} {path} on {endpoint} failed in transit: {reason}; the request may have been processed"
    )]
    Transport {
        method: String,
        path: String,
        endpoint: String,
        reason: String,
    },

    /// 401: the token was rejected.
    #[error(
        "authentication failed at {endpoint} ({message}); check the token id and secret, and that the token exists and has not expired"
    )]
    Unauthorized { endpoint: String, message: String },

    /// 403: a privilege is missing. `missing` is `(acl path, privilege)` when PVE said which.
    #[error("{}", forbidden_text(.method, .path, .message, .missing))]
    Forbidden {
        method: String,
        path: String,
        message: String,
        missing: Option<(String, String)>,
    },

    /// Any other non-success status, with PVE's message and per-parameter errors.
    #[error("{}", api_text(*.status, .method, .path, .message, .errors))]
    Api {
        status: u16,
        method: String,
        path: String,
        message: String,
        errors: BTreeMap<String, String>,
    },

    /// 595 on `/nodes/{node}/...`: the cluster could not reach that node.
    #[error(
        "node {node} is offline or unreachable from the cluster ({message}); pick another node or check the node"
    )]
    NodeOffline { node: String, message: String },

    /// The response did not have the expected shape; `json_path` names where.
    #[error("cannot decode the answer to {method} {path} at {json_path}: {reason}")]
    Decode {
        method: String,
        path: String,
        json_path: String,
        reason: String,
    },

    /// `find_vm` found no guest with this id.
    #[error("vm {vmid} does not exist in the cluster; list vms to find the right id")]
    VmNotFound { vmid: u32 },

    /// The task stopped with an error exit status.
    #[error("{}", task_failed_text(.upid, .exitstatus, .log_tail))]
    TaskFailed {
        upid: Upid,
        exitstatus: String,
        log_tail: Vec<String>,
    },

    /// The wait deadline passed; the task is still running on PVE (it was not stopped).
    #[error(
        "task {upid} is still running after the wait deadline; it was not stopped, check it again later with its upid"
    )]
    TaskTimeout { upid: Upid },

    /// The caller cancelled the wait; the listed tasks keep running on PVE.
    #[error("{}", cancelled_text(.upids_running))]
    Cancelled { upids_running: Vec<Upid> },

    /// Bad input caught before anything was sent (token format, option values...).
    #[error("{message}")]
    InvalidInput { message: String },
}

impl Error {
    /// Whether retrying the *same* request is safe.
    ///
    /// - [`Error::Connect`]: true, the request never left this machine.
    /// - [`Error::Timeout`] / [`Error::Transport`]: true only for GET, because a POST, PUT or
    ///   DELETE may have been processed.
    /// - [`Error::Api`]: true only for GET answered 502, 503 or 504. PVE uses 500 for semantic
    ///   failures such as "VM is locked", which a retry does not fix.
    /// - everything else: false.
    ///
    /// The client already retries GETs by itself (with capped backoff) and never retries a
    /// POST/PUT/DELETE after it may have been sent; this method is for callers that build
    /// their own loops on top.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Timeout { method, .. } | Error::Transport { method, .. } => method == "GET",
            Error::Api { status, method, .. } => method == "GET" && matches!(status, 502..=504),
            _ => false,
        }
    }

    /// The HTTP status PVE answered, for the variants that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::Api { status, .. } => Some(*status),
            Error::NodeOffline { .. } => Some(595),
            _ => None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidInput {
            message: message.into(),
        }
    }
}

fn forbidden_text(
    method: &str,
    path: &str,
    message: &str,
    missing: &Option<(String, String)>,
) -> String {
    match missing {
        Some((acl, privilege)) => format!(
            "permission denied for {method} {path}: the token lacks privilege {privilege} on {acl} ({message}); grant it to the token's role, e.g. `pveum role modify ClaudeCodeManager --append 1 --privs {privilege}` when the role is granted on {acl} or a parent (with privilege separation the token needs the ACL too)"
        ),
        None => format!(
            "permission denied for {method} {path}: {message}; check the token's roles and privilege separation"
        ),
    }
}

fn api_text(
    status: u16,
    method: &str,
    path: &str,
    message: &str,
    errors: &BTreeMap<String, String>,
) -> String {
    let mut text = format!("request {method} {path} failed with http {status}: {message}");
    if !errors.is_empty() {
        let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        text.push_str(" (");
        text.push_str(&parts.join("; "));
        text.push(')');
    }
    text
}

fn task_failed_text(upid: &Upid, exitstatus: &str, log_tail: &[String]) -> String {
    let mut text = format!(
        "task {} {} on node {} failed: {exitstatus}",
        upid.task_type(),
        upid.id(),
        upid.node()
    );
    // The last few lines before the error say what the task was doing when it failed.
    let lines: Vec<&str> = log_tail
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.contains(exitstatus))
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if !tail.is_empty() {
        text.push_str(&format!("; log tail: {}", tail.join(" | ")));
    }
    text.push_str(&format!("; full log: task_log upid {upid}"));
    text
}

fn cancelled_text(upids: &[Upid]) -> String {
    let list: Vec<String> = upids.iter().map(ToString::to_string).collect();
    format!(
        "wait cancelled; these tasks keep running on pve: {}",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn upid() -> Result<Upid, Error> {
        "UPID:pve02:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam:".parse()
    }

    #[test]
    fn every_variant_displays_lowercase_and_retry_rules_hold() -> Result<(), Error> {
        let s = |x: &str| x.to_owned();
        let cases: Vec<(Error, bool)> = vec![
            (
                Error::Connect {
                    endpoint: s("https://a:8006"),
                    reason: s("refused"),
                },
                true,
            ),
            (
                Error::Tls {
                    endpoint: s("https://a:8006"),
                    reason: s("x"),
                    presented_fingerprint: None,
                },
                false,
            ),
            (
                Error::Timeout {
                    method: s("GET"),
                    path: s("/x"),
                    endpoint: s("e"),
                    timeout: Duration::from_secs(30),
                },
                true,
            ),
            (
                Error::Timeout {
                    method: s("POST"),
                    path: s("/x"),
                    endpoint: s("e"),
                    timeout: Duration::from_secs(30),
                },
                false,
            ),
            (
                Error::Transport {
                    method: s("GET"),
                    path: s("/x"),
                    endpoint: s("e"),
                    reason: s("reset"),
                },
                true,
            ),
            (
                Error::Transport {
                    method: s("DELETE"),
                    path: s("/x"),
                    endpoint: s("e"),
                    reason: s("reset"),
                },
                false,
            ),
            (
                Error::Unauthorized {
                    endpoint: s("e"),
                    message: s("Authentication failed!"),
                },
                false,
            ),
            (
                Error::Forbidden {
                    method: s("GET"),
                    path: s("/x"),
                    message: s("m"),
                    missing: None,
                },
                false,
            ),
            (
                Error::Api {
                    status: 503,
                    method: s("GET"),
                    path: s("/x"),
                    message: s("m"),
                    errors: BTreeMap::new(),
                },
                true,
            ),
            (
                Error::Api {
                    status: 503,
                    method: s("POST"),
                    path: s("/x"),
                    message: s("m"),
                    errors: BTreeMap::new(),
                },
                false,
            ),
            (
                Error::Api {
                    status: 500,
                    method: s("GET"),
                    path: s("/x"),
                    message: s("m"),
                    errors: BTreeMap::new(),
                },
                false,
            ),
            (
                Error::NodeOffline {
                    node: s("pve03"),
                    message: s("595 No route to host"),
                },
                false,
            ),
            (
                Error::Decode {
                    method: s("GET"),
                    path: s("/x"),
                    json_path: s("."),
                    reason: s("r"),
                },
                false,
            ),
            (Error::VmNotFound { vmid: 7 }, false),
            (
                Error::TaskFailed {
                    upid: upid()?,
                    exitstatus: s("boom"),
                    log_tail: vec![s("last words")],
                },
                false,
            ),
            (Error::TaskTimeout { upid: upid()? }, false),
            (
                Error::Cancelled {
                    upids_running: vec![upid()?],
                },
                false,
            ),
            (Error::invalid("bad input"), false),
        ];
        for (err, retryable) in cases {
            let text = err.to_string();
            let first = text.chars().next().unwrap_or('X');
            assert!(first.is_lowercase(), "{text}");
            assert_eq!(err.is_retryable(), retryable, "{text}");
        }
        let failed = Error::TaskFailed {
            upid: upid()?,
            exitstatus: s("boom"),
            log_tail: vec![s("last words")],
        };
        assert_eq!(
            failed.to_string(),
            "task qmclone 9000 on node pve02 failed: boom; log tail: last words; full log: task_log upid UPID:pve02:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam:"
        );
        Ok(())
    }
}
