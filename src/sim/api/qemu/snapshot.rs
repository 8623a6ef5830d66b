//! `/nodes/{node}/qemu/{vmid}/snapshot...` (qemu-server `API2/Qemu.pm` `snapshot_list`,
//! `snapshot`, `snapshot_cmd_idx`, `get/update_snapshot_config`, `rollback`, `delsnapshot`;
//! pve-guest-common `AbstractConfig.pm` for the workers). The model is in `sim/snapshot.rs`.
//!
//! ## Early errors and task errors
//!
//! | endpoint | before the fork (HTTP error) | in the worker (task error) |
//! |---|---|---|
//! | `POST snapshot` | 400 `snapname` (`pve-configid`, ≤ 40); 500 "unable to use snapshot name 'current' (reserved name)", "... 'pending' ..." (any case); missing config; with `vmstate`: "Cannot live-migrate, snapshot (with RAM), or hibernate a VM with: amd-sev" | flock; "you can't take a snapshot if it's a template"; "VM is locked (x)"; "snapshot name 'x' already used"; "snapshot feature is not available" (a raw image on a directory, thick LVM) |
//! | `PUT snapshot/{s}/config` (no `description`: returns null, checks nothing) | flock; missing config; "VM is locked (x)"; "snapshot 's' does not exist" | — |
//! | `GET snapshot/{s}/config` | missing config; "snapshot 's' does not exist" | — |
//! | `POST snapshot/{s}/rollback` | 403 without VM.PowerMgmt when `start=1` | flock; missing config; "you can't rollback if vm is a template"; "snapshot 's' does not exist"; "unable to rollback to incomplete snapshot (snapstate = prepare)"; "VM is locked (x)" |
//! | `DELETE snapshot/{s}` | — | flock; missing config; "snapshot 's' does not exist"; "VM is locked (x)" |
//!
//! A snapshot holds `lock: snapshot` while its task runs (the section is in the config with
//! `snapstate: prepare`, its RAM state volume allocated); a rollback stops a running guest
//! and holds `lock: rollback`; a delete holds `lock: snapshot-delete` (`snapstate: delete`).
//! When a rollback's snapshot has RAM the guest runs again from it; otherwise it stays
//! stopped unless `start=1`. Injected failures (`SimHandle::fail_next_task`): a `qmsnapshot`
//! fails while snapshotting the disks and PVE's cleanup removes the half-made snapshot; a
//! `qmrollback` or `qmdelsnapshot` fails before it changes anything (as when the guest's
//! migration lock or storage activation fails). Either way the guest is left as it was.

use serde_json::{Value, json};

use super::{failed_worker, worker_error};
use crate::sim::api::{Ctx, Handler, PathArgs, Route, WCtx};
use crate::sim::guest::{check_lock, missing};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::params::{self, Param, Ty, opt, req};
use crate::sim::snapshot::{
    RUNNING_MACHINE, add_unused, copy_config, drive_volids, drop_reattached_unused, freed_error,
    missing_disk_error, nets_host_mtu, ram_blockers, rolled_back, running_cpu, snapshot_supported,
    vmstate_storage, vmstate_volid,
};
use crate::sim::state::{GIB, State, now};
use crate::sim::tasks::{NewTask, Outcome, spawn_locked};

const NODE: Param = req("node", Ty::Node);
const VMID: Param = req("vmid", params::VMID);
const SNAPNAME: Param = req("snapname", Ty::ConfigId);
const STR: Ty = Ty::Str { max_len: None };

const LIST: &[Param] = &[NODE, VMID];
const CREATE: &[Param] = &[
    NODE,
    VMID,
    SNAPNAME,
    opt("description", STR),
    opt("vmstate", Ty::Bool),
];
const ITEM: &[Param] = &[NODE, VMID, SNAPNAME];
const UPDATE: &[Param] = &[NODE, VMID, SNAPNAME, opt("description", STR)];
const ROLLBACK: &[Param] = &[NODE, VMID, SNAPNAME, opt("start", Ty::Bool)];
const DELETE: &[Param] = &[NODE, VMID, SNAPNAME, opt("force", Ty::Bool)];

