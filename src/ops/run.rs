//! One tool call's execution context: progress reporting, cancellation, the UPIDs it started,
//! waiting for PVE tasks, and retrying while a VM is locked.
//!
//! Progress is a plain callback taking a message (the MCP adapter in `server` turns it into
//! progress notifications when, and only when, the client sent a progress token).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::pve::{self, TaskOutcome, Upid, WaitOptions};

use super::{Context, Error};

/// Receives human-readable progress messages.
pub type ProgressFn = Arc<dyn Fn(String) + Send + Sync>;

/// Turns a task's newest log line into a progress message, or `None` to report it as is.
pub type LineFormat = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How long operations wait, and how often they poll.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Longest wait for one PVE task before reporting it as still running.
    pub task: Duration,
    /// Longest wait for a VM lock ("VM is locked", "can't lock file") to clear.
    pub lock: Duration,
    /// Longest wait for the guest agent to report an address.
    pub agent: Duration,
    /// First poll interval (doubles up to `poll_max`).
    pub poll: Duration,
    pub poll_max: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            task: Duration::from_secs(30 * 60),
            lock: Duration::from_secs(120),
            agent: Duration::from_secs(300),
            poll: Duration::from_millis(500),
            poll_max: Duration::from_secs(5),
        }
    }
}

impl Timeouts {
    /// Polling scaled for a simulator whose clock runs `factor` times real time.
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self.poll_max = (poll * 10).min(Duration::from_secs(5));
        self
    }
}

/// Per-call state. Cheap to clone; clones share the UPID list.
#[derive(Clone, Default)]
pub struct Run {
    pub progress: Option<ProgressFn>,
    pub cancel: CancellationToken,
    upids: Arc<Mutex<Vec<String>>>,
}

impl Run {
    pub fn new(progress: Option<ProgressFn>, cancel: CancellationToken) -> Self {
        Run {
            progress,
            cancel,
            upids: Arc::default(),
        }
    }

    /// Reports a step to the client, when it asked for progress.
    pub fn note(&self, msg: impl Into<String>) {
        if let Some(p) = &self.progress {
            p(msg.into());
        }
    }

    /// Every UPID this call started, in order.
    pub fn upids(&self) -> Vec<String> {
        self.upids.lock().map(|u| u.clone()).unwrap_or_default()
    }

    fn remember(&self, upid: &Upid) {
        if let Ok(mut u) = self.upids.lock() {
            u.push(upid.to_string());
        }
    }

    /// Waits for a task to stop; `OK` and `WARNINGS: N` are success.
    ///
    /// # Errors
    /// The task failed (exit status and log tail), is still running at the deadline, or the
    /// call was cancelled (the task keeps running on PVE; its UPID is named).
    pub async fn wait(&self, ctx: &Context, upid: &Upid, what: &str) -> Result<TaskOutcome, Error> {
        self.wait_with(ctx, upid, what, None).await
    }

    /// [`Run::wait`], with `lines` turning the task's newest log line into the progress
    /// message (e.g. a migration's "transferred X of Y" into a percentage); lines it returns
    /// `None` for are reported as they are.
    ///
    /// # Errors
    /// As [`Run::wait`].
    pub async fn wait_with(
        &self,
        ctx: &Context,
        upid: &Upid,
        what: &str,
        lines: Option<LineFormat>,
    ) -> Result<TaskOutcome, Error> {
        self.remember(upid);
        self.note(format!("{what}: waiting for task {upid}"));
        let progress: Option<pve::ProgressFn> = self.progress.as_ref().map(|p| {
            let p = Arc::clone(p);
            let what = what.to_string();
            let f: pve::ProgressFn = Arc::new(move |tp: pve::TaskProgress| {
                let line = tp.latest_log_line.clone().unwrap_or_default();
                match lines.as_ref().and_then(|f| f(&line)) {
                    Some(msg) => p(format!("{what}: {msg}")),
                    None => p(format!("{what}: {:.0}s {line}", tp.elapsed.as_secs_f64())),
                }
            });
            f
        });
        let t = ctx.timeouts;
        let opts = WaitOptions {
            deadline: t.task,
            poll_initial: t.poll,
            poll_max: t.poll_max,
            cancel: Some(self.cancel.clone()),
            progress,
        };
        let outcome = pve::wait_task(&ctx.client, upid, opts).await?;
        self.note(format!("{what}: {}", outcome.exitstatus));
        Ok(outcome)
    }

