//! Backup jobs (`jobs.cfg`, pve-manager `PVE/API2/Backup.pm`; semantics item 35),
//! `/cluster/backup-info/not-backed-up` (`PVE/API2/Cluster/BackupInfo.pm`) and
//! `/cluster/jobs/schedule-analyze` (`PVE/API2/Cluster/Jobs.pm`).
//!
//! - `GET /cluster/backup` (Sys.Audit on `/`): the jobs in file order with their `jobs.cfg`
//!   keys, `id`, `type: vzdump` and `next-run` (the schedule's next event after now, for
//!   enabled and disabled jobs alike; none for a schedule the simulator cannot evaluate).
//!   `GET /cluster/backup/{id}` is the same entry without `next-run`; an unknown id is 400
//!   `{"id":"No such job 'x'"}`.
//! - `POST /cluster/backup` (Sys.Modify on `/`, Datastore.Allocate on the storage, root-only
//!   `tmpdir`/`dumpdir`/`script`/`job-id`) returns null; an existing id → 500 "Job 'x'
//!   already exists"; an invalid schedule → 400 `{"schedule":"invalid format - invalid
//!   calendar event 'x' - unable to parse calendar event"}`; neither `schedule` nor
//!   `starttime` → 400 `{"schedule":"neither 'starttime' nor 'schedule' were set"}`
//!   (`starttime`+`dow` are converted to a schedule); without an id a UUID is generated.
//!   `PUT` (`delete`, "no options specified", "no such vzdump job") and `DELETE` as PVE.
//! - `not-backed-up` (Sys.Audit on `/`): guests the caller may audit that no vzdump job
//!   selects — disabled jobs count as covering, as in PVE — `[{vmid, type, name}]`.

use serde_json::{Map, Value, json};

use crate::sim::api::backup::vzdump::{schema_checks, verify_params};
use crate::sim::api::{Ctx, WCtx};
use crate::sim::backup::schedule::{CalendarEvent, ctime};
use crate::sim::backup::script::backup_volumes;
use crate::sim::backup::{Job, included_guests, prune_object};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::now;

/// Options stored as numbers (booleans as 0/1, as Perl returns them).
const BOOL_KEYS: &[&str] = &[
    "all",
    "enabled",
    "protected",
    "quiet",
    "remove",
    "repeat-missed",
    "stdexcludes",
    "stop",
];
const INT_KEYS: &[&str] = &[
    "bwlimit", "ionice", "lockwait", "maxfiles", "pigz", "stopwait", "zstd",
];

fn typed(k: &str, v: &str) -> Value {
    if BOOL_KEYS.contains(&k) {
        json!(u8::from(crate::sim::params::parse_bool(v).unwrap_or(false)))
    } else if INT_KEYS.contains(&k) {
        v.parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v))
    } else if k == "prune-backups" {
        prune_object(v)
    } else if k == "fleecing" || k == "performance" {
        let mut m = Map::new();
        for part in v.split(',').filter(|p| !p.is_empty()) {
            let (key, val) = part.split_once('=').unwrap_or(("enabled", part));
            m.insert(
                key.to_string(),
                val.parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| json!(val)),
            );
        }
        Value::Object(m)
    } else {
        json!(v)
    }
}

fn no_such(id: &str) -> ApiError {
    ApiError::param("id", format!("No such job '{id}'"))
}

fn job_id(c: &Ctx) -> String {
    c.param("id").unwrap_or("").to_string()
}

/// `GET /cluster/backup`.
pub fn index(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Audit"], false)?;
    c.validate()?;
    let now = now();
    Ok(Reply::data(Value::Array(
        c.st.backup.jobs.iter().map(|j| j.render(now)).collect(),
    )))
}

/// `GET /cluster/backup/{id}`.
pub fn read(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Audit"], false)?;
    c.validate()?;
    let id = job_id(c);
    let job =
        c.st.backup
            .jobs
            .iter()
            .find(|j| j.id == id)
            .ok_or_else(|| no_such(&id))?;
    let mut m = job.opts.clone();
    m.insert("id".into(), json!(job.id));
    m.insert("type".into(), json!("vzdump"));
    Ok(Reply::data(Value::Object(m)))
}

