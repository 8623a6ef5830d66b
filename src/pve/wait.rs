//! Waiting for a PVE task: poll its status on the node named in the UPID, with backoff, a
//! deadline, a progress callback and cancellation. `WARNINGS: N` is success, like PVE's
//! `status_is_error`. Waiting never stops the task on PVE: a deadline or a cancellation only
//! stops *watching*, and the error says the task is still running.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::error::Error;
use super::task_types::exit_success;
use super::upid::Upid;

/// How many log lines a [`Error::TaskFailed`] carries.
const LOG_TAIL: usize = 10;
/// Log lines fetched per poll when following the log for progress.
const LOG_PAGE: u64 = 500;

/// What the progress callback sees on every poll.
#[derive(Debug, Clone)]
pub struct TaskProgress {
    pub upid: Upid,
    pub elapsed: Duration,
    /// `running` or `stopped`.
    pub status: String,
    /// The newest log line seen so far, if any.
    pub latest_log_line: Option<String>,
    /// Polls done, starting at 1.
    pub polls: u32,
}

/// Callback invoked on every poll.
pub type ProgressFn = Arc<dyn Fn(TaskProgress) + Send + Sync>;

/// Options of [`wait_task`].
#[derive(Clone)]
pub struct WaitOptions {
    /// Give up watching after this long (the task keeps running). Default 10 min.
    pub deadline: Duration,
    /// First poll interval, doubled up to `poll_max`. Default 500 ms.
    pub poll_initial: Duration,
    /// Default 5 s.
    pub poll_max: Duration,
    pub cancel: Option<CancellationToken>,
    /// Called on every poll; when set, the log is followed to report the latest line.
    pub progress: Option<ProgressFn>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            deadline: Duration::from_secs(600),
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(5),
            cancel: None,
            progress: None,
        }
    }
}

impl fmt::Debug for WaitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitOptions")
            .field("deadline", &self.deadline)
            .field("poll_initial", &self.poll_initial)
            .field("poll_max", &self.poll_max)
            .field("cancel", &self.cancel.is_some())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A task that ended successfully.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub upid: Upid,
    /// `OK` or `WARNINGS: N`.
    pub exitstatus: String,
    pub warnings: u32,
    pub elapsed: Duration,
}

/// Follows the log incrementally and keeps the last lines.
#[derive(Default)]
struct LogFollower {
    next_start: u64,
    tail: VecDeque<String>,
}

impl LogFollower {
    async fn advance(&mut self, client: &Client, upid: &Upid) -> Result<(), Error> {
        loop {
            let before = self.next_start;
            let lines = client.get_task_log(upid, self.next_start, LOG_PAGE).await?;
            let got = lines.len() as u64;
            for line in lines {
                // PVE answers a missing/empty log with one synthetic line.
                if line.t == "no content" && line.n == 1 && self.next_start == 0 {
                    continue;
                }
                self.next_start = self.next_start.max(line.n);
                self.tail.push_back(line.t);
                if self.tail.len() > LOG_TAIL {
                    self.tail.pop_front();
                }
            }
            // A short page is the end; no progress means a server ignoring `start`.
            if got < LOG_PAGE || self.next_start == before {
                return Ok(());
            }
        }
    }
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Polls `GET /nodes/{upid.node}/tasks/{upid}/status` until the task stops.
///
/// # Errors
/// - [`Error::TaskFailed`] with the exit status and the last log lines when it ends in error;
/// - [`Error::TaskTimeout`] when `deadline` passes while it still runs;
/// - [`Error::Cancelled`] when `cancel` fires (the task keeps running on PVE);
/// - any request error of the status poll (GETs are already retried by the client).
///
/// The deadline is checked between polls, so a wait can overrun it by at most one request
/// timeout. Errors while following the log for progress are logged and ignored.
pub async fn wait_task(
    client: &Client,
    upid: &Upid,
    opts: WaitOptions,
) -> Result<TaskOutcome, Error> {
    let started = Instant::now();
    let deadline = started + opts.deadline;
    let poll_max = opts.poll_max.max(Duration::from_millis(1));
    let mut delay = opts
        .poll_initial
        .max(Duration::from_millis(1))
        .min(poll_max);
    let mut log = LogFollower::default();
    let mut polls = 0u32;
    let cancel = opts.cancel.as_ref();
    let cancelled_err = || Error::Cancelled {
        upids_running: vec![upid.clone()],
    };
    loop {
        let status = tokio::select! {
            biased;
            () = cancelled(cancel) => return Err(cancelled_err()),
            s = client.get_task_status(upid) => s?,
        };
        polls += 1;
        if let Some(progress) = &opts.progress {
            let followed = tokio::select! {
                biased;
                () = cancelled(cancel) => return Err(cancelled_err()),
                r = log.advance(client, upid) => r,
            };
            if let Err(e) = followed {
                tracing::debug!(upid = %upid, error = %e, "cannot follow the task log");
            }
            progress(TaskProgress {
                upid: upid.clone(),
                elapsed: started.elapsed(),
                status: status.status.clone(),
                latest_log_line: log.tail.back().cloned(),
                polls,
            });
        }
        if !status.is_running() {
            let exitstatus = status
                .exitstatus
                .clone()
                .unwrap_or_else(|| "unexpected status".to_owned());
            if let Some(warnings) = exit_success(&exitstatus) {
                return Ok(TaskOutcome {
                    upid: upid.clone(),
                    exitstatus,
                    warnings,
                    elapsed: started.elapsed(),
                });
            }
            let log_tail = match client.get_task_log_tail(upid, LOG_TAIL as u64).await {
                Ok(lines) => lines,
                Err(e) => {
                    tracing::debug!(upid = %upid, error = %e, "cannot read the failed task's log");
                    log.tail.into_iter().collect()
                }
            };
            return Err(Error::TaskFailed {
                upid: upid.clone(),
                exitstatus,
                log_tail,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::TaskTimeout { upid: upid.clone() });
        }
        let pause = delay.min(deadline - now);
        tokio::select! {
            biased;
            () = cancelled(cancel) => return Err(cancelled_err()),
            () = tokio::time::sleep(pause) => {}
        }
        delay = (delay * 2).min(poll_max);
    }
}

impl Client {
    /// Method form of [`wait_task`].
    pub async fn wait_task(&self, upid: &Upid, opts: WaitOptions) -> Result<TaskOutcome, Error> {
        wait_task(self, upid, opts).await
    }
}
