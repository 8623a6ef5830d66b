//! `POST /nodes/{node}/vzdump` (pve-manager `PVE/API2/VZDump.pm`, `PVE/VZDump.pm`; semantics
//! items 18, 20, 23, 33) and the `vzdump` worker.
//!
//! ## Before the fork (HTTP errors), in PVE's order
//!
//! Schema checks (400: `notes-template`/`protected` without `storage` → `{"storage":"missing
//! property required by 'notes-template'"}`, bad vmid lists → `invalid format - value does not
//! look like a valid VM ID`); `stdout` → 400 "option is only allowed on the command line
//! interface."; for anyone but `root@pam`: `tmpdir`, `dumpdir`, `script`, `job-id` → 400 "Only
//! root may set this option.", `bwlimit`/`ionice`/`performance` → 403 Sys.Modify on `/`, a
//! fleecing storage → Datastore.AllocateSpace on it, `prune-backups` → Datastore.Allocate on
//! the storage; `verify_vzdump_parameters`: `all`/`exclude`/`pool` with `vmid` → 400 "option
//! conflicts with option 'vmid'", an invalid notes template → 400 `{"notes-template":"found
//! unknown: variable 'x' at char N"}`, nothing selected → 400 `{"vmid":"property is
//! missing"}`; `stop` → 403 Sys.Modify on `/nodes/{node}` (running backups of the node are
//! interrupted); none of the guests on this node and no `all` → the literal `"OK"`, no task;
//! then Datastore.AllocateSpace on the storage (`local` by default) → 403.
//!
//! ## In the worker (`vzdump` task; id = the vmid when exactly one guest of this node is
//! selected, else empty)
//!
//! In order:
//!
//! - the storage: "could not get storage information for 'x': can't use storage 'x' for
//!   backups - wrong content type", unknown storages;
//! - one job per node at a time: `INFO: trying to get global lock - waiting...`, then `INFO:
//!   got global lock`, or after `lockwait` minutes `ERROR: can't acquire lock
//!   '/var/run/vzdump.lock' - got timeout` and the exit status `unexpected status`;
//! - `INFO: starting new backup job: vzdump ...` and `INFO: skip external VMs: ...`;
//! - VM.Backup on each guest: without `all` a missing one fails the task with "Permission
//!   check failed (/vms/N, VM.Backup)", with `all` the guest is skipped;
//! - each guest in vmid order (its lines: `crate::sim::backup::script`). A guest that does not
//!   exist, is HA-managed in stop mode, is over the retention limit, is locked (`ERROR: Backup
//!   of VM N failed - VM is locked (clone)`), cannot be shut down, or fails inside (injected
//!   with `SimHandle::fail_backup_of`) fails alone;
//! - the end: `job errors` if any guest failed (`INFO: Backup job finished with errors`),
//!   else OK (`INFO: Backup job finished successfully`). An error injected with
//!   `fail_next_task(node, "vzdump", e)` fails the whole job at its end (`ERROR: Backup job
//!   failed - e`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::sim::api::WCtx;
use crate::sim::backup::script::{
    Act, GuestCtx, NewArchive, Options, err, info, plan_guest, verify_notes_template,
};
use crate::sim::backup::{command_line, included_guests};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{Shared, State};
use crate::sim::tasks::{NewTask, Outcome, append_log, finish, register};
use crate::sim::volumes::new_uuid;

const VMID_ERR: &str = "invalid format - value does not look like a valid VM ID\n";
const PRUNE_KEYS: &[&str] = &[
    "keep-all",
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
];

/// `pve-vmid-list`: every entry a valid VM id (`^[1-9][0-9]{2,8}$`).
pub fn valid_vmid_list(s: &str) -> bool {
    s.split([',', ';', ' ', '\0'])
        .filter(|x| !x.is_empty())
        .all(|x| {
            x.len() >= 3
                && x.len() <= 9
                && !x.starts_with('0')
                && x.bytes().all(|b| b.is_ascii_digit())
        })
}

