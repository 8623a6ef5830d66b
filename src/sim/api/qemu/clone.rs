//! `POST .../clone` (semantics items 20, 22, 24) and `POST .../template` (item 26).
//!
//! Clone checks everything PVE checks before forking, then creates the new guest at once,
//! under the state lock, with `lock: clone` and freshly named volumes — so the newid check and
//! the creation are atomic and a second clone to the same newid fails early. The `qmclone`
//! task (id = source vmid, on the source node) clears the lock and, with `target`, moves the
//! guest; when it fails, the half-created guest is removed as PVE does.

use serde_json::json;

use crate::sim::api::WCtx;
use crate::sim::guest::{DriveValue, check_lock, drive_order, missing, vm_mut};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{GIB, Vm, is_drive_key};
use crate::sim::tasks::{NewTask, Outcome, spawn_locked};
use crate::sim::volumes::{
    is_file_storage, linked_clone_supported, linked_name, new_disk_name, new_mac, new_uuid,
};

/// One drive copy the clone performs.
struct DriveCopy {
    key: String,
    from: String,
    to: String,
    size: u64,
}

pub fn clone(c: &mut WCtx) -> ApiResult {
    let vmid = c.vmid();
    let ro = c.ro();
    ro.require(&format!("/vms/{}", c.args.vmid), &["VM.Clone"], false)?;
    let newid_path = format!("/vms/{}", c.param("newid").unwrap_or(""));
    match c.param("pool") {
        Some(pool) if !ro.can(&newid_path, &["VM.Allocate"]) => {
            ro.require(&format!("/pool/{pool}"), &["VM.Allocate"], false)?
        }
        _ => ro.require(&newid_path, &["VM.Allocate"], false)?,
    }
    ro.validate()?;
    let node = c.args.node.clone();
    let newid: u32 = c.param("newid").and_then(|n| n.parse().ok()).unwrap_or(0);
    let target = c
        .param("target")
        .filter(|t| *t != node.as_str())
        .map(str::to_string);
    if let Some(t) = &target {
        match c.st.node(t) {
            None => {
                return Err(ApiError::param(
                    "target",
                    format!("no such cluster node '{t}'"),
                ));
            }
            Some(n) if !n.online => {
                return Err(ApiError::Server(format!(
                    "can't clone VM to node '{t}' (node is not online)"
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(pool) = c.param("pool") {
        return Err(ApiError::Server(format!("pool '{pool}' does not exist")));
    }
    let storage = c.param("storage").map(str::to_string);
    if let Some(s) = &storage {
        let Some(st) = c.st.storage(s) else {
            return Err(ApiError::Server(format!("storage '{s}' does not exist")));
        };
        if !st.content.iter().any(|x| x == "images") {
            return Err(ApiError::Server(format!(
                "storage '{s}' does not support vm images"
            )));
        }
        ro.require(
            &format!("/storage/{s}"),
            &["Datastore.AllocateSpace"],
            false,
        )?;
    }
    let src =
        c.st.vms
            .get(&vmid)
            .filter(|v| v.node == node)
            .ok_or_else(|| missing(&node, vmid))?;
    check_lock(src, false)?;
    // the source's NICs (`check_bridge_access($oldconf)` in `$load_and_check`)
    super::sdn::check_bridge_access(
        &ro,
        src.config.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    let snapname = c.param("snapname").filter(|s| !s.is_empty());
    // `$oldconf`: the snapshot's config when cloning from one
    let source = match snapname {
        Some(s) => src
            .snapshots
            .get(s)
            .ok_or_else(|| ApiError::Server(format!("snapshot '{s}' does not exist")))?,
        None => &src.config,
    };
    let of_snapshot = if snapname.is_some() {
        " a snapshot of"
    } else {
        ""
    };
    let full = match c.param("full") {
        Some(_) => c.flag("full"),
        None => !src.is_template(),
    };
    if !full && storage.is_some() {
        return Err(ApiError::Server(
            "parameter 'storage' not allowed for linked clones".into(),
        ));
    }
    if !full && c.param("format").is_some() {
        return Err(ApiError::Server(
            "parameter 'format' not allowed for linked clones".into(),
        ));
    }
    if let Some(t) = &target {
        let local = src
            .disks()
            .iter()
            .any(|d| c.st.storage(&d.storage).is_none_or(|s| !s.shared));
        if local {
            return Err(ApiError::Server(format!(
                "can't clone VM to node '{t}' (VM uses local storage)"
            )));
        }
        let unshared = storage
            .as_deref()
            .filter(|s| c.st.storage(s).is_some_and(|x| !x.shared));
        if let Some(s) = unshared {
            return Err(ApiError::Server(format!(
                "can't clone to non-shared storage '{s}'"
            )));
        }
    }
    // the newid check and the creation below happen under one lock: atomic
    if let Some(other) = c.st.vms.get(&newid) {
        let dest = target.as_deref().unwrap_or(&node);
        return Err(ApiError::Server(if other.node == dest && !other.is_ct() {
            format!("unable to create VM {newid}: config file already exists")
        } else {
            let kind = if other.is_ct() { "CT" } else { "VM" };
            format!("{kind} {newid} already exists on node '{}'", other.node)
        }));
    }
    // the worker takes the source's flock, then the newid's (`lock_config_full(.., 1, ..)`,
    // `Qemu.pm` `clone_vm`): a timeout there fails the task, and nothing was created yet
    let flock =
        c.st.faults
            .check_flock(vmid)
            .and(c.st.faults.check_flock(newid));
    if let Err(e) = flock {
        return super::failed_worker(c, "qmclone", super::worker_error(e));
    }
    if !full {
        let mut drives: Vec<(&String, &String)> =
            source.iter().filter(|(k, _)| is_drive_key(k)).collect();
        drives.sort_by_key(|(k, _)| drive_order(k));
        for (k, v) in drives {
            let d = DriveValue::parse(v);
            if d.is_cdrom() || d.is_cloudinit() {
                continue;
            }
            if let Some((sid, volname)) = d.vol.split_once(':') {
                let stype = c.st.storage(sid).map(|s| s.stype.as_str()).unwrap_or("");
                if !linked_clone_supported(stype, volname) {
                    return Err(ApiError::Server(format!(
                        "Linked clone feature is not supported for{of_snapshot} '{}' ({k})",
                        d.vol
                    )));
                }
            }
        }
    }
    let src_name = src.name();
    let mut copies = Vec::new();
    let mut reserved = Vec::new();
    let mut config = std::collections::BTreeMap::new();
    for (k, v) in source {
        // no snapshot bookkeeping, no unused disks (`clone_vm`)
        let skip = matches!(
            k.as_str(),
            "template"
                | "lock"
                | "parent"
                | "snaptime"
                | "vmstate"
                | "snapstate"
                | "runningcpu"
                | "runningmachine"
                | "running-nets-host-mtu"
        ) || k.starts_with("unused");
        if skip {
            continue;
        }
        let mut value = v.clone();
        if is_drive_key(k) {
            let mut d = DriveValue::parse(v);
            if d.is_cloudinit() {
                let sid = d.vol.split(':').next().unwrap_or("").to_string();
                let stype =
                    c.st.storage(&sid)
                        .map(|s| s.stype.clone())
                        .unwrap_or_default();
                d.vol = if is_file_storage(&stype) {
                    format!("{sid}:{newid}/vm-{newid}-cloudinit.qcow2")
                } else {
                    format!("{sid}:vm-{newid}-cloudinit")
                };
                value = d.render();
            } else if !d.is_cdrom()
                && let Some((sid, volname)) = d.vol.split_once(':')
            {
                let size = d
                    .opt("size")
                    .and_then(crate::sim::state::parse_size)
                    .unwrap_or(0);
                let to = if full {
                    let dest = storage.clone().unwrap_or_else(|| sid.to_string());
                    let mut name = new_disk_name(c.st, &dest, newid, &mut reserved);
                    let dtype =
                        c.st.storage(&dest)
                            .map(|s| s.stype.clone())
                            .unwrap_or_default();
                    if let (true, Some(f)) = (is_file_storage(&dtype), c.param("format")) {
                        name = name.replace(".qcow2", &format!(".{f}"));
                    }
                    format!("{dest}:{name}")
                } else {
                    let child = new_disk_name(c.st, sid, newid, &mut reserved);
                    format!("{sid}:{}", linked_name(volname, &child))
                };
                copies.push(DriveCopy {
                    key: k.clone(),
                    from: d.vol.clone(),
                    to: to.clone(),
                    size,
                });
                d.vol = to;
                value = d.render();
            }
        } else if k.starts_with("net") {
            value = v
                .split(',')
                .map(|p| match p.split_once('=') {
                    Some((model, mac)) if mac.len() == 17 && mac.matches(':').count() == 5 => {
                        format!("{model}={}", new_mac(&format!("{newid}-{k}")))
                    }
                    _ => p.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
        } else if k == "smbios1" {
            value = v
                .split(',')
                .map(|p| match p.strip_prefix("uuid=") {
                    Some(_) => format!("uuid={}", new_uuid(&format!("{newid}-smbios"))),
                    None => p.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
        } else if k == "vmgenid" {
            value = new_uuid(&format!("{newid}-vmgenid"));
        } else if k == "meta" {
            // the new config records its own creation
            value = format!("creation-qemu=9.2.0,ctime={}", crate::sim::state::now());
        }
        config.insert(k.clone(), value);
    }
    let name = c
        .param("name")
        .map(str::to_string)
        .unwrap_or_else(|| format!("Copy-of-VM-{src_name}"));
    config.insert("name".into(), name);
    if let Some(d) = c.param("description") {
        config.insert("description".into(), d.to_string());
    }
    config.insert("lock".into(), "clone".into());
    for cp in &copies {
        let sid = cp.to.split(':').next().unwrap_or("");
        ro_require_space(c, sid)?;
    }
    let (cpu_usage, mem_usage) = (src.cpu_usage.max(0.05), src.mem_usage.max(0.3));
    let pid = 3000 + newid % 60_000;
    c.st.vms.insert(
        newid,
        Vm {
            vmid: newid,
            kind: Default::default(),
            node: node.clone(),
            running: false,
            started_at: 0,
            pid,
            cpu_usage,
            mem_usage,
            config,
            pending: Default::default(),
            pending_delete: Default::default(),
            snapshots: Default::default(),
            paused: false,
            started_instant: None,
        },
    );
    let kind = if full { "full" } else { "linked" };
    let log: Vec<String> = copies
        .iter()
        .map(|d| format!("create {kind} clone of drive {} ({})", d.key, d.from))
        .collect();
    let gib: f64 = copies.iter().map(|d| d.size as f64 / GIB as f64).sum();
    let duration = if full { gib.max(2.0) } else { 2.0 };
    let done_log: Vec<String> = if full {
        copies
            .iter()
            .map(|d| {
                format!(
                    "transferred {0} of {0} (100.00%)",
                    crate::sim::volumes::format_size(d.size)
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmclone",
            id: &id,
            user: &user,
            duration_secs: duration,
            log,
        },
        move |st, injected| {
            if let Some(error) = injected {
                st.vms.remove(&newid);
                return Outcome::Err {
                    log: Vec::new(),
                    error,
                };
            }
            if let Some(vm) = st.vms.get_mut(&newid) {
                vm.config.remove("lock");
                if let Some(t) = target {
                    vm.node = t;
                }
            }
            Outcome::Ok {
                log: done_log,
                warnings: 0,
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}

fn ro_require_space(c: &WCtx, sid: &str) -> Result<(), ApiError> {
    c.ro().require(
        &format!("/storage/{sid}"),
        &["Datastore.AllocateSpace"],
        false,
    )
}

pub fn template(c: &mut WCtx) -> ApiResult {
    let vmid = c.vmid();
    c.ro()
        .require(&format!("/vms/{}", c.args.vmid), &["VM.Allocate"], false)?;
    c.ro().validate()?;
    let node = c.args.node.clone();
    let disk = c.param("disk").map(str::to_string);
    let vm = vm_mut(c.st, &node, vmid)?;
    check_lock(vm, false)?;
    if !vm.snapshots.is_empty() {
        return Err(ApiError::Server(
            "unable to create template, because VM contains snapshots".into(),
        ));
    }
    if vm.is_template() {
        return Err(ApiError::Server(
            "you can't convert a template to a template".into(),
        ));
    }
    if vm.running {
        return Err(ApiError::Server(
            "you can't convert a VM to template if VM is running".into(),
        ));
    }
    if let Some(d) = &disk
        && vm.get(d).is_none()
    {
        return Err(ApiError::Server(format!("no such disk '{d}'")));
    }
    // the worker re-runs these checks under `lock_config`, whose flock can time out
    if let Err(e) = c.st.faults.check_flock(vmid) {
        return super::failed_worker(c, "qmtemplate", super::worker_error(e));
    }
    let vm = vm_mut(c.st, &node, vmid)?;
    // PVE writes `template: 1` before forking; the worker converts the disks
    vm.config.insert("template".into(), "1".into());
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmtemplate",
            id: &id,
            user: &user,
            duration_secs: 1.5,
            log: Vec::new(),
        },
        move |st, injected| {
            if let Some(error) = injected {
                return Outcome::Err {
                    log: Vec::new(),
                    error,
                };
            }
            let Some(vm) = st.vms.get_mut(&vmid) else {
                return Outcome::Err {
                    log: Vec::new(),
                    error: format!("VM {vmid} does not exist"),
                };
            };
            let from = format!("vm-{vmid}-disk-");
            let to = format!("base-{vmid}-disk-");
            let keys: Vec<String> = vm.disks().into_iter().map(|d| d.key).collect();
            for k in keys {
                if disk.as_ref().is_some_and(|d| *d != k) {
                    continue;
                }
                if let Some(v) = vm.config.get_mut(&k) {
                    // only the guest's own volume (the last path component) is renamed
                    let (head, tail) = match v.rfind('/') {
                        Some(i) => v.split_at(i),
                        None => v.split_at(v.find(':').unwrap_or(0)),
                    };
                    *v = format!("{head}{}", tail.replacen(&from, &to, 1));
                }
            }
            Outcome::Ok {
                log: Vec::new(),
                warnings: 0,
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}
