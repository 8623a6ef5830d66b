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

use crate::ops::spec::{Outcome, ToolSpec};
use crate::ops::{self, ProgressFn, Run};
use crate::server::{ProxmoxServer, tool_error};

/// One tool call's [`Run`] plus the task forwarding its progress notifications.
struct Call {
    run: Run,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Call {
    /// A [`Run`] for one request: progress notifications when the client asked for them.
    fn start(rc: &RequestContext<RoleServer>, cancel: CancellationToken) -> Self {
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
    async fn finish(self) -> Vec<String> {
        let upids = self.run.upids();
        drop(self.run);
        if let Some(f) = self.forwarder {
            let _ = f.await;
        }
        upids
    }
}

impl ProxmoxServer {
    /// The one path of every mutating tool: start the call (progress, cancellation, UPIDs),
    /// run the operation, then write the audit record unless nothing was done. Whether
    /// nothing was done is said by the types: the spec's [`ToolSpec::is_preview_call`] on the
    /// arguments (a destructive call without `confirm: true` never acts, whatever it answers)
    /// or the report's own [`Outcome::is_preview`].
    ///
    /// `audit` is what the audit log records of the arguments (secrets are redacted there).
    pub(crate) async fn mutate<T: Outcome>(
        &self,
        spec: &ToolSpec,
        audit: impl Serialize,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
        op: impl AsyncFnOnce(&Run) -> Result<T, ops::Error>,
    ) -> Result<Json<T>, String> {
        let audit = serde_json::to_value(audit).unwrap_or_default();
        let call = Call::start(&rc, ct);
        let result = op(&call.run).await;
        let upids = call.finish().await;
        let preview =
            spec.is_preview_call(&audit) || result.as_ref().is_ok_and(|report| report.is_preview());
        if preview {
            return result.map(Json).map_err(tool_error);
        }
        self.audited(spec.name, &audit, &upids, result)
    }

    /// Records a mutating call in the audit log and maps the result for the model.
    fn audited<T>(
        &self,
        tool: &str,
        args: &serde_json::Value,
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
        self.ctx.audit.record(tool, args, upids, &outcome);
        result.map(Json).map_err(tool_error)
    }
}

// Which reports are previews: each says so in its own field.
impl Outcome for ops::PowerReport {
    fn is_preview(&self) -> bool {
        self.preview
    }
}
impl Outcome for ops::VmDeleteReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::TemplateDeleteReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::TemplateFromImageReport {
    fn is_preview(&self) -> bool {
        self.preview
    }
}
impl Outcome for ops::TemplateFromIsoReport {
    fn is_preview(&self) -> bool {
        self.preview
    }
}
impl Outcome for ops::RbacBootstrapReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::RunbookSaveReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::migrate::NodeEvacuateReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::bulk::BulkPowerReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::snapshot::SnapshotChangeReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::bulk::BulkSnapshotReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::storage::orphans::DiskOrphansDeleteReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::storage::iso_upload::IsoUploadReport {
    fn is_preview(&self) -> bool {
        self.preview
    }
}
impl Outcome for ops::backup::BackupRestoreReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ops::ansible::AnsibleRunReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
// These always act.
impl Outcome for ops::backup::BackupNowReport {}
impl Outcome for ops::snapshot::SnapshotCreateReport {}
impl Outcome for ops::migrate::VmMigrateReport {}
impl Outcome for ops::VmCreateReport {}
impl Outcome for ops::VmResizeReport {}
impl Outcome for ops::VmSetTagsReport {}
impl Outcome for ops::TemplateConvertReport {}