/// `parse_property_string('prune-backups', ...)`.
pub fn parse_prune(s: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or(("keep-all", part));
        if !PRUNE_KEYS.contains(&k) {
            return Err(format!(
                "invalid format - format error\n{k}: property is not defined in schema and the schema does not allow additional properties\n"
            ));
        }
        let n = if k == "keep-all" {
            crate::sim::params::parse_bool(v).map(u64::from)
        } else {
            v.parse::<u64>().ok()
        };
        match n {
            Some(n) => out.insert(k.to_string(), n),
            None => {
                return Err(format!(
                    "invalid format - format error\n{k}: type check ('integer') failed - got '{v}'\n"
                ));
            }
        };
    }
    Ok(out)
}

/// What the schema checks beyond types: `requires`, `pve-vmid-list`, `prune-backups`.
pub fn schema_checks(p: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for k in ["notes-template", "protected"] {
        if p.contains_key(k) && !p.contains_key("storage") {
            return Err(ApiError::param(
                "storage",
                format!("missing property required by '{k}'"),
            ));
        }
    }
    for k in ["vmid", "exclude"] {
        if p.get(k).is_some_and(|v| !valid_vmid_list(v)) {
            return Err(ApiError::param(k, VMID_ERR));
        }
    }
    if let Some(v) = p.get("prune-backups") {
        parse_prune(v).map_err(|e| ApiError::param("prune-backups", e))?;
    }
    Ok(())
}

/// The parameter checks vzdump and the job endpoints share (`verify_vzdump_parameters` after
/// [`schema_checks`]). `check_missing` as in PVE.
pub fn verify_params(p: &BTreeMap<String, String>, check_missing: bool) -> Result<(), ApiError> {
    schema_checks(p)?;
    let has = |k: &str| p.get(k).is_some_and(|v| !v.is_empty());
    let flag = |k: &str| {
        p.get(k)
            .and_then(|v| crate::sim::params::parse_bool(v))
            .unwrap_or(false)
    };
    for k in ["all", "exclude", "pool"] {
        let set = if k == "all" { flag(k) } else { has(k) };
        if set && has("vmid") {
            return Err(ApiError::param(k, "option conflicts with option 'vmid'"));
        }
    }
    if let Some(t) = p.get("notes-template").filter(|t| !t.is_empty()) {
        verify_notes_template(t).map_err(|e| ApiError::param("notes-template", e))?;
    }
    let all = flag("all") || (has("exclude") && !has("pool"));
    if check_missing && !(all || flag("stop") || has("pool")) && !has("vmid") {
        return Err(ApiError::param("vmid", "property is missing"));
    }
    Ok(())
}

/// The guests of a job on `node`: local ones (and ids of no guest), the other nodes' ones,
/// and whether `all` is set.
fn selection(st: &State, node: &str, p: &BTreeMap<String, String>) -> (Vec<u32>, Vec<u32>, bool) {
    let job: Map<String, Value> = p.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut per = included_guests(st, &job);
    let mut local = per.remove(node).unwrap_or_default();
    local.extend(per.remove("").unwrap_or_default());
    local.sort_unstable();
    let mut skip: Vec<u32> = per.into_values().flatten().collect();
    skip.sort_unstable();
    let flag = |k: &str| {
        p.get(k)
            .and_then(|v| crate::sim::params::parse_bool(v))
            .unwrap_or(false)
    };
    let all = flag("all") || (p.contains_key("exclude") && !p.contains_key("pool"));
    (local, skip, all)
}