    /// Runs `op` again while PVE says the VM is locked (or its config changed between read and
    /// write), with backoff, until the lock deadline. `op` must re-read what it depends on.
    /// For an operation that starts a task, use [`Run::task_locked`]: PVE reports some locks
    /// only in the task's exit status.
    ///
    /// # Errors
    /// The last error when it is not a lock, or a lock error naming the lock once the deadline
    /// passed; `Cancelled` when the call is cancelled while waiting.
    pub async fn retry_locked<T, F, Fut>(
        &self,
        ctx: &Context,
        object: &str,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut wait = LockWait::new(&ctx.timeouts);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => wait.after(self, object, e).await?,
            }
        }
    }

    /// Starts a task with `op` and waits for it, as one lock-aware step: a lock PVE reports
    /// early (the HTTP answer) or late (the task's exit status, e.g. `VM is locked (backup)`
    /// for a start) is waited out the same way, with backoff, until `ctx.timeouts.lock` — never
    /// sleeping past it —, then reported naming the lock. `op` returns `None` when PVE did the
    /// change synchronously (no task); it must re-read what it depends on.
    ///
    /// # Errors
    /// As [`Run::retry_locked`], plus the task's own failure when it is not a lock.
    pub async fn task_locked<F, Fut>(
        &self,
        ctx: &Context,
        object: &str,
        what: &str,
        op: F,
    ) -> Result<Option<(Upid, TaskOutcome)>, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<Upid>, Error>>,
    {
        self.task_locked_with(ctx, object, what, None, op).await
    }

    /// [`Run::task_locked`] with a [`LineFormat`] for the task's progress.
    ///
    /// # Errors
    /// As [`Run::task_locked`].
    pub async fn task_locked_with<F, Fut>(
        &self,
        ctx: &Context,
        object: &str,
        what: &str,
        lines: Option<LineFormat>,
        mut op: F,
    ) -> Result<Option<(Upid, TaskOutcome)>, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<Upid>, Error>>,
    {
        let mut wait = LockWait::new(&ctx.timeouts);
        loop {
            let upid = match op().await {
                Ok(Some(u)) => u,
                Ok(None) => return Ok(None),
                Err(e) => {
                    wait.after(self, object, e).await?;
                    continue;
                }
            };
            match self.wait_with(ctx, &upid, what, lines.clone()).await {
                Ok(outcome) => return Ok(Some((upid, outcome))),
                Err(e) => wait.after(self, object, e).await?,
            }
        }
    }
}

/// The backoff state of one lock wait: when it started, the deadline, the next delay.
struct LockWait {
    start: Instant,
    deadline: Instant,
    delay: Duration,
    max: Duration,
}

impl LockWait {
    fn new(t: &Timeouts) -> Self {
        let start = Instant::now();
        LockWait {
            start,
            deadline: start + t.lock,
            delay: t.poll,
            max: t.poll_max.max(Duration::from_millis(100)),
        }
    }

