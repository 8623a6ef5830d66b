//! The error type of operations: what failed, on which object, and what to do next.

use std::time::Duration;

use crate::pve;

/// A failed operation. `Display` is written for the model and the operator: it names the
/// object, the cause and the next step, and never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PVE (or the way to it) said no; the client's message already names the request.
    #[error("{0}")]
    Pve(#[from] pve::Error),
    /// The caller asked for something that does not exist.
    #[error("{what} not found: {hint}")]
    NotFound { what: String, hint: String },
    /// An argument is wrong before anything was sent.
    #[error("invalid argument `{arg}`: {reason}")]
    InvalidArgument { arg: String, reason: String },
    /// A safety guard refused the call before anything was sent.
    #[error("refused: {reason}")]
    Refused { reason: String },
    /// The object stayed locked past the lock deadline.
    #[error(
        "{object} is still locked ({lock}) after waiting {:.0} s; another operation holds it — check its task with task_status, or try again when it has finished",
        waited.as_secs_f64()
    )]
    Locked {
        object: String,
        lock: String,
        waited: Duration,
    },
    /// Part of a multi-step operation happened before a step failed: says what is in place.
    #[error("{done}; then {step} failed: {source} — {next}")]
    Partial {
        done: String,
        step: String,
        source: Box<Error>,
        next: String,
    },
    /// Reaching a node over SSH failed (connect, host key, authentication, channel, upload).
    #[error("{node} over ssh: {source}")]
    Ssh {
        node: String,
        #[source]
        source: crate::ssh::Error,
    },
    /// A command on a node exited non-zero. `command` is the program (and subcommand) only.
    #[error("`{command}` on {node} failed ({status}): {stderr}")]
    NodeCommand {
        node: String,
        command: String,
        status: String,
        stderr: String,
    },
    /// The call was cancelled while something ran outside PVE's task system.
    #[error("cancelled while waiting for {what}")]
    Cancelled { what: String },
    /// Configuration or credentials prevent the operation.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn invalid(arg: &str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            arg: arg.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn refused(reason: impl Into<String>) -> Self {
        Error::Refused {
            reason: reason.into(),
        }
    }

    /// The lock's name when PVE refused because the VM (or its config file) is locked.
    pub fn lock_contention(&self) -> Option<String> {
        match self {
            Error::Pve(e) => e.lock_contention(),
            _ => None,
        }
    }

    /// Whether PVE refused a config write because the config changed since it was read
    /// (the `digest` no longer matches): re-read and try again.
    pub fn is_digest_mismatch(&self) -> bool {
        matches!(self, Error::Pve(pve::Error::Api { message, .. }) if message.contains("checksum mismatch"))
    }

    /// Whether the call was cancelled (also when a partial result wraps the cancellation).
    pub fn is_cancelled(&self) -> bool {
        match self {
            Error::Pve(pve::Error::Cancelled { .. }) | Error::Cancelled { .. } => true,
            Error::Partial { source, .. } => source.is_cancelled(),
            _ => false,
        }
    }

    /// Whether PVE said the VMID is already taken.
    pub fn is_vmid_taken(&self) -> bool {
        matches!(self, Error::Pve(e) if e.is_vmid_taken())
    }
}

/// Longest stretch of user input an error message quotes.
pub(crate) const QUOTE_MAX: usize = 64;

/// User input as an error message may quote it: at most [`QUOTE_MAX`] characters (then `…`),
/// control characters (newlines included) shown as `\n`-style escapes, so a megabyte argument
/// or an injected line never reaches the answer, the log or the audit record whole.
pub(crate) fn quote(input: &str) -> String {
    let mut out = String::new();
    for (i, c) in input.chars().enumerate() {
        if i == QUOTE_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded_and_single_line() {
        let long = "x".repeat(1 << 20);
        let q = quote(&long);
        assert_eq!(q.chars().count(), QUOTE_MAX + 1, "{q}");
        assert!(q.ends_with('…'));
        assert_eq!(quote("a\nb"), "a\\nb");
        assert_eq!(quote("web-01"), "web-01");
    }
}