/// What `PVE::VZDump->new` works out in the worker: the effective options, or the task's
/// error (storage problems).
fn options(st: &State, p: &BTreeMap<String, String>, user: &str) -> Result<Options, String> {
    let dumpdir = p.get("dumpdir").cloned();
    let storage = match (p.get("storage"), &dumpdir) {
        (Some(s), _) => s.clone(),
        (None, Some(_)) => String::new(),
        (None, None) => "local".into(),
    };
    if !storage.is_empty() {
        match st.storage(&storage) {
            None => {
                return Err(format!(
                    "could not activate storage '{storage}': storage '{storage}' does not exist\ncould not get storage information for '{storage}': storage '{storage}' does not exist"
                ));
            }
            Some(s) if !s.content.iter().any(|c| c == "backup") => {
                return Err(format!(
                    "could not get storage information for '{storage}': can't use storage '{storage}' for backups - wrong content type"
                ));
            }
            Some(_) => {}
        }
    }
    let flag = |k: &str, d: bool| {
        p.get(k)
            .and_then(|v| crate::sim::params::parse_bool(v))
            .unwrap_or(d)
    };
    let num = |k: &str, d: u64| p.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let prune = match p.get("prune-backups") {
        Some(v) => parse_prune(v).unwrap_or_default(),
        None => BTreeMap::from([("keep-all".to_string(), 1)]),
    };
    let mut opts = Options {
        storage: storage.clone(),
        mode: p.get("mode").cloned().unwrap_or_else(|| "snapshot".into()),
        compress: p.get("compress").cloned().filter(|c| c != "0"),
        notes_template: p.get("notes-template").cloned(),
        protected: flag("protected", false),
        bwlimit: p.get("bwlimit").and_then(|v| v.parse().ok()),
        ionice: num("ionice", 7) as u32,
        stopwait: num("stopwait", 10),
        remove: flag("remove", true),
        prune,
        cmdline: command_line(p),
        may_allocate: st.access.check(
            user,
            &format!("/storage/{storage}"),
            &["Datastore.Allocate"],
            false,
        ),
    };
    if storage.is_empty() {
        opts.notes_template = None;
        opts.protected = false;
    }
    if !opts.retention() {
        opts.remove = false;
    }
    Ok(opts)
}

/// `POST /nodes/{node}/vzdump`.
pub fn vzdump(c: &mut WCtx) -> ApiResult {
    c.ro().validate()?;
    let p = c.req.params.clone();
    let user = c.authid().to_string();
    let node = c.args.node.clone();
    schema_checks(&p)?;
    if p.get("stdout")
        .and_then(|v| crate::sim::params::parse_bool(v))
        .unwrap_or(false)
    {
        return Err(ApiError::param(
            "stdout",
            "option is only allowed on the command line interface.",
        ));
    }
    verify_formats(&p)?;
    let storage = match (p.get("storage"), p.get("dumpdir")) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(_)) => None,
        (None, None) => Some("local".to_string()),
    };
    if user != "root@pam" {
        for k in ["tmpdir", "dumpdir", "script", "job-id"] {
            if p.contains_key(k) {
                return Err(ApiError::param(k, "Only root may set this option."));
            }
        }
        let ro = c.ro();
        if ["bwlimit", "ionice", "performance"]
            .iter()
            .any(|k| p.contains_key(*k))
        {
            ro.require("/", &["Sys.Modify"], false)?;
        }
        if let Some(fs) = p.get("fleecing").and_then(|f| {
            f.split(',')
                .find_map(|kv| kv.strip_prefix("storage=").map(str::to_string))
        }) {
            ro.require(
                &format!("/storage/{fs}"),
                &["Datastore.AllocateSpace"],
                false,
            )?;
        }
        if let (Some(_), Some(s)) = (p.get("prune-backups"), &storage) {
            ro.require(&format!("/storage/{s}"), &["Datastore.Allocate"], false)?;
        }
    }
    verify_params(&p, true)?;
    let (local, _, all) = selection(c.st, &node, &p);
    let stop = p
        .get("stop")
        .and_then(|v| crate::sim::params::parse_bool(v))
        .unwrap_or(false);
    if stop {
        c.ro()
            .require(&format!("/nodes/{node}"), &["Sys.Modify"], false)?;
        stop_running_backups(c.st, &node);
        if local.is_empty() {
            return Ok(Reply::data(json!("OK")));
        }
    }
    if local.is_empty() && !all {
        return Ok(Reply::data(json!("OK")));
    }
    if let Some(s) = &storage {
        c.ro().require(
            &format!("/storage/{s}"),
            &["Datastore.AllocateSpace"],
            false,
        )?;
    }
    let upid = start_job(c.shared, c.st, &node, p, &user).unwrap_or_default();
    Ok(Reply::data(json!(upid)))
}