/// Durations at time scale 1, in seconds.
const BASE_SECS: f64 = 1.0;
const PER_DISK_SECS: f64 = 0.4;
/// Saving or loading a guest's RAM: a fixed part plus this per GiB in use.
const RAM_SECS: f64 = 1.5;
const RAM_SECS_PER_GIB: f64 = 1.0;
const START_SECS: f64 = 3.0;

/// LVM's warnings on a default PVE install when it creates a thin volume.
const LVM_THIN_WARNINGS: [&str; 2] = [
    "  WARNING: You have not turned on protection against thin pools running out of space.",
    "  WARNING: Set activation/thin_pool_autoextend_threshold below 100 to trigger automatic extension of thin pools before they get full.",
];

/// GET routes below `.../qemu/{vmid}/snapshot`.
pub(in crate::sim::api) fn read_route(rest: &[&str], args: &mut PathArgs) -> Option<Route> {
    let r = |handler: fn(&Ctx) -> ApiResult, spec: &'static [Param], proxied: bool| {
        Some(Route {
            handler: Handler::Read(handler),
            spec,
            proxied,
        })
    };
    match rest {
        [] => r(list, LIST, true),
        // `snapshot_cmd_idx` has no `proxyto`: any node answers it
        [name] => {
            args.extra.push(("snapname", name.to_string()));
            r(index, ITEM, false)
        }
        [name, "config"] => {
            args.extra.push(("snapname", name.to_string()));
            r(get_config, ITEM, true)
        }
        _ => None,
    }
}

/// POST/PUT/DELETE routes below `.../qemu/{vmid}/snapshot`.
pub(in crate::sim::api) fn write_route(
    method: &str,
    rest: &[&str],
    args: &mut PathArgs,
) -> Option<Route> {
    let w = |handler: fn(&mut WCtx) -> ApiResult, spec: &'static [Param]| {
        Some(Route {
            handler: Handler::Write(handler),
            spec,
            proxied: true,
        })
    };
    let (handler, spec, name): (fn(&mut WCtx) -> ApiResult, _, _) = match (method, rest) {
        ("POST", []) => return w(create, CREATE),
        ("PUT", [name, "config"]) => (update_config as _, UPDATE, name),
        ("POST", [name, "rollback"]) => (rollback as _, ROLLBACK, name),
        ("DELETE", [name]) => (delete as _, DELETE, name),
        _ => return None,
    };
    args.extra.push(("snapname", name.to_string()));
    w(handler, spec)
}

fn vm_path(c: &Ctx) -> String {
    format!("/vms/{}", c.args.vmid)
}

fn snapname(c: &Ctx) -> String {
    c.param("snapname").unwrap_or("").to_string()
}

fn no_such(name: &str) -> String {
    format!("snapshot '{name}' does not exist")
}

