//! The task engine: UPIDs in PVE's exact format (semantics item 17), a per-cluster task registry
//! with logs, status/exitstatus (item 19), seeded archive tasks, and [`spawn_task`], the internal
//! API later operations (clone, migrate, ...) use: it registers a running task, waits the scaled
//! duration, then runs a completion closure that mutates state and decides the outcome. Workers
//! that report progress ([`register`] + [`append_log`] + [`finish`], e.g. `qmigrate`) grow
//! their log while they run.

use std::sync::{Arc, LazyLock};

use regex::Regex;

use super::scenario::Scenario;
use super::state::{Shared, State, now};

/// pve-common UPID.pm's decode regex.
pub static UPID_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$",
    )
    .ok()
});

#[derive(Clone, Debug)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: i64,
    pub ttype: String,
    pub id: String,
    /// `user@realm` or `user@realm!token`.
    pub user: String,
    pub endtime: Option<i64>,
    /// Present once stopped: `OK`, `WARNINGS: N`, or the error text.
    pub exitstatus: Option<String>,
    pub log: TaskLog,
}

impl Task {
    pub fn running(&self) -> bool {
        self.exitstatus.is_none()
    }
}

/// A task's log: its lines in one text, each followed by `\n`, as the worker's log file holds
/// them. A backup run's log is tens of thousands of lines: a string each cost some 40 bytes a
/// line more, and each download joined them again.
#[derive(Clone, Debug, Default)]
pub struct TaskLog {
    text: String,
    /// Where each line ends in `text` (its `\n`).
    ends: Vec<usize>,
}

impl TaskLog {
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.ends.push(self.text.len());
        self.text.push('\n');
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The lines, without their `\n`.
    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|e| e + 1));
        starts.zip(&self.ends).map(|(a, &b)| &self.text[a..b])
    }

    #[cfg(test)]
    pub fn last(&self) -> Option<&str> {
        self.iter().last()
    }

    /// Gives back the room its buffers grew beyond its lines (a log written a line at a time
    /// doubles them), once it is written.
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// The log file: every line followed by `\n`.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl<S: AsRef<str>> Extend<S> for TaskLog {
    fn extend<I: IntoIterator<Item = S>>(&mut self, lines: I) {
        lines.into_iter().for_each(|l| self.push(l.as_ref()));
    }
}

impl<S: AsRef<str>> From<&[S]> for TaskLog {
    /// `lines`, with room for one more (the `TASK OK` a worker ends with): a log grown a line
    /// at a time doubles its buffer, and at 64 backup runs of a megabyte the buffers it
    /// left behind were 60 MiB of the simulator's memory.
    fn from(lines: &[S]) -> TaskLog {
        let bytes: usize = lines.iter().map(|l| l.as_ref().len() + 1).sum();
        let mut log = TaskLog {
            text: String::with_capacity(bytes + 64),
            ends: Vec::with_capacity(lines.len() + 1),
        };
        log.extend(lines);
        log
    }
}

/// What a completion closure reports.
pub enum Outcome {
    /// Success; extra log lines and the number of `WARN:` lines among them.
    Ok { log: Vec<String>, warnings: u32 },
    /// Failure; log lines before the error, then the error text.
    Err { log: Vec<String>, error: String },
}

#[derive(Default)]
pub struct TaskRegistry {
    pub tasks: Vec<Task>,
    next_pid: u32,
}

pub fn format_upid(
    node: &str,
    pid: u32,
    pstart: u64,
    starttime: i64,
    ttype: &str,
    id: &str,
    user: &str,
) -> String {
    format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{ttype}:{id}:{user}:")
}

/// Whether a UPID string parses with PVE's regex.
pub fn upid_parses(upid: &str) -> bool {
    UPID_RE.as_ref().is_some_and(|r| r.is_match(upid))
}

/// Process start time in clock ticks (100 Hz) of a fictitious pvedaemon worker on a node.
fn pstart_for(node_uptime_at_start: u64, offset: i64) -> u64 {
    (node_uptime_at_start as i64 + offset).max(1) as u64 * 100
}

