//! Backups in the simulator: vzdump's per-guest run ([`script`]), backup jobs (`jobs.cfg`)
//! with their calendar events ([`schedule`]), the guest configs archives hold (for restore and
//! `extractconfig`), and the scenario's `backup_jobs:` whose last scheduled run is seeded into
//! the nodes' task archives (with the archives it left). The HTTP side is
//! `crate::sim::api::backup`.
//!
//! PVE facts this follows (pve-manager `PVE/API2/Backup.pm`, `PVE/Jobs.pm`,
//! `PVE/Jobs/VZDump.pm`, `bin/pvescheduler`, 2026-08 master): every node's `pvescheduler`
//! runs each enabled job for its own guests as `root@pam`, through the vzdump API handler with
//! the job's options plus `quiet 1` (so the log's first line reads `starting new backup job:
//! vzdump ... --quiet 1 ...`, without `--node`); a node with none of the job's guests starts
//! no task unless the job uses `all`.

pub mod schedule;
pub mod script;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::state::State;
use super::tasks::{Task, format_upid};

/// A backup job of the scenario: `jobs.cfg` keys, plus the outcome of its last run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupJobSpec {
    pub id: String,
    /// A calendar event (`02:00`, `sat 03:30`, `mon..fri 22:30`, ...).
    pub schedule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// `1000,1001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<String>,
    #[serde(default, skip_serializing_if = "crate::sim::scenario::is_false")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<String>,
    #[serde(
        default = "crate::sim::scenario::default_true",
        skip_serializing_if = "crate::sim::scenario::is_true"
    )]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `keep-last=3,keep-weekly=2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_backups: Option<String>,
    #[serde(default, skip_serializing_if = "crate::sim::scenario::is_false")]
    pub repeat_missed: bool,
    /// Seed the job's last scheduled run (tasks on each node, archives of the guests that
    /// succeeded).
    #[serde(default, rename = "last_run", skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRunSpec>,
}

/// The last scheduled run of a job: started at the schedule's latest event that lets it end
/// before the simulator starts.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LastRunSpec {
    /// Guests whose backup failed, with vzdump's error (e.g. `job failed with err -5 -
    /// Input/output error`); the node's task then ends `job errors`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<u32, String>,
}

/// A job of `jobs.cfg` (type `vzdump`).
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    /// The job's keys as PVE stores them (`schedule`, `storage`, `vmid`, `enabled`, ...),
    /// typed as the API returns them.
    pub opts: Map<String, Value>,
}

impl Job {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.opts.get(k).and_then(Value::as_str)
    }
    /// The entry as `GET /cluster/backup` lists it (`next-run` from `now`).
    pub fn render(&self, now: i64) -> Value {
        let mut m = self.opts.clone();
        m.insert("id".into(), json!(self.id));
        m.insert("type".into(), json!("vzdump"));
        if let Some(next) = self
            .get("schedule")
            .and_then(|s| schedule::CalendarEvent::parse(s).ok())
            .and_then(|ev| ev.next_after(now))
        {
            m.insert("next-run".into(), json!(next));
        }
        Value::Object(m)
    }
}

/// Backup state kept next to the cluster state.
#[derive(Default)]
pub struct BackupState {
    /// `jobs.cfg`, in file order.
    pub jobs: Vec<Job>,
    /// volid -> the guest config the archive holds.
    pub archives: BTreeMap<String, BTreeMap<String, String>>,
    /// vmid -> the error every backup of it fails with (`SimHandle::fail_backup_of`).
    pub fail: BTreeMap<u32, String>,
    /// UPIDs of vzdump tasks interrupted by `vzdump --stop` (their worker ends them).
    pub interrupts: std::collections::BTreeSet<String>,
}