/// `snapshot_list`: every section (PVE walks a Perl hash, so its order is arbitrary; here by
/// `snaptime`, then name), then the `current` pseudo-entry.
pub fn list(c: &Ctx) -> ApiResult {
    c.require(&vm_path(c), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = super::read::lookup(c, &c.args.node, &c.args.vmid)?;
    let mut items: Vec<(i64, Value)> = vm
        .snapshots
        .iter()
        .map(|(name, s)| {
            let snaptime: i64 = s.get("snaptime").and_then(|t| t.parse().ok()).unwrap_or(0);
            let mut item = json!({
                "name": name,
                "snaptime": snaptime,
                "vmstate": u8::from(s.contains_key("vmstate")),
                "description": s.get("description").cloned().unwrap_or_default(),
            });
            if let Some(p) = s.get("parent") {
                item["parent"] = json!(p);
            }
            if let Some(state) = s.get("snapstate") {
                item["snapstate"] = json!(state);
            }
            (snaptime, item)
        })
        .collect();
    items.sort_by(|a, b| (a.0, a.1["name"].as_str()).cmp(&(b.0, b.1["name"].as_str())));
    let mut out: Vec<Value> = items.into_iter().map(|(_, v)| v).collect();
    let mut current = json!({
        "name": "current",
        "digest": vm.digest(),
        "running": u8::from(vm.running),
        "description": "You are here!",
    });
    if let Some(p) = vm.get("parent") {
        current["parent"] = json!(p);
    }
    out.push(current);
    Ok(Reply::data(Value::Array(out)))
}

/// `snapshot_cmd_idx`: the two sub-paths, whatever the name (`user => 'all'`).
fn index(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(Reply::data(
        json!([{ "cmd": "rollback" }, { "cmd": "config" }]),
    ))
}

/// `get_snapshot_config`: the section as stored (without a digest).
fn get_config(c: &Ctx) -> ApiResult {
    c.require(
        &vm_path(c),
        &["VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit"],
        true,
    )?;
    c.validate()?;
    let vm = super::read::lookup(c, &c.args.node, &c.args.vmid)?;
    let name = snapname(c);
    let snap = vm
        .snapshots
        .get(&name)
        .ok_or_else(|| ApiError::Server(no_such(&name)))?;
    Ok(Reply::data(Value::Object(super::read::typed(snap))))
}

/// `update_snapshot_config`: the description, under the config flock and `check_lock`.
fn update_config(c: &mut WCtx) -> ApiResult {
    c.ro().require(&vm_path(&c.ro()), &["VM.Snapshot"], false)?;
    c.ro().validate()?;
    let Some(description) = c.param("description").map(str::to_string) else {
        return Ok(Reply::data(Value::Null));
    };
    let (vmid, node, name) = (c.vmid(), c.args.node.clone(), snapname(&c.ro()));
    c.st.faults.check_flock(vmid)?;
    let vm =
        c.st.vms
            .get_mut(&vmid)
            .filter(|v| v.node == node)
            .ok_or_else(|| missing(&node, vmid))?;
    check_lock(vm, false)?;
    let snap = vm
        .snapshots
        .get_mut(&name)
        .ok_or_else(|| ApiError::Server(no_such(&name)))?;
    // an empty description is not written to the file
    if description.is_empty() {
        snap.remove("description");
    } else {
        snap.insert("description".into(), description);
    }
    Ok(Reply::data(Value::Null))
}

/// The error `SimHandle::fail_next_task` queued for the next `ttype` task on `node`, if any
/// (it is taken when the task registers).
fn queued_failure(st: &State, node: &str, ttype: &str) -> Option<String> {
    st.faults
        .fail_next
        .get(&(node.to_string(), ttype.to_string()))
        .and_then(|l| l.first().cloned())
}

/// Seconds to save or load the RAM of a guest using `mem` bytes.
fn ram_secs(mem: u64) -> f64 {
    RAM_SECS + RAM_SECS_PER_GIB * mem as f64 / GIB as f64
}

/// pve-common `render_bytes` with its default precision of 2.
fn render_bytes(v: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit < units.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", units[unit])
}

/// `(key, volid, storage type)` of a guest's disks.
type Disks = Vec<(String, String, String)>;

/// What `snapshot_create` does after `__snapshot_prepare`, worked out when it starts.
struct CreatePlan {
    /// `(storage, volid)` of the RAM state.
    vmstate: Option<(String, String)>,
    running: bool,
    /// The disks to snapshot.
    disks: Disks,
    /// RAM in use (what savevm writes).
    mem: u64,
    /// `warn` lines `__snapshot_prepare` printed.
    warnings: Vec<String>,
}

/// `__snapshot_prepare` under the config flock: the checks, then the section (with
/// `snapstate: prepare`), the RAM state volume and `lock: snapshot`.
fn prepare_create(
    st: &mut State,
    node: &str,
    vmid: u32,
    name: &str,
    vmstate: bool,
    description: Option<&str>,
) -> Result<CreatePlan, String> {
    st.faults.check_flock(vmid).map_err(worker_error)?;
    let vm = st
        .vms
        .get(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| worker_error(missing(node, vmid)))?;
    if vm.is_template() {
        return Err("you can't take a snapshot if it's a template".into());
    }
    check_lock(vm, false).map_err(worker_error)?;
    if vmstate {
        let b = ram_blockers(&vm.config);
        if !b.is_empty() {
            return Err(format!(
                "Cannot live-migrate, snapshot (with RAM), or hibernate a VM with: {}",
                b.join(", ")
            ));
        }
    }
    if vm.snapshots.contains_key(name) {
        return Err(format!("snapshot name '{name}' already used"));
    }
    let mut disks = Vec::new();
    for (key, volid) in drive_volids(&vm.config) {
        let (sid, volname) = volid.split_once(':').unwrap_or(("", ""));
        let stype = st.storage(sid).map(|s| s.stype.clone()).unwrap_or_default();
        if !snapshot_supported(&stype, volname) {
            return Err("snapshot feature is not available".into());
        }
        disks.push((key, volid.clone(), stype));
    }
    let running = vm.running;
    let state = (vmstate && running).then(|| {
        let sid = vmstate_storage(&st.storages, &vm.config);
        let volid = vmstate_volid(&st.storages, &sid, vmid, name);
        (sid, volid)
    });
    if let Some((_, volid)) = &state {
        st.freed_volumes.remove(volid);
    }
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return Err(worker_error(missing(node, vmid)));
    };
    let mem = vm.mem();
    let mut warnings = Vec::new();
    for (other, s) in vm.snapshots.iter_mut() {
        if s.get("parent").is_some_and(|p| p == name) {
            s.remove("parent");
            warnings.push(format!(
                "deleting parent '{name}' reference from '{other}' to avoid bogus snapshot cycle."
            ));
        }
    }
    let mut snap = copy_config(&vm.config);
    if let Some((_, volid)) = &state {
        snap.insert("vmstate".into(), volid.clone());
        snap.insert("runningmachine".into(), RUNNING_MACHINE.into());
        snap.insert("runningcpu".into(), running_cpu(vm.get("cpu")));
        if let Some(m) = nets_host_mtu(&vm.config) {
            snap.insert("running-nets-host-mtu".into(), m);
        }
    }
    snap.insert("snapstate".into(), "prepare".into());
    snap.insert("snaptime".into(), now().to_string());
    // Perl truthiness: "" and "0" are no comment
    if let Some(d) = description.filter(|d| !d.is_empty() && *d != "0") {
        snap.insert("description".into(), d.to_string());
    }
    vm.snapshots.insert(name.to_string(), snap);
    vm.config.insert("lock".into(), "snapshot".into());
    Ok(CreatePlan {
        vmstate: state,
        running,
        disks,
        mem,
        warnings,
    })
}