impl TaskRegistry {
    pub fn from_scenario(s: &Scenario, started: i64) -> Result<TaskRegistry, String> {
        let mut reg = TaskRegistry {
            tasks: Vec::new(),
            next_pid: 180_000,
        };
        for t in &s.tasks {
            let node = s
                .nodes
                .iter()
                .find(|n| n.name == t.node)
                .ok_or_else(|| format!("task names unknown node '{}'", t.node))?;
            let starttime = started - t.ago as i64;
            let pid = reg.alloc_pid();
            let pstart = pstart_for(node.uptime, -(t.ago as i64));
            let mut log = TaskLog::from(&t.log[..]);
            let exit = t.exitstatus.clone();
            if exit == "OK" || exit.starts_with("WARNINGS: ") {
                log.push(&format!("TASK {exit}"));
            } else {
                log.push(&format!("TASK ERROR: {exit}"));
            }
            reg.tasks.push(Task {
                upid: format_upid(&t.node, pid, pstart, starttime, &t.ttype, &t.id, &t.user),
                node: t.node.clone(),
                pid,
                pstart,
                starttime,
                ttype: t.ttype.clone(),
                id: t.id.clone(),
                user: t.user.clone(),
                endtime: Some(starttime + t.duration as i64),
                exitstatus: Some(exit),
                log,
            });
        }
        Ok(reg)
    }

    fn alloc_pid(&mut self) -> u32 {
        self.next_pid += 7 + self.next_pid % 13;
        self.next_pid
    }

    pub fn find(&self, upid: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.upid == upid)
    }

    fn find_mut(&mut self, upid: &str) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.upid == upid)
    }
}

/// A task to start: where it runs, what it is and how long it takes at time scale 1.
pub struct NewTask<'a> {
    pub node: &'a str,
    /// UPID type, e.g. `qmclone` (semantics item 18).
    pub ttype: &'a str,
    pub id: &'a str,
    /// Owner: `user@realm!token` for token requests.
    pub user: &'a str,
    pub duration_secs: f64,
    /// Log lines written at start.
    pub log: Vec<String>,
}

/// Starts a task and returns its UPID at once. After `duration_secs` × time scale the closure
/// runs under the state lock; its [`Outcome`] ends the task.
#[cfg_attr(not(test), allow(dead_code))]
pub fn spawn_task<F>(shared: &Arc<Shared>, t: NewTask<'_>, work: F) -> String
where
    F: FnOnce(&mut State) -> Outcome + Send + 'static,
{
    let mut st = shared.lock();
    spawn_locked(shared, &mut st, t, move |st, _| work(st))
}

/// [`spawn_task`] for handlers already holding the state lock. The closure also gets the error
/// injected with `SimHandle::fail_next_task` for this task, if any: it must then undo what PVE
/// undoes and return that error. Node slowdowns (`slow_node`) stretch the duration.
pub fn spawn_locked<F>(shared: &Arc<Shared>, st: &mut State, t: NewTask<'_>, work: F) -> String
where
    F: FnOnce(&mut State, Option<String>) -> Outcome + Send + 'static,
{
    let (upid, injected, wait) = register(shared, st, t);
    let shared2 = Arc::clone(shared);
    let upid2 = upid.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let mut st = shared2.lock();
        // a task ended early (aborted by another request) does not run its completion
        if st.tasks.find(&upid2).is_some_and(Task::running) {
            let outcome = work(&mut st, injected);
            finish(&mut st, &upid2, outcome);
        }
    });
    upid
}

/// Records a running task without scheduling its end: for workers that do real asynchronous
/// work (download-url) and end the task themselves with [`finish`]. Returns the UPID, the
/// error injected with `SimHandle::fail_next_task` (if any) and the task's scaled duration.
pub fn register(
    shared: &Arc<Shared>,
    st: &mut State,
    t: NewTask<'_>,
) -> (String, Option<String>, std::time::Duration) {
    let NewTask {
        node,
        ttype,
        id,
        user,
        duration_secs,
        log: first_log,
    } = t;
    let uptime = st.node(node).map(|n| st.node_uptime(n)).unwrap_or(1000);
    let starttime = now();
    let pid = st.tasks.alloc_pid();
    let pstart = pstart_for(uptime, 0);
    let upid = format_upid(node, pid, pstart, starttime, ttype, id, user);
    st.tasks.tasks.push(Task {
        upid: upid.clone(),
        node: node.to_string(),
        pid,
        pstart,
        starttime,
        ttype: ttype.to_string(),
        id: id.to_string(),
        user: user.to_string(),
        endtime: None,
        exitstatus: None,
        log: TaskLog::from(&first_log[..]),
    });
    let injected = st.faults.take_failure(node, ttype);
    let wait = shared.scaled(duration_secs.max(0.0) * st.faults.factor(node));
    (upid, injected, wait)
}