/// Splits `pve-vmid-list` values (`,`, `;`, space).
pub fn vmid_list(s: &str) -> Vec<u32> {
    s.split([',', ';', ' ', '\0'])
        .filter(|x| !x.is_empty())
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// `PVE::VZDump::get_included_guests`: the job's guests per node (`""` = guests that do not
/// exist, which vzdump tries on the node it runs on and fails visibly), in vmid order.
pub fn included_guests(st: &State, job: &Map<String, Value>) -> BTreeMap<String, Vec<u32>> {
    let s = |k: &str| job.get(k).and_then(Value::as_str);
    let flag = |k: &str| match job.get(k) {
        Some(Value::Number(n)) => n.as_i64().is_some_and(|v| v != 0),
        Some(Value::Bool(b)) => *b,
        Some(Value::String(v)) => super::params::parse_bool(v).unwrap_or(false),
        _ => false,
    };
    let mut vmids: Vec<u32> = if s("pool").is_some() {
        // the simulator has no pools: a pool has no members
        Vec::new()
    } else if let Some(v) = s("vmid") {
        vmid_list(v)
    } else if flag("all") || s("exclude").is_some() {
        let ex = s("exclude").map(vmid_list).unwrap_or_default();
        st.vms.keys().copied().filter(|v| !ex.contains(v)).collect()
    } else {
        Vec::new()
    };
    vmids.sort_unstable();
    vmids.dedup();
    let only = s("node");
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for v in vmids {
        match st.vms.get(&v) {
            Some(vm) if only.is_some_and(|n| n != vm.node) => {}
            Some(vm) => out.entry(vm.node.clone()).or_default().push(v),
            None => out.entry(String::new()).or_default().push(v),
        }
    }
    out
}

/// The archived config of `volid`: the one recorded when the archive was made, else (a
/// scenario file, an upload) the guest's current config, else a minimal VM.
pub fn archive_config(st: &State, volid: &str, vmid: Option<u32>) -> BTreeMap<String, String> {
    if let Some(c) = st.backup.archives.get(volid) {
        return c.clone();
    }
    if let Some(vm) = vmid.and_then(|v| st.vms.get(&v)) {
        return script::archived_config(&vm.config);
    }
    BTreeMap::from([
        ("cores".to_string(), "1".to_string()),
        ("memory".to_string(), "2048".to_string()),
        ("ostype".to_string(), "l26".to_string()),
        ("scsihw".to_string(), "virtio-scsi-single".to_string()),
    ])
}

/// The job options (`jobs.cfg` keys) of a scenario job.
fn job_opts(j: &BackupJobSpec) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    put("schedule", Some(&j.schedule));
    put("storage", j.storage.as_ref());
    put("vmid", j.vmid.as_ref());
    put("exclude", j.exclude.as_ref());
    put("pool", j.pool.as_ref());
    put("node", j.node.as_ref());
    put("mode", j.mode.as_ref());
    put("compress", j.compress.as_ref());
    put("notes-template", j.notes_template.as_ref());
    put("comment", j.comment.as_ref());
    if let Some(p) = &j.prune_backups {
        m.insert("prune-backups".into(), prune_object(p));
    }
    if j.all || (j.exclude.is_some() && j.pool.is_none()) {
        m.insert("all".into(), json!(1));
    }
    m.insert("enabled".into(), json!(u8::from(j.enabled)));
    if j.repeat_missed {
        m.insert("repeat-missed".into(), json!(1));
    }
    m
}

/// `keep-last=3,keep-daily=7` -> `{"keep-last":3,"keep-daily":7}` (the API returns objects).
pub fn prune_object(s: &str) -> Value {
    let mut m = Map::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        if let Some((k, v)) = part.split_once('=') {
            m.insert(
                k.trim().to_string(),
                v.trim()
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| json!(v)),
            );
        }
    }
    Value::Object(m)
}

/// `command_line`: `vzdump <vmids> --key value ...` (keys sorted; PVE prints them in hash
/// order), values shell-quoted as `PVE::Tools::shellquote` does.
pub fn command_line(params: &BTreeMap<String, String>) -> String {
    let mut cmd = String::from("vzdump");
    if let Some(v) = params.get("vmid") {
        for id in v.split([',', ';', ' ', '\0']).filter(|x| !x.is_empty()) {
            cmd.push(' ');
            cmd.push_str(id);
        }
    }
    for (k, v) in params {
        if matches!(
            k.as_str(),
            "id" | "vmid" | "starttime" | "dow" | "stdout" | "enabled" | "job-id"
        ) || v.is_empty()
        {
            continue;
        }
        cmd.push_str(&format!(" --{k} {}", shellquote(v)));
    }
    cmd
}