/// The log lines of snapshotting one disk.
fn snapshot_disk_log(
    key: &str,
    volid: &str,
    stype: &str,
    running: bool,
    name: &str,
) -> Vec<String> {
    let mut log = vec![format!("snapshotting 'drive-{key}' ({volid})")];
    let volname = volid.split_once(':').map(|x| x.1).unwrap_or("");
    let lv = volname.rsplit('/').next().unwrap_or(volname);
    if stype == "lvmthin" {
        log.extend(LVM_THIN_WARNINGS.iter().map(|s| s.to_string()));
        log.push(format!("  Logical volume \"snap_{lv}_{name}\" created."));
    } else if running && volname.ends_with(".qcow2") {
        log.push("internal qemu snapshot".into());
    }
    log
}

/// `POST .../snapshot`: task `qmsnapshot`.
fn create(c: &mut WCtx) -> ApiResult {
    c.ro().require(&vm_path(&c.ro()), &["VM.Snapshot"], false)?;
    c.ro().validate()?;
    let (vmid, node, name) = (c.vmid(), c.args.node.clone(), snapname(&c.ro()));
    if name == "current" {
        return Err(ApiError::Server(
            "unable to use snapshot name 'current' (reserved name)".into(),
        ));
    }
    if name.eq_ignore_ascii_case("pending") {
        return Err(ApiError::Server(
            "unable to use snapshot name 'pending' (reserved name)".into(),
        ));
    }
    let vmstate = c.flag("vmstate");
    {
        let vm =
            c.st.vms
                .get(&vmid)
                .filter(|v| v.node == node)
                .ok_or_else(|| missing(&node, vmid))?;
        let b = ram_blockers(&vm.config);
        if vmstate && !b.is_empty() {
            return Err(ApiError::Server(format!(
                "Cannot live-migrate, snapshot (with RAM), or hibernate a VM with: {}",
                b.join(", ")
            )));
        }
    }
    let description = c.param("description").map(str::to_string);
    let plan = match prepare_create(c.st, &node, vmid, &name, vmstate, description.as_deref()) {
        Ok(p) => p,
        Err(e) => return failed_worker(c, "qmsnapshot", e),
    };
    let mut log = plan.warnings.clone();
    let mut secs = BASE_SECS + PER_DISK_SECS * plan.disks.len() as f64;
    if let Some((sid, _)) = &plan.vmstate {
        log.push(format!("saving VM state and RAM using storage '{sid}'"));
        secs += ram_secs(plan.mem);
    }
    let saved = ram_secs(plan.mem);
    let mem = plan.mem;
    let has_state = plan.vmstate.is_some();
    let mut done_log = Vec::new();
    if has_state {
        let n = saved.ceil().max(1.0) as u64;
        for i in 0..n {
            done_log.push(format!(
                "{} in {i}s",
                render_bytes(mem as f64 * i as f64 / n as f64 + 1_583_000.0)
            ));
        }
        done_log.push(format!(
            "completed saving the VM state in {}s, saved {}",
            n,
            render_bytes(mem as f64)
        ));
    }
    for (key, volid, stype) in &plan.disks {
        done_log.extend(snapshot_disk_log(key, volid, stype, plan.running, &name));
    }
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let node2 = node.clone();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmsnapshot",
            id: &id,
            user: &user,
            duration_secs: secs,
            log,
        },
        move |st, injected| {
            let Some(vm) = st.vms.get_mut(&vmid).filter(|v| v.node == node2) else {
                return Outcome::Err {
                    log: Vec::new(),
                    error: worker_error(missing(&node2, vmid)),
                };
            };
            if let Some(error) = injected {
                // `snapshot_create`'s cleanup: `snapshot_delete(force)` of what it made
                if vm
                    .snapshots
                    .get(&name)
                    .is_some_and(|s| s.get("snapstate").is_some_and(|x| x == "prepare"))
                {
                    vm.snapshots.remove(&name);
                }
                if vm.get("lock") == Some("snapshot") {
                    vm.config.remove("lock");
                }
                return Outcome::Err {
                    log: vec!["snapshot create failed: starting cleanup".into()],
                    error,
                };
            }
            // `__snapshot_commit`
            let fail = |error: &str| Outcome::Err {
                log: Vec::new(),
                error: error.to_string(),
            };
            if vm.get("lock") != Some("snapshot") {
                return fail("missing snapshot lock");
            }
            let Some(snap) = vm.snapshots.get_mut(&name) else {
                return fail(&no_such(&name));
            };
            if snap.get("snapstate").map(String::as_str) != Some("prepare") {
                return fail("wrong snapshot state");
            }
            snap.remove("snapstate");
            vm.config.remove("lock");
            vm.config.insert("parent".into(), name.clone());
            Outcome::Ok {
                log: done_log,
                warnings: 0,
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST .../snapshot/{s}/rollback`: task `qmrollback`.
fn rollback(c: &mut WCtx) -> ApiResult {
    let path = vm_path(&c.ro());
    c.ro()
        .require(&path, &["VM.Snapshot", "VM.Snapshot.Rollback"], true)?;
    c.ro().validate()?;
    let start = c.flag("start");
    // the worker starts the guest itself, past `vm_start`'s own permission check
    if start {
        c.ro().require(&path, &["VM.PowerMgmt"], false)?;
    }
    let (vmid, node, name) = (c.vmid(), c.args.node.clone(), snapname(&c.ro()));
    if let Some(e) = queued_failure(c.st, &node, "qmrollback") {
        return failed_worker(c, "qmrollback", e);
    }
    // `snapshot_rollback`'s first pass, under the config flock
    let first = (|| -> Result<(Disks, bool, u64), String> {
        c.st.faults.check_flock(vmid).map_err(worker_error)?;
        let vm =
            c.st.vms
                .get(&vmid)
                .filter(|v| v.node == node)
                .ok_or_else(|| worker_error(missing(&node, vmid)))?;
        if vm.is_template() {
            return Err("you can't rollback if vm is a template".into());
        }
        let snap = vm.snapshots.get(&name).ok_or_else(|| no_such(&name))?;
        if let Some(s) = snap.get("snapstate") {
            return Err(format!(
                "unable to rollback to incomplete snapshot (snapstate = {s})"
            ));
        }
        check_lock(vm, false).map_err(worker_error)?;
        let disks = drive_volids(snap)
            .into_iter()
            .map(|(k, v)| {
                let sid = v.split_once(':').map(|x| x.0).unwrap_or("");
                let stype =
                    c.st.storage(sid)
                        .map(|s| s.stype.clone())
                        .unwrap_or_default();
                (k, v, stype)
            })
            .collect();
        let mem = (vm.maxmem() as f64 * vm.mem_usage.max(0.3)) as u64;
        Ok((disks, snap.contains_key("vmstate"), mem))
    })();
    let (disks, with_state, mem) = match first {
        Ok(x) => x,
        Err(e) => return failed_worker(c, "qmrollback", e),
    };
    let Some(vm) = c.st.vms.get_mut(&vmid) else {
        return failed_worker(c, "qmrollback", worker_error(missing(&node, vmid)));
    };
    // `__snapshot_rollback_vm_stop`, then the lock
    vm.running = false;
    vm.paused = false;
    vm.started_instant = None;
    vm.config.insert("lock".into(), "rollback".into());
    let mut secs = BASE_SECS + PER_DISK_SECS * disks.len() as f64;
    if with_state {
        secs += ram_secs(mem);
    } else if start {
        secs += START_SECS;
    }
    let mut done_log = Vec::new();
    for (_, volid, stype) in &disks {
        if stype == "lvmthin" {
            let volname = volid.split_once(':').map(|x| x.1).unwrap_or("");
            let lv = volname.rsplit('/').next().unwrap_or(volname);
            done_log.push(format!("  Logical volume \"{lv}\" successfully removed."));
            done_log.extend(LVM_THIN_WARNINGS.iter().map(|s| s.to_string()));
            done_log.push(format!("  Logical volume \"{lv}\" created."));
        }
    }
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let node2 = node.clone();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmrollback",
            id: &id,
            user: &user,
            duration_secs: secs,
            log: Vec::new(),
        },
        move |st, injected| {
            let fail = |log: Vec<String>, error: String| Outcome::Err { log, error };
            if let Some(e) = injected {
                return fail(Vec::new(), e);
            }
            let Some(vm) = st.vms.get_mut(&vmid).filter(|v| v.node == node2) else {
                return fail(Vec::new(), worker_error(missing(&node2, vmid)));
            };
            let Some(snap) = vm.snapshots.get(&name).cloned() else {
                return fail(Vec::new(), no_such(&name));
            };
            if vm.get("lock") != Some("rollback") {
                return fail(Vec::new(), "got wrong lock".into());
            }
            vm.config.remove("lock");
            vm.config = rolled_back(&vm.config, &snap, &name);
            vm.pending.clear();
            vm.pending_delete.clear();
            // with RAM the guest resumes from it; otherwise `start=1` boots it
            let boot = if let Some(state) = snap.get("vmstate") {
                Some(freed_error(st, state))
            } else if start {
                Some(st.vms.get(&vmid).and_then(|v| missing_disk_error(st, v)))
            } else {
                None
            };
            match boot {
                Some(Some(e)) => fail(done_log, e),
                Some(None) => {
                    super::power::power_on(st, vmid);
                    Outcome::Ok {
                        log: done_log,
                        warnings: 0,
                    }
                }
                None => Outcome::Ok {
                    log: done_log,
                    warnings: 0,
                },
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `DELETE .../snapshot/{s}`: task `qmdelsnapshot`.
fn delete(c: &mut WCtx) -> ApiResult {
    c.ro().require(&vm_path(&c.ro()), &["VM.Snapshot"], false)?;
    c.ro().validate()?;
    let (vmid, node, name) = (c.vmid(), c.args.node.clone(), snapname(&c.ro()));
    if let Some(e) = queued_failure(c.st, &node, "qmdelsnapshot") {
        return failed_worker(c, "qmdelsnapshot", e);
    }
    // `snapshot_delete` up to its prepare step: the lock, then `snapstate: delete`
    let first = (|| -> Result<(), String> {
        c.st.faults.check_flock(vmid).map_err(worker_error)?;
        let vm =
            c.st.vms
                .get_mut(&vmid)
                .filter(|v| v.node == node)
                .ok_or_else(|| worker_error(missing(&node, vmid)))?;
        if !vm.snapshots.contains_key(&name) {
            return Err(no_such(&name));
        }
        check_lock(vm, false).map_err(worker_error)?;
        vm.config.insert("lock".into(), "snapshot-delete".into());
        // checked after the lock is set, which then stays (as on PVE)
        if vm.is_template() {
            return Err("you can't delete a snapshot if vm is a template".into());
        }
        if let Some(s) = vm.snapshots.get_mut(&name) {
            s.insert("snapstate".into(), "delete".into());
        }
        Ok(())
    })();
    if let Err(e) = first {
        return failed_worker(c, "qmdelsnapshot", e);
    }
    let Some(snap) = c.st.vms.get(&vmid).and_then(|v| v.snapshots.get(&name)) else {
        return failed_worker(c, "qmdelsnapshot", no_such(&name));
    };
    let disks: Vec<(String, String)> = drive_volids(snap);
    let vmstate = snap.get("vmstate").cloned();
    let mut secs = BASE_SECS + PER_DISK_SECS * disks.len() as f64;
    if vmstate.is_some() {
        secs += 0.5;
    }
    let mut done_log = Vec::new();
    for (_, volid) in &disks {
        let (sid, volname) = volid.split_once(':').unwrap_or(("", ""));
        if c.st.storage(sid).is_some_and(|s| s.stype == "lvmthin") {
            let lv = volname.rsplit('/').next().unwrap_or(volname);
            done_log.push(format!(
                "  Logical volume \"snap_{lv}_{name}\" successfully removed."
            ));
        }
    }
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let node2 = node.clone();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmdelsnapshot",
            id: &id,
            user: &user,
            duration_secs: secs,
            log: Vec::new(),
        },
        move |st, injected| {
            let fail = |error: String| Outcome::Err {
                log: Vec::new(),
                error,
            };
            if let Some(e) = injected {
                return fail(e);
            }
            if let Some(v) = &vmstate {
                st.freed_volumes.remove(v);
            }
            let Some(vm) = st.vms.get_mut(&vmid).filter(|v| v.node == node2) else {
                return fail(worker_error(missing(&node2, vmid)));
            };
            if vm.get("lock") != Some("snapshot-delete") {
                return fail("encountered invalid lock, expected 'snapshot-delete'".into());
            }
            let Some(snap) = vm.snapshots.remove(&name) else {
                return fail(no_such(&name));
            };
            // children and the current state take over the deleted one's parent
            let new_parent = snap.get("parent").cloned();
            let relink = |conf: &mut std::collections::BTreeMap<String, String>| {
                if conf.get("parent").is_some_and(|p| *p == name) {
                    match &new_parent {
                        Some(p) => {
                            conf.insert("parent".into(), p.clone());
                        }
                        None => {
                            conf.remove("parent");
                        }
                    }
                }
            };
            relink(&mut vm.config);
            for s in vm.snapshots.values_mut() {
                relink(s);
            }
            vm.config.remove("lock");
            for (_, volid) in drive_volids(&snap) {
                add_unused(&mut vm.config, &volid);
            }
            drop_reattached_unused(&mut vm.config);
            Outcome::Ok {
                log: done_log,
                warnings: 0,
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}