/// Schema formats the generic validation does not know.
fn verify_formats(p: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if let Some(id) = p.get("job-id")
        && (id.is_empty() || id.contains(char::is_whitespace))
    {
        return Err(ApiError::param(
            "job-id",
            "value does not match the regex pattern",
        ));
    }
    Ok(())
}

/// `stop_running_backups`: interrupts the vzdump job running on `node`.
fn stop_running_backups(st: &mut State, node: &str) {
    let running: Vec<String> = st
        .tasks
        .tasks
        .iter()
        .filter(|t| t.running() && t.ttype == "vzdump" && t.node == node)
        .map(|t| t.upid.clone())
        .collect();
    st.backup.interrupts.extend(running);
}

/// A job's run replayed at once (the scenario's seeded runs).
pub struct JobRun {
    pub id: String,
    pub lines: crate::sim::tasks::TaskLog,
    /// Simulated seconds.
    pub duration: f64,
    pub error: Option<String>,
    pub archives: Vec<NewArchive>,
}

/// Plans the scheduler's run of a job on `node` starting at `at`, with the given guests
/// failing; `None` when the node starts no task for it.
pub fn plan_scheduled(
    st: &State,
    node: &str,
    p: &BTreeMap<String, String>,
    at: i64,
    failed: &BTreeMap<u32, String>,
) -> Option<JobRun> {
    let (local, skip, all) = selection(st, node, p);
    if local.is_empty() && !all {
        return None;
    }
    let id = task_id(&local);
    let opts = match options(st, p, "root@pam") {
        Ok(o) => o,
        Err(e) => {
            return Some(JobRun {
                id,
                lines: Default::default(),
                duration: 0.2,
                error: Some(e.replace('\n', " ")),
                archives: Vec::new(),
            });
        }
    };
    // written into the log as each guest's lines are planned (a run's log is a megabyte)
    let mut lines = crate::sim::tasks::TaskLog::from(&head_lines(&opts, &skip)[..]);
    let mut t = 0.0;
    let mut errors = 0;
    let mut archives = Vec::new();
    for (i, vmid) in local.iter().enumerate() {
        let g = GuestCtx {
            st,
            node,
            vmid: *vmid,
            opts: &opts,
            start: at + t as i64,
            fail: failed.get(vmid).cloned(),
            uuid: seeded_uuid(at, *vmid, i),
        };
        let run = plan_guest(&g);
        lines.extend(run.events.into_iter().flat_map(|e| e.lines));
        t += run.end;
        if run.ok {
            archives.extend(run.archive);
        } else {
            errors += 1;
        }
    }
    lines.push(&end_line(errors));
    Some(JobRun {
        id,
        lines,
        duration: t.max(1.0),
        error: (errors > 0).then(|| "job errors".to_string()),
        archives,
    })
}

