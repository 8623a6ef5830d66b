//! Asking the person through MCP elicitation (`elicitation/create`, form mode): whether the
//! client can, the fixed form, and the answer as an [`Approval`].
//!
//! The form is built from constants only: an `approve` boolean and, for high-blast-radius
//! calls, a `typed_confirmation` string. Cluster and file text lives only in the message, as
//! quoted data ([`crate::ops::approval::question`]).

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    BooleanSchema, ElicitRequestParams, ElicitationAction, ElicitationSchema, StringSchema,
};
use rmcp::service::{ElicitationMode, Peer, ServiceError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::ops::approval::{self, Approval, FIELD_APPROVE, FIELD_TYPED, Question};

/// Whether the client declared form elicitation at initialization (protocol 2025-11-25 and
/// earlier; a 2026-07-28 client cannot be asked mid-call and counts as unable).
pub(crate) fn client_can_elicit(peer: &Peer<RoleServer>) -> bool {
    peer.supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
}

/// The form of a question: `approve` (required boolean, default false) and, when the person
/// must type something, `typed_confirmation` (required string). Titles and descriptions are
/// constants.
pub(crate) fn form(q: &Question) -> ElicitationSchema {
    let mut b =
        ElicitationSchema::builder().required_bool_property(FIELD_APPROVE, |s: BooleanSchema| {
            s.title("Approve")
                .description("Tick to let proxmox-manager do exactly what the message describes")
                .with_default(false)
        });
    if q.typed.is_some() {
        b = b.required_string_property(FIELD_TYPED, |s: StringSchema| {
            s.title("Type to confirm")
                .description("Type exactly the value the message asks for")
                .max_length(200)
        });
    }
    b.description("Approve a destructive operation")
        .build_unchecked()
}

/// Asks the person; waits at most `timeout` or until the call is cancelled. Returns how it
/// ended and a short detail for the tool error.
pub(crate) async fn ask(
    peer: &Peer<RoleServer>,
    q: &Question,
    timeout: Duration,
    ct: &CancellationToken,
) -> (Approval, String) {
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: q.message.clone(),
        requested_schema: form(q),
    };
    let answer = tokio::select! {
        r = peer.create_elicitation_with_timeout(params, Some(timeout)) => r,
        () = ct.cancelled() => {
            return (Approval::Cancelled, "the tool call was cancelled while waiting".into());
        }
    };
    match answer {
        Ok(r) => match r.action {
            ElicitationAction::Accept => {
                let content = r.content.unwrap_or(Value::Null);
                match approval::check_answer(q, &content) {
                    Ok(()) => (Approval::ElicitationAccepted, String::new()),
                    Err(why) => (Approval::Declined, why),
                }
            }
            ElicitationAction::Decline => (Approval::Declined, String::new()),
            ElicitationAction::Cancel => (Approval::Cancelled, String::new()),
            _ => (
                Approval::Declined,
                "an answer this server does not know".into(),
            ),
        },
        Err(ServiceError::Timeout { timeout }) => (
            Approval::TimedOut,
            format!("no answer within {} s", timeout.as_secs()),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "elicitation failed");
            (Approval::Failed, e.to_string())
        }
    }
}