/// String::ShellQuote as `PVE::Tools::shellquote` uses it: safe strings as they are, others
/// in single quotes.
fn shellquote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_!%+,-./:=@^".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The job's options as the vzdump parameters the scheduler passes (`PVE::Jobs::VZDump::run`:
/// vzdump options only, plus `quiet 1`; `job-id` is set but never printed).
pub fn scheduled_params(job: &Job) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    for (k, v) in &job.opts {
        if matches!(
            k.as_str(),
            "schedule" | "enabled" | "comment" | "repeat-missed" | "type" | "id" | "next-run"
        ) {
            continue;
        }
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => u8::from(*b).to_string(),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        p.insert(k.clone(), s);
    }
    p.insert("quiet".into(), "1".into());
    p.insert("job-id".into(), job.id.clone());
    p
}

/// Builds `jobs.cfg` from the scenario and seeds the archive configs of the scenario's backup
/// files and each job's last run.
///
/// # Errors
/// A job whose schedule does not parse, or that names an unknown storage or a storage without
/// `backup` content.
pub fn seed(st: &mut State, jobs: &[BackupJobSpec]) -> Result<(), String> {
    // archives of the scenario's files hold the guest's config as it is now
    let files: Vec<(String, Option<u32>)> = st
        .files
        .iter()
        .filter(|f| f.content == "backup")
        .map(|f| (f.volid.clone(), f.vmid))
        .collect();
    for (volid, vmid) in files {
        let c = archive_config(st, &volid, vmid);
        st.backup.archives.insert(volid, c);
    }
    for j in jobs {
        let ev = schedule::CalendarEvent::parse(&j.schedule)
            .map_err(|e| format!("backup job '{}': {e}", j.id))?;
        let sid = j.storage.clone().unwrap_or_else(|| "local".into());
        match st.storage(&sid) {
            None => {
                return Err(format!(
                    "backup job '{}' names unknown storage '{sid}'",
                    j.id
                ));
            }
            Some(s) if !s.content.iter().any(|c| c == "backup") => {
                return Err(format!(
                    "backup job '{}': storage '{sid}' has no 'backup' content",
                    j.id
                ));
            }
            Some(_) => {}
        }
        if st.backup.jobs.iter().any(|x| x.id == j.id) {
            return Err(format!("backup job '{}' appears twice", j.id));
        }
        let job = Job {
            id: j.id.clone(),
            opts: job_opts(j),
        };
        if let Some(last) = &j.last_run {
            seed_last_run(st, &job, &ev, last);
        }
        st.backup.jobs.push(job);
    }
    Ok(())
}

/// Replays a job's run on every node at once: tasks in the archive, archives on the storage.
fn seed_last_run(st: &mut State, job: &Job, ev: &schedule::CalendarEvent, last: &LastRunSpec) {
    let params = scheduled_params(job);
    let nodes: Vec<String> = st.nodes.iter().map(|n| n.name.clone()).collect();
    // the latest event whose run ends (on every node) a minute before the simulator starts
    let mut before = st.started;
    for _ in 0..8 {
        let Some(at) = ev.last_at_or_before(before, 400 * 86_400) else {
            return;
        };
        let runs: Vec<(String, crate::sim::api::backup::vzdump::JobRun)> = nodes
            .iter()
            .filter_map(|n| {
                crate::sim::api::backup::vzdump::plan_scheduled(st, n, &params, at, &last.failed)
                    .map(|r| (n.clone(), r))
            })
            .collect();
        let end = runs
            .iter()
            .map(|(_, r)| at + r.duration.ceil() as i64)
            .max()
            .unwrap_or(at);
        if end + 60 > st.started {
            before = at - 1;
            continue;
        }
        for (node, run) in runs {
            push_seeded_task(st, &node, at, run);
        }
        return;
    }
}