fn seeded_uuid(at: i64, vmid: u32, i: usize) -> String {
    use sha2::{Digest, Sha256};
    let h: String = Sha256::digest(format!("vzdump-{at}-{vmid}-{i}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn task_id(local: &[u32]) -> String {
    match local {
        [one] => one.to_string(),
        _ => String::new(),
    }
}

fn head_lines(opts: &Options, skip: &[u32]) -> Vec<String> {
    let mut lines = vec![info(&format!("starting new backup job: {}", opts.cmdline))];
    if !skip.is_empty() {
        let s: Vec<String> = skip.iter().map(u32::to_string).collect();
        lines.push(info(&format!("skip external VMs: {}", s.join(", "))));
    }
    lines
}

fn end_line(errors: usize) -> String {
    if errors > 0 {
        info("Backup job finished with errors")
    } else {
        info("Backup job finished successfully")
    }
}

/// Starts the `vzdump` worker for a job on `node` (after the API's early checks); `None`
/// when PVE answers `OK` instead (no guest of the job here and no `all`).
pub fn start_job(
    shared: &Arc<Shared>,
    st: &mut State,
    node: &str,
    p: BTreeMap<String, String>,
    user: &str,
) -> Option<String> {
    let (local, skip, all) = selection(st, node, &p);
    if local.is_empty() && !all {
        return None;
    }
    let id = task_id(&local);
    let setup = options(st, &p, user);
    let (upid, injected, _) = register(
        shared,
        st,
        NewTask {
            node,
            ttype: "vzdump",
            id: &id,
            user,
            duration_secs: 0.0,
            log: Vec::new(),
        },
    );
    let opts = match setup {
        Ok(o) => o,
        Err(e) => {
            // `PVE::VZDump->new` dies before the job starts; the error's lines are joined
            // by the task's end (`TASK ERROR: ...` is a single line)
            finish(
                st,
                &upid,
                Outcome::Err {
                    log: Vec::new(),
                    error: e.replace('\n', " "),
                },
            );
            return Some(upid);
        }
    };
    let lockwait = p
        .get("lockwait")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(180);
    let job = Worker {
        shared: Arc::clone(shared),
        upid: upid.clone(),
        node: node.to_string(),
        user: user.to_string(),
        opts,
        local,
        skip,
        all,
        lockwait,
        injected,
        factor: st.faults.factor(node),
    };
    tokio::spawn(job.run());
    Some(upid)
}

/// The running worker of one vzdump task.
struct Worker {
    shared: Arc<Shared>,
    upid: String,
    node: String,
    user: String,
    opts: Options,
    local: Vec<u32>,
    skip: Vec<u32>,
    all: bool,
    /// Minutes.
    lockwait: u64,
    injected: Option<String>,
    factor: f64,
}

/// What the worker changed on the guest it is backing up, to undo on an interrupt.
#[derive(Default)]
struct Touched {
    locked: bool,
    stopped: bool,
    started: bool,
    paused: bool,
}

impl Worker {
    fn scaled(&self, secs: f64) -> Duration {
        self.shared.scaled(secs * self.factor)
    }

    /// The task was interrupted (`stop=1`) or ended by someone else.
    fn interrupted(&self, st: &mut State) -> bool {
        st.backup.interrupts.remove(&self.upid)
            || !st.tasks.find(&self.upid).is_some_and(|t| t.running())
    }

    async fn run(self) {
        let start = {
            let st = self.shared.lock();
            st.tasks.find(&self.upid).map(|t| t.starttime).unwrap_or(0)
        };
        // simulated seconds since the task started
        let mut sim = 0.0f64;
        if !self.global_lock(&mut sim).await {
            return;
        }
        {
            let mut st = self.shared.lock();
            append_log(&mut st, &self.upid, head_lines(&self.opts, &self.skip));
        }
        // VM.Backup on each guest (`exec_backup`): skipped silently with `all`
        let mut guests = Vec::new();
        {
            let mut st = self.shared.lock();
            for v in &self.local {
                let exists = st.vms.contains_key(v);
                let ok = !exists
                    || st
                        .access
                        .check(&self.user, &format!("/vms/{v}"), &["VM.Backup"], false);
                if ok {
                    guests.push(*v);
                } else if !self.all {
                    finish(
                        &mut st,
                        &self.upid,
                        Outcome::Err {
                            log: Vec::new(),
                            error: format!("Permission check failed (/vms/{v}, VM.Backup)"),
                        },
                    );
                    return;
                }
            }
        }
        let mut errors = 0;
        for (i, vmid) in guests.iter().enumerate() {
            match self.guest(*vmid, i, start, &mut sim).await {
                Some(true) => {}
                Some(false) => errors += 1,
                None => return,
            }
        }
        let mut st = self.shared.lock();
        let outcome = match &self.injected {
            Some(e) => Outcome::Err {
                log: vec![err(&format!("Backup job failed - {e}"))],
                error: e.clone(),
            },
            None if errors > 0 => Outcome::Err {
                log: vec![end_line(errors)],
                error: "job errors".into(),
            },
            None => Outcome::Ok {
                log: vec![end_line(0)],
                warnings: 0,
            },
        };
        finish(&mut st, &self.upid, outcome);
    }

    /// `getlock`: waits while an earlier vzdump task of the node runs. False when the task
    /// ended meanwhile (timeout, interrupt).
    async fn global_lock(&self, sim: &mut f64) -> bool {
        let mut waited = false;
        loop {
            {
                let mut st = self.shared.lock();
                if self.interrupted(&mut st) {
                    self.end_interrupted(&mut st, &[]);
                    return false;
                }
                let pos = st.tasks.tasks.iter().position(|t| t.upid == self.upid);
                let busy = st.tasks.tasks.iter().enumerate().any(|(i, t)| {
                    t.running()
                        && t.ttype == "vzdump"
                        && t.node == self.node
                        && pos.is_some_and(|p| i < p)
                });
                if !busy {
                    if waited {
                        append_log(&mut st, &self.upid, [info("got global lock")]);
                    }
                    return true;
                }
                if self.lockwait == 0 || *sim >= self.lockwait as f64 * 60.0 {
                    let e = if self.lockwait == 0 {
                        "can't acquire lock '/var/run/vzdump.lock' (wait = 0)".to_string()
                    } else {
                        "can't acquire lock '/var/run/vzdump.lock' - got timeout".to_string()
                    };
                    append_log(&mut st, &self.upid, [err(&e)]);
                    // the worker exits without a `TASK` line: PVE reads `unexpected status`
                    if let Some(t) = st.tasks.tasks.iter_mut().find(|t| t.upid == self.upid) {
                        t.exitstatus = Some("unexpected status".into());
                        t.endtime = Some(crate::sim::state::now());
                    }
                    return false;
                }
                if !waited {
                    append_log(
                        &mut st,
                        &self.upid,
                        [info("trying to get global lock - waiting...")],
                    );
                    waited = true;
                }
            }
            let step = 1.0;
            tokio::time::sleep(self.scaled(step).max(Duration::from_millis(1))).await;
            *sim += step;
        }
    }

    /// One guest's turn; `Some(ok)`, or `None` when the task ended (interrupted).
    async fn guest(&self, vmid: u32, i: usize, start: i64, sim: &mut f64) -> Option<bool> {
        let run = {
            let st = self.shared.lock();
            let g = GuestCtx {
                st: &st,
                node: &self.node,
                vmid,
                opts: &self.opts,
                start: start + *sim as i64,
                fail: st.backup.fail.get(&vmid).cloned(),
                uuid: new_uuid(&format!("vzdump-{vmid}-{i}")),
            };
            plan_guest(&g)
        };
        let t0 = Instant::now();
        let mut touched = Touched::default();
        for e in &run.events {
            let due = t0 + self.scaled(e.at);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
            let mut st = self.shared.lock();
            if self.interrupted(&mut st) {
                let lines = undo(&mut st, vmid, &touched);
                self.end_interrupted(
                    &mut st,
                    &lines_for(vmid, lines, start + (*sim + e.at) as i64),
                );
                return None;
            }
            append_log(&mut st, &self.upid, e.lines.iter().cloned());
            apply(&mut st, vmid, e.act, &mut touched);
        }
        let due = t0 + self.scaled(run.end);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        *sim += run.end;
        let mut st = self.shared.lock();
        if run.ok {
            if let Some(a) = run.archive {
                let vol = a.volume;
                st.files
                    .retain(|f| !(f.volid == vol.volid && f.node == vol.node));
                st.backup.archives.insert(vol.volid.clone(), a.config);
                st.files.push(vol);
            }
            for v in &run.pruned {
                st.files.retain(|f| f.volid != *v);
                st.backup.archives.remove(v);
            }
        }
        Some(run.ok)
    }

    /// The worker dies on SIGTERM: `interrupted by signal`.
    fn end_interrupted(&self, st: &mut State, lines: &[String]) {
        let mut log = lines.to_vec();
        log.push(err("Backup job failed - interrupted by signal"));
        finish(
            st,
            &self.upid,
            Outcome::Err {
                log,
                error: "interrupted by signal".into(),
            },
        );
    }
}

/// The lines a guest's interrupted backup ends with.
fn lines_for(vmid: u32, mut undo: Vec<String>, at: i64) -> Vec<String> {
    undo.push(err(&format!(
        "Backup of VM {vmid} failed - interrupted by signal"
    )));
    undo.push(info(&format!(
        "Failed at {}",
        crate::sim::api::qemu::migrate::stamp(at)
    )));
    undo
}

/// Applies one moment of a guest's run.
fn apply(st: &mut State, vmid: u32, act: Act, touched: &mut Touched) {
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return;
    };
    match act {
        Act::None => {}
        Act::Lock => {
            if vm.get("lock").is_none() {
                vm.config.insert("lock".into(), "backup".into());
                touched.locked = true;
            }
        }
        Act::Unlock => {
            if vm.get("lock") == Some("backup") {
                vm.config.remove("lock");
            }
            touched.locked = false;
        }
        Act::Running(true) => {
            if !vm.running {
                vm.running = true;
                vm.started_at = crate::sim::state::now();
                vm.started_instant = Some(Instant::now());
                if touched.stopped {
                    touched.stopped = false;
                } else {
                    touched.started = true;
                }
            }
        }
        Act::Running(false) => {
            if vm.running {
                vm.running = false;
                vm.paused = false;
                vm.started_instant = None;
                crate::sim::api::qemu::write::apply_pending(vm, true);
                if touched.started {
                    touched.started = false;
                } else {
                    touched.stopped = true;
                }
            }
        }
        Act::Paused(p) => {
            if vm.running {
                vm.paused = p;
                touched.paused = p;
            }
        }
    }
}

/// Puts a guest back as it was when a job is interrupted in its turn; returns the log lines.
fn undo(st: &mut State, vmid: u32, touched: &Touched) -> Vec<String> {
    let mut lines = Vec::new();
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return lines;
    };
    if touched.locked && vm.get("lock") == Some("backup") {
        vm.config.remove("lock");
    }
    if touched.started {
        vm.running = false;
        vm.paused = false;
        vm.started_instant = None;
    }
    if touched.paused && vm.running {
        vm.paused = false;
        lines.push(info("resume vm"));
    }
    if touched.stopped {
        vm.running = true;
        vm.paused = false;
        vm.started_at = crate::sim::state::now();
        vm.started_instant = Some(Instant::now());
        lines.push(info("restarting vm"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_checks_word_errors_like_pve() {
        let p = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let e = |r: Result<(), ApiError>| match r {
            Err(ApiError::Param(m)) => m.into_iter().next().unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            e(verify_params(&p(&[("all", "1"), ("vmid", "100")]), true)),
            ("all".into(), "option conflicts with option 'vmid'".into())
        );
        assert_eq!(
            e(verify_params(&p(&[]), true)),
            ("vmid".into(), "property is missing".into())
        );
        assert_eq!(
            e(verify_params(
                &p(&[("vmid", "100"), ("notes-template", "x")]),
                true
            )),
            (
                "storage".into(),
                "missing property required by 'notes-template'".into()
            )
        );
        assert_eq!(
            e(verify_params(&p(&[("vmid", "100,abc")]), true)),
            ("vmid".into(), VMID_ERR.into())
        );
        assert!(verify_params(&p(&[("exclude", "100")]), true).is_ok());
        assert!(verify_params(&p(&[("vmid", "100;101 102")]), true).is_ok());
        assert_eq!(
            parse_prune("keep-last=3,keep-daily=7").ok(),
            Some(BTreeMap::from([
                ("keep-daily".to_string(), 7),
                ("keep-last".to_string(), 3)
            ]))
        );
        assert!(parse_prune("keep-foo=1").is_err());
    }
}
