//! One mutating tool call: a [`Run`] that forwards progress to the client (only when it sent a
//! progress token), honours cancellation and collects the UPIDs it started; and the audit
//! record written when the call was not a preview.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::RoleServer;
use rmcp::handler::server::wrapper::Json;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::ops::{self, ProgressFn, Run};
use crate::server::{ProxmoxServer, tool_error};

/// One tool call's [`Run`] plus the task forwarding its progress notifications.
pub(crate) struct Call {
    pub(crate) run: Run,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Call {
    /// A [`Run`] for one request: progress notifications when the client asked for them.
    pub(crate) fn start(rc: &RequestContext<RoleServer>, cancel: CancellationToken) -> Self {
        let Some(token) = rc.meta.get_progress_token() else {
            return Call {
                run: Run::new(None, cancel),
                forwarder: None,
            };
        };
        let peer = rc.peer.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let step = Arc::new(AtomicU64::new(0));
        // Notifications go out in order from one task; it ends when the Run (the sender) is dropped.
        let forwarder = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let n = step.fetch_add(1, Ordering::Relaxed) + 1;
                let param =
                    ProgressNotificationParam::new(token.clone(), n as f64).with_message(msg);
                if peer.notify_progress(param).await.is_err() {
                    break;
                }
            }
        });
        let f: ProgressFn = Arc::new(move |m: String| {
            let _ = tx.send(m);
        });
        Call {
            run: Run::new(Some(f), cancel),
            forwarder: Some(forwarder),
        }
    }

    /// Flushes the progress notifications (they must precede the response) and returns the
    /// UPIDs the call started.
    pub(crate) async fn finish(self) -> Vec<String> {
        let upids = self.run.upids();
        drop(self.run);
        if let Some(f) = self.forwarder {
            let _ = f.await;
        }
        upids
    }
}

impl ProxmoxServer {
    /// Records a mutating call in the audit log and maps the result for the model.
    pub(crate) fn audited<T, A: Serialize>(
        &self,
        tool: &str,
        args: &A,
        upids: &[String],
        result: Result<T, ops::Error>,
    ) -> Result<Json<T>, String> {
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        if let Err(e) = &result
            && e.is_cancelled()
        {
            // The client will not read a response to a cancelled request: stderr and the audit
            // log are where the still-running tasks are reported.
            tracing::warn!(tool, error = %e, "call cancelled");
        }
        let args = serde_json::to_value(args).unwrap_or_default();
        self.ctx.audit.record(tool, &args, upids, &outcome);
        result.map(Json).map_err(tool_error)
    }
}