fn push_seeded_task(
    st: &mut State,
    node: &str,
    at: i64,
    run: crate::sim::api::backup::vzdump::JobRun,
) {
    let Some(n) = st.node(node) else { return };
    let ago = (st.started - at).max(0) as u64;
    let pstart = n.uptime0.saturating_sub(ago).max(1) * 100;
    let pid = 150_000 + (at.rem_euclid(40_000) as u32) + n.nodeid * 17;
    let upid = format_upid(node, pid, pstart, at, "vzdump", &run.id, "root@pam");
    let mut log = run.lines;
    log.push(&match &run.error {
        None => "TASK OK".to_string(),
        Some(e) => format!("TASK ERROR: {e}"),
    });
    log.shrink_to_fit();
    for a in run.archives {
        st.files.retain(|f| f.volid != a.volume.volid);
        st.backup.archives.insert(a.volume.volid.clone(), a.config);
        st.files.push(a.volume);
    }
    st.tasks.tasks.push(Task {
        upid,
        node: node.to_string(),
        pid,
        pstart,
        starttime: at,
        ttype: "vzdump".into(),
        id: run.id,
        user: "root@pam".into(),
        endtime: Some(at + run.duration.ceil() as i64),
        exitstatus: Some(run.error.unwrap_or_else(|| "OK".into())),
        log,
    });
}

impl super::SimHandle {
    /// Fault injection: every backup of `vmid` from now on fails inside vzdump with
    /// `reason` (the guest's log shows progress, then `ERROR: <reason>`, `INFO: aborting
    /// backup job` and `ERROR: Backup of VM <vmid> failed - <reason>`; the job ends with
    /// `job errors` after the other guests), until [`super::SimHandle::clear_backup_failure`].
    pub fn fail_backup_of(&self, vmid: u32, reason: &str) {
        let mut st = self.shared.lock();
        st.backup.fail.insert(vmid, reason.to_string());
    }

    /// Ends [`super::SimHandle::fail_backup_of`] for `vmid`.
    pub fn clear_backup_failure(&self, vmid: u32) {
        let mut st = self.shared.lock();
        st.backup.fail.remove(&vmid);
    }

    /// The guest config archive `volid` holds (what a restore of it starts from), if the
    /// simulator knows the archive.
    pub fn archive_config(&self, volid: &str) -> Option<BTreeMap<String, String>> {
        let st = self.shared.lock();
        let exists = st.files.iter().any(|f| f.volid == volid);
        exists.then(|| {
            let vmid = st
                .files
                .iter()
                .find(|f| f.volid == volid)
                .and_then(|f| f.vmid);
            archive_config(&st, volid, vmid)
        })
    }

    /// Runs backup job `id` now, as every node's `pvescheduler` would when its time comes
    /// (the simulator has no scheduler of its own): one `vzdump` task per node with guests of
    /// the job (or every node with `all`), as `root@pam`. Returns the UPIDs. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`super::SimError::NoRuntime`] outside a runtime, [`super::SimError::Scenario`] for an
    /// unknown job.
    pub fn run_backup_job(&self, id: &str) -> Result<Vec<String>, super::SimError> {
        tokio::runtime::Handle::try_current().map_err(|_| super::SimError::NoRuntime)?;
        let mut st = self.shared.lock();
        let Some(job) = st.backup.jobs.iter().find(|j| j.id == id).cloned() else {
            return Err(super::SimError::Scenario {
                origin: "run_backup_job".into(),
                message: format!("no backup job '{id}'"),
            });
        };
        let params = scheduled_params(&job);
        let nodes: Vec<String> = st
            .nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.clone())
            .collect();
        let mut out = Vec::new();
        for n in nodes {
            if let Some(upid) = crate::sim::api::backup::vzdump::start_job(
                &self.shared,
                &mut st,
                &n,
                params.clone(),
                "root@pam",
            ) {
                out.push(upid);
            }
        }
        Ok(out)
    }
}