/// The schedule of a job write: `schedule`, or `starttime` (+ `dow`) converted.
fn schedule_of(
    p: &std::collections::BTreeMap<String, String>,
    required: bool,
) -> Result<Option<String>, ApiError> {
    match (p.get("schedule"), p.get("starttime")) {
        (Some(_), Some(_)) => Err(ApiError::param(
            "starttime",
            "'starttime' and 'schedule' cannot both be set",
        )),
        (Some(s), None) => {
            CalendarEvent::parse(s)
                .map_err(|e| ApiError::param("schedule", format!("invalid format - {e}\n")))?;
            Ok(Some(s.clone()))
        }
        (None, Some(t)) => {
            let valid = t.split_once(':').is_some_and(|(h, m)| {
                (1..=2).contains(&h.len())
                    && (1..=2).contains(&m.len())
                    && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
            });
            if !valid {
                return Err(ApiError::param(
                    "starttime",
                    "value does not match the regex pattern",
                ));
            }
            let days: Vec<&str> = p
                .get("dow")
                .map(|d| {
                    d.split([',', ';', ' ', '\0'])
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let all = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            if let Some(bad) = days.iter().find(|d| !all.contains(d)) {
                return Err(ApiError::param(
                    "dow",
                    format!("invalid format - invalid day '{bad}'\n"),
                ));
            }
            Ok(Some(
                if days.is_empty() || days.join(",") == all.join(",") {
                    t.clone()
                } else {
                    format!("{} {t}", days.join(","))
                },
            ))
        }
        (None, None) if required => Err(ApiError::param(
            "schedule",
            "neither 'starttime' nor 'schedule' were set",
        )),
        (None, None) => Ok(None),
    }
}

/// The schema's checks of a job write: the `pve-calendar-event` format and vzdump's.
fn job_schema_checks(p: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    if let Some(s) = p.get("schedule") {
        CalendarEvent::parse(s)
            .map_err(|e| ApiError::param("schedule", format!("invalid format - {e}\n")))?;
    }
    schema_checks(p)
}

/// `assert_param_permission_common` and the storage check of job writes.
fn job_write_perms(
    c: &WCtx,
    p: &std::collections::BTreeMap<String, String>,
    storage: Option<&str>,
) -> Result<(), ApiError> {
    if c.authid() == "root@pam" {
        return Ok(());
    }
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
    if let Some(s) = storage {
        ro.require(&format!("/storage/{s}"), &["Datastore.Allocate"], false)?;
    }
    Ok(())
}

/// `POST /cluster/backup`.
pub fn create(c: &mut WCtx) -> ApiResult {
    c.ro().require("/", &["Sys.Modify"], false)?;
    c.ro().validate()?;
    let mut p = c.req.params.clone();
    job_schema_checks(&p)?;
    let storage = if p.contains_key("dumpdir") {
        None
    } else {
        Some(p.get("storage").cloned().unwrap_or_else(|| "local".into()))
    };
    job_write_perms(c, &p, storage.as_deref())?;
    if let Some(pool) = p.get("pool") {
        return Err(ApiError::Server(format!("pool '{pool}' does not exist")));
    }
    let schedule = schedule_of(&p, true)?;
    p.remove("starttime");
    p.remove("dow");
    if let Some(s) = schedule {
        p.insert("schedule".into(), s);
    }
    p.entry("enabled".into()).or_insert_with(|| "1".into());
    let id = p
        .remove("id")
        .unwrap_or_else(|| crate::sim::volumes::new_uuid("backup-job"));
    if c.st.backup.jobs.iter().any(|j| j.id == id) {
        return Err(ApiError::Server(format!("Job '{id}' already exists")));
    }
    verify_params(&p, true)?;
    if p.contains_key("exclude") && !p.contains_key("pool") {
        p.insert("all".into(), "1".into());
    }
    let opts: Map<String, Value> = p.iter().map(|(k, v)| (k.clone(), typed(k, v))).collect();
    c.st.backup.jobs.push(Job { id, opts });
    Ok(Reply::data(Value::Null))
}

/// `PUT /cluster/backup/{id}`.
pub fn update(c: &mut WCtx) -> ApiResult {
    c.ro().require("/", &["Sys.Modify"], false)?;
    c.ro().validate()?;
    let mut p = c.req.params.clone();
    job_schema_checks(&p)?;
    let id = p.remove("id").unwrap_or_default();
    let delete: Vec<String> = p
        .remove("delete")
        .map(|d| {
            d.split([',', ';', ' ', '\0'])
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let storage = match (p.get("storage"), delete.iter().any(|d| d == "storage")) {
        (Some(s), _) => Some(s.clone()),
        (None, true) => Some("local".into()),
        _ => None,
    };
    job_write_perms(c, &p, storage.as_deref())?;
    if let Some(pool) = p.get("pool") {
        return Err(ApiError::Server(format!("pool '{pool}' does not exist")));
    }
    let schedule = schedule_of(&p, false)?;
    p.remove("starttime");
    p.remove("dow");
    if let Some(s) = schedule {
        p.insert("schedule".into(), s);
    }
    if p.is_empty() && delete.is_empty() {
        return Err(ApiError::Server("no options specified".into()));
    }
    verify_params(&p, false)?;
    let Some(pos) = c.st.backup.jobs.iter().position(|j| j.id == id) else {
        return Err(ApiError::Server("no such vzdump job".into()));
    };
    // the job's current storage needs Datastore.Allocate too
    if c.authid() != "root@pam" {
        let cur = c.st.backup.jobs[pos]
            .get("storage")
            .unwrap_or("local")
            .to_string();
        c.ro()
            .require(&format!("/storage/{cur}"), &["Datastore.Allocate"], false)?;
    }
    let known = |k: &str| {
        c.ro().spec_has(k)
            && !matches!(
                k,
                "id" | "delete" | "schedule" | "starttime" | "dow" | "enabled"
            )
            || matches!(k, "comment" | "repeat-missed")
    };
    if let Some(bad) = delete.iter().find(|k| !known(k)) {
        return Err(ApiError::param("delete", format!("unknown option '{bad}'")));
    }
    let mut job = c.st.backup.jobs[pos].clone();
    for k in &delete {
        job.opts.remove(k);
    }
    for (k, v) in &p {
        job.opts.insert(k.clone(), typed(k, v));
    }
    if job.opts.contains_key("exclude") && !job.opts.contains_key("pool") {
        job.opts.insert("all".into(), json!(1));
    }
    if p.contains_key("vmid") {
        for k in ["all", "exclude", "pool"] {
            job.opts.remove(k);
        }
    } else if p
        .get("all")
        .is_some_and(|v| crate::sim::params::parse_bool(v) == Some(true))
    {
        job.opts.remove("vmid");
        job.opts.remove("pool");
    } else if job.opts.contains_key("pool") {
        for k in ["vmid", "all", "exclude"] {
            job.opts.remove(k);
        }
    }
    let flat: std::collections::BTreeMap<String, String> = job
        .opts
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "prune-backups" | "fleecing" | "performance"))
        .map(|(k, v)| {
            (
                k.clone(),
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            )
        })
        .collect();
    verify_params(&flat, true)?;
    c.st.backup.jobs[pos] = job;
    Ok(Reply::data(Value::Null))
}

/// `DELETE /cluster/backup/{id}`.
pub fn delete(c: &mut WCtx) -> ApiResult {
    c.ro().require("/", &["Sys.Modify"], false)?;
    c.ro().validate()?;
    let id = c.param("id").unwrap_or("").to_string();
    let before = c.st.backup.jobs.len();
    c.st.backup.jobs.retain(|j| j.id != id);
    if c.st.backup.jobs.len() == before {
        return Err(no_such(&id));
    }
    Ok(Reply::data(Value::Null))
}

/// `GET /cluster/backup/{id}/included_volumes`.
pub fn included_volumes(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Audit"], false)?;
    c.validate()?;
    let id = job_id(c);
    let job =
        c.st.backup
            .jobs
            .iter()
            .find(|j| j.id == id)
            .ok_or_else(|| no_such(&id))?;
    let mut vmids: Vec<u32> = included_guests(c.st, &job.opts)
        .into_values()
        .flatten()
        .collect();
    vmids.sort_unstable();
    let children: Vec<Value> = vmids
        .into_iter()
        .filter(|v| c.can(&format!("/vms/{v}"), &["VM.Audit"]))
        .map(|v| match c.st.vms.get(&v) {
            None => json!({ "id": v, "type": "unknown", "leaf": 1 }),
            Some(vm) => {
                let vols: Vec<Value> = backup_volumes(&vm.config)
                    .into_iter()
                    .map(|b| {
                        json!({ "id": format!("{v}:{}", b.key), "name": b.volid,
                            "included": u8::from(b.included), "reason": b.reason, "leaf": 1 })
                    })
                    .collect();
                json!({ "id": v, "type": "qemu", "name": vm.get("name").unwrap_or(""),
                    "leaf": u8::from(vols.is_empty()), "children": vols })
            }
        })
        .collect();
    Ok(Reply::data(json!({ "children": children })))
}

/// `GET /cluster/backup-info/not-backed-up`.
pub fn not_backed_up(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Audit"], false)?;
    c.validate()?;
    let covered: std::collections::BTreeSet<u32> =
        c.st.backup
            .jobs
            .iter()
            .flat_map(|j| included_guests(c.st, &j.opts).into_values().flatten())
            .collect();
    let rows: Vec<Value> = c
        .st
        .vms
        .values()
        .filter(|v| !covered.contains(&v.vmid))
        .filter(|v| c.can(&format!("/vms/{}", v.vmid), &["VM.Audit"]))
        .map(|v| {
            let mut m = json!({ "vmid": v.vmid, "type": if v.is_ct() { "lxc" } else { "qemu" } });
            if let Some(n) = v.get(if v.is_ct() { "hostname" } else { "name" }) {
                m["name"] = json!(n);
            }
            m
        })
        .collect();
    Ok(Reply::data(Value::Array(rows)))
}

/// `GET /cluster/jobs/schedule-analyze`.
pub fn schedule_analyze(c: &Ctx) -> ApiResult {
    c.validate()?;
    let schedule = c.param("schedule").unwrap_or("");
    let ev = CalendarEvent::parse(schedule)
        .map_err(|e| ApiError::param("schedule", format!("invalid format - {e}\n")))?;
    let mut t = c
        .param("starttime")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(now);
    let n = c
        .param("iterations")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(10);
    let mut out = Vec::new();
    for _ in 0..n {
        let Some(next) = ev.next_after(t) else { break };
        out.push(json!({ "timestamp": next, "utc": ctime(next) }));
        t = next;
    }
    Ok(Reply::data(Value::Array(out)))
}
