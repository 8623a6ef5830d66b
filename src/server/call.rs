//! One mutating tool call: approved as `confirmations:` says (the person through MCP
//! elicitation, or the `confirm` argument), then a [`Run`] that forwards progress to the client (only when it sent a
//! progress token), honours cancellation and collects the UPIDs it started; and the audit
//! record written when the call was not a preview.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::RoleServer;
use rmcp::handler::server::wrapper::Json;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::ops::approval::{self, Approval, Route};
use crate::ops::spec::{Outcome, ToolSpec};
use crate::ops::{self, ProgressFn, Run};
use crate::server::{ProxmoxServer, elicit, tool_error};

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
    /// A confirmed call that destroys or interrupts something ([`ToolSpec::needs_approval`])
    /// is approved first as `confirmations:` says ([`approval::route`]): by the argument, by
    /// the person in the client's dialog (the operation runs once as a preview — the same
    /// arguments with `confirm: false` — and the person is asked about that preview; only on
    /// their approval does it run confirmed), or refused. Declined, cancelled, timed-out and
    /// refused calls do nothing, come back as tool errors saying so, and are audited with
    /// their `approval`.
    pub(crate) async fn mutate<A, T>(
        &self,
        spec: &ToolSpec,
        args: &A,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
        op: impl AsyncFnOnce(&Run, A) -> Result<T, ops::Error> + Clone,
    ) -> Result<Json<T>, String>
    where
        A: Serialize + DeserializeOwned + Clone,
        T: Outcome + Serialize,
    {
        self.mutate_recorded(spec, args, args, rc, ct, op).await
    }

    /// [`Self::mutate`] with `audit` recorded in the audit log instead of the arguments
    /// (secrets are redacted there; long contents are summarised by the caller).
    pub(crate) async fn mutate_recorded<A, T>(
        &self,
        spec: &ToolSpec,
        args: &A,
        audit: impl Serialize,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
        op: impl AsyncFnOnce(&Run, A) -> Result<T, ops::Error> + Clone,
    ) -> Result<Json<T>, String>
    where
        A: Serialize + DeserializeOwned + Clone,
        T: Outcome + Serialize,
    {
        let audit = serde_json::to_value(audit).unwrap_or_default();
        let args_v = serde_json::to_value(args).unwrap_or_default();
        let confirmed = args_v.get("confirm").and_then(Value::as_bool) == Some(true);
        let mut approval = None;
        if confirmed && spec.needs_approval(&args_v) {
            let can_elicit = elicit::client_can_elicit(&rc.peer);
            match approval::route(self.ctx.config.confirmations.mode, can_elicit) {
                Route::Argument => approval = Some(Approval::Argument),
                Route::Refuse => return Err(self.not_done(spec, &audit, Approval::Refused, "")),
                Route::Ask => match self.ask_person(spec, &args_v, &rc, &ct, &op).await {
                    Asked::Approved => approval = Some(Approval::ElicitationAccepted),
                    Asked::NotDone(a, detail) => {
                        return Err(self.not_done(spec, &audit, a, &detail));
                    }
                    Asked::Answered(result) => return result,
                },
            }
        }
        let call = Call::start(&rc, ct);
        let result = op(&call.run, args.clone()).await;
        let upids = call.finish().await;
        let preview =
            spec.is_preview_call(&audit) || result.as_ref().is_ok_and(|report| report.is_preview());
        if preview {
            return result.map(Json).map_err(tool_error);
        }
        self.audited(spec.name, &audit, &upids, result, approval)
    }

    /// Runs the operation as a preview, asks the person about it, and says how they answered.
    async fn ask_person<A, T>(
        &self,
        spec: &ToolSpec,
        args_v: &Value,
        rc: &RequestContext<RoleServer>,
        ct: &CancellationToken,
        op: &(impl AsyncFnOnce(&Run, A) -> Result<T, ops::Error> + Clone),
    ) -> Asked<T>
    where
        A: DeserializeOwned,
        T: Outcome + Serialize,
    {
        let mut unconfirmed = args_v.clone();
        unconfirmed["confirm"] = Value::Bool(false);
        let preview_args: A = match serde_json::from_value(unconfirmed) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(tool = spec.name, error = %e, "preview arguments");
                return Asked::NotDone(
                    Approval::Failed,
                    "its preview could not be prepared".into(),
                );
            }
        };
        let preview = match op.clone()(&Run::new(None, ct.clone()), preview_args).await {
            Ok(p) => p,
            Err(e) => return Asked::Answered(Err(tool_error(e))),
        };
        if !preview.is_preview() {
            // Nothing to approve: the operation had nothing to do (already stopped, ...).
            return Asked::Answered(Ok(Json(preview)));
        }
        // The preview as the question's facts, with any secret-named field redacted.
        let facts = ops::audit::redact(&serde_json::to_value(&preview).unwrap_or_default());
        let settings = &self.ctx.config.confirmations;
        let q = approval::question(spec, args_v, &facts, settings.typed_name_above);
        match elicit::ask(&rc.peer, &q, settings.timeout, ct).await {
            (Approval::ElicitationAccepted, _) => Asked::Approved,
            (a, detail) => Asked::NotDone(a, detail),
        }
    }

    /// Records a call that was not done and returns the error the model reads.
    fn not_done(&self, spec: &ToolSpec, audit: &Value, approval: Approval, detail: &str) -> String {
        let text = approval
            .refusal(spec.name, detail)
            .unwrap_or_else(|| format!("{}: not done", spec.name));
        tracing::info!(
            tool = spec.name,
            approval = approval.as_str(),
            "not approved"
        );
        self.ctx.audit.record_approved(
            spec.name,
            audit,
            &[],
            &format!("not done: {}", approval.as_str()),
            Some(approval.as_str()),
        );
        text
    }

    /// Records a mutating call in the audit log and maps the result for the model.
    fn audited<T>(
        &self,
        tool: &str,
        args: &serde_json::Value,
        upids: &[String],
        result: Result<T, ops::Error>,
        approval: Option<Approval>,
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
        self.ctx
            .audit
            .record_approved(tool, args, upids, &outcome, approval.map(Approval::as_str));
        result.map(Json).map_err(tool_error)
    }
}

/// How asking the person ended.
enum Asked<T> {
    /// They approved: run it confirmed.
    Approved,
    /// Not approved (declined, cancelled, timed out, failed): nothing done.
    NotDone(Approval, String),
    /// The preview already answers the call (it failed, or there was nothing to do).
    Answered(Result<Json<T>, String>),
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
