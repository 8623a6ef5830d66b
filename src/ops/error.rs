//! The error type of operations: what failed, on which object, and what to do next.

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
}