/// Appends lines to a running task's log, so a task's log grows while it runs (as a real
/// worker's output does); returns false once the task has ended (nothing is appended then).
pub fn append_log(st: &mut State, upid: &str, lines: impl IntoIterator<Item = String>) -> bool {
    match st.tasks.find_mut(upid).filter(|t| t.running()) {
        Some(t) => {
            t.log.extend(lines);
            true
        }
        None => false,
    }
}

/// Ends a running task with `outcome`.
pub fn finish(st: &mut State, upid: &str, outcome: Outcome) {
    if let Some(t) = st.tasks.find_mut(upid).filter(|t| t.running()) {
        let (lines, exit, last) = match outcome {
            Outcome::Ok { log, warnings: 0 } => (log, "OK".to_string(), "TASK OK".to_string()),
            Outcome::Ok { log, warnings } => (
                log,
                format!("WARNINGS: {warnings}"),
                format!("TASK WARNINGS: {warnings}"),
            ),
            Outcome::Err { log, error } => (log, error.clone(), format!("TASK ERROR: {error}")),
        };
        t.log.extend(lines);
        t.log.push(&last);
        t.exitstatus = Some(exit);
        t.endtime = Some(now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn upid_format_matches_pve_regex() {
        let u = format_upid(
            "pve01",
            0x2f1a,
            0x1a2b3c4,
            0x6734a1b2,
            "qmclone",
            "100",
            "claude-code@pve!automation",
        );
        assert_eq!(
            u,
            "UPID:pve01:00002F1A:01A2B3C4:6734A1B2:qmclone:100:claude-code@pve!automation:"
        );
        assert!(upid_parses(&u));
        // 9-digit pstart after long uptimes, and an empty id (multi-guest vzdump)
        assert!(upid_parses(&format_upid(
            "pve-2",
            1,
            0x1_0000_0000,
            1,
            "vzdump",
            "",
            "root@pam"
        )));
        assert!(!upid_parses("UPID:pve01:1:2:3:x:y:z:"));
    }

    #[tokio::test]
    async fn spawned_task_runs_its_completion() {
        let s = Scenario::embedded().expect("scenario");
        let shared = Arc::new(Shared::new(State::from_scenario(&s).expect("state"), 0.001));
        let t = NewTask {
            node: "pve01",
            ttype: "qmstart",
            id: "1007",
            user: "root@pam!admin",
            duration_secs: 1.0,
            log: vec![],
        };
        let upid = spawn_task(&shared, t, |st| {
            if let Some(v) = st.vms.get_mut(&1007) {
                v.running = true;
            }
            Outcome::Err {
                log: vec!["boom".into()],
                error: "start failed: test".into(),
            }
        });
        assert!(upid_parses(&upid));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let done = shared
                .lock()
                .tasks
                .find(&upid)
                .and_then(|t| t.exitstatus.clone());
            if let Some(e) = done {
                assert_eq!(e, "start failed: test");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "task did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let st = shared.lock();
        assert_eq!(
            st.tasks
                .find(&upid)
                .and_then(|t| t.log.last().map(str::to_string))
                .as_deref(),
            Some("TASK ERROR: start failed: test")
        );
        assert!(st.vms.get(&1007).is_some_and(|v| v.running));
    }

    #[test]
    fn a_task_log_keeps_its_lines_and_its_file() {
        let empty = TaskLog::default();
        assert_eq!(
            (empty.iter().count(), empty.text(), empty.last()),
            (0, "", None)
        );
        let mut log = TaskLog::from(&["first", "", "third \u{2713}"][..]);
        log.push("TASK OK");
        let lines: Vec<&str> = log.iter().collect();
        assert_eq!(lines, ["first", "", "third \u{2713}", "TASK OK"]);
        assert_eq!(log.len(), 4);
        assert_eq!(log.last(), Some("TASK OK"));
        assert_eq!(log.text(), "first\n\nthird \u{2713}\nTASK OK\n");
    }

    #[test]
    fn seeded_tasks_end_like_pve() {
        let s = Scenario::embedded().expect("scenario");
        let reg = TaskRegistry::from_scenario(&s, 1_800_000_000).expect("tasks");
        assert!(reg.tasks.iter().all(|t| upid_parses(&t.upid)));
        let failed = reg.tasks.iter().find(|t| {
            t.exitstatus
                .as_deref()
                .is_some_and(|e| e.starts_with("clone failed"))
        });
        assert!(failed.is_some_and(|t| {
            t.log
                .last()
                .is_some_and(|l| l.starts_with("TASK ERROR: clone failed"))
        }));
        assert!(
            reg.tasks
                .iter()
                .any(|t| t.exitstatus.as_deref() == Some("WARNINGS: 1"))
        );
    }
}