    /// Decides about a failed attempt: `Ok` after sleeping when it was a lock and time is
    /// left (try again), else the error to return.
    async fn after(&mut self, run: &Run, object: &str, err: Error) -> Result<(), Error> {
        // A digest mismatch means the config changed between our read and our write (a
        // lock being released changes it too): the operation re-reads and tries again.
        let lock = match err.lock_contention() {
            Some(lock) => lock,
            None if err.is_digest_mismatch() => "config changed meanwhile".to_string(),
            None => return Err(err),
        };
        let now = Instant::now();
        if now >= self.deadline {
            return Err(Error::Locked {
                object: object.to_string(),
                lock,
                waited: now - self.start,
            });
        }
        run.note(format!("{object} is locked ({lock}); waiting"));
        let nap = self.delay.min(self.deadline - now);
        tokio::select! {
            _ = run.cancel.cancelled() => return Err(Error::Pve(pve::Error::Cancelled { upids_running: vec![] })),
            _ = tokio::time::sleep(nap) => {}
        }
        self.delay = (self.delay * 2).min(self.max);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(lock: &str) -> Error {
        Error::Pve(pve::Error::Api {
            status: 500,
            method: "POST".into(),
            path: "/nodes/pve01/qemu/1006/status/start".into(),
            message: format!("VM is locked ({lock})"),
            errors: Default::default(),
        })
    }

    fn timeouts(lock_s: u64) -> Timeouts {
        Timeouts {
            lock: Duration::from_secs(lock_s),
            poll: Duration::from_millis(500),
            poll_max: Duration::from_secs(5),
            ..Timeouts::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_is_waited_out_until_the_deadline_and_never_past_it() {
        let run = Run::default();
        let mut wait = LockWait::new(&timeouts(7));
        let start = Instant::now();
        let mut tries = 0;
        let err = loop {
            tries += 1;
            if let Err(e) = wait.after(&run, "vm 1006 on pve02", locked("backup")).await {
                break e;
            }
        };
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(7),
            "stops at the deadline exactly"
        );
        // 0.5 + 1 + 2 + 3.5 (cut to the deadline), then the last attempt fails at 7 s.
        assert_eq!(tries, 5);
        let text = err.to_string();
        assert!(matches!(err, Error::Locked { .. }), "{text}");
        assert!(
            text.contains("vm 1006 on pve02") && text.contains("(backup)"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_not_retried_and_locks_then_success_pass() {
        let run = Run::default();
        let mut wait = LockWait::new(&timeouts(120));
        let e = wait
            .after(&run, "vm 1", Error::invalid("x", "no"))
            .await
            .expect_err("not a lock");
        assert!(matches!(e, Error::InvalidArgument { .. }));
        let mut n = 0;
        let start = Instant::now();
        let v = LockWaitDriver::drive(&run, &timeouts(120), || {
            n += 1;
            if n <= 2 { Err(locked("backup")) } else { Ok(n) }
        })
        .await
        .expect("succeeds after two locks");
        assert_eq!(v, 3);
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_ends_the_wait() {
        let run = Run::default();
        run.cancel.cancel();
        let mut wait = LockWait::new(&timeouts(120));
        let e = wait
            .after(&run, "vm 1", locked("backup"))
            .await
            .expect_err("cancelled");
        assert!(matches!(e, Error::Pve(pve::Error::Cancelled { .. })), "{e}");
    }

    /// The loop of `retry_locked` without a `Context`.
    struct LockWaitDriver;

    impl LockWaitDriver {
        async fn drive<T>(
            run: &Run,
            t: &Timeouts,
            mut op: impl FnMut() -> Result<T, Error>,
        ) -> Result<T, Error> {
            let mut wait = LockWait::new(t);
            loop {
                match op() {
                    Ok(v) => return Ok(v),
                    Err(e) => wait.after(run, "vm 1", e).await?,
                }
            }
        }
    }
}

/// The same decisions against an in-memory node (`pve::fake`): the real client above it.
#[cfg(test)]
mod fake_node_tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::pve::fake::FakePve;

    fn context(fake: &FakePve) -> Context {
        let mut config = crate::config::sim_config(8006, [0; 32]);
        config.audit_log = Some(std::env::temp_dir().join("proxmox-manager-run-tests.jsonl"));
        let mut ctx = Context::with_client(config, fake.client());
        ctx.timeouts.lock = Duration::from_secs(60);
        ctx.timeouts.poll = Duration::from_secs(1);
        ctx.timeouts.poll_max = Duration::from_secs(4);
        ctx
    }

    const CONFIG: &str = "/nodes/pve01/qemu/100/config";

    /// The decision "wait out a lock, then write" runs against the in-memory node with paused
    /// time: two lock refusals, then success, after exactly the backoff's virtual seconds.
    #[tokio::test(start_paused = true)]
    async fn a_locked_vm_is_retried_with_backoff_until_it_is_free() {
        let fake = FakePve::new();
        for _ in 0..2 {
            fake.once("POST", CONFIG, 500, json!("VM is locked (backup)"));
        }
        fake.on("POST", CONFIG, json!(null));
        let ctx = context(&fake);
        let run = Run::default();
        let started = tokio::time::Instant::now();
        let done: Result<(), Error> = run
            .retry_locked(&ctx, "vm 100", || async {
                ctx.client
                    .post::<()>(CONFIG, &[("cores", "2".into())])
                    .await?;
                Ok(())
            })
            .await;
        assert!(done.is_ok(), "{done:?}");
        assert_eq!(fake.requests().len(), 3);
        // 1 s, then 2 s of backoff.
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_that_never_clears_is_reported_with_its_name() {
        let fake = FakePve::new();
        fake.on_with("POST", CONFIG, |_| {
            (
                500,
                json!({"data": null, "message": "VM is locked (backup)"}),
            )
        });
        let ctx = context(&fake);
        let err = Run::default()
            .retry_locked(&ctx, "vm 100", || async {
                ctx.client.post::<()>(CONFIG, &[]).await?;
                Ok::<(), Error>(())
            })
            .await
            .expect_err("still locked");
        assert!(
            matches!(&err, Error::Locked { lock, .. } if lock.contains("backup")),
            "{err}"
        );
    }
}
