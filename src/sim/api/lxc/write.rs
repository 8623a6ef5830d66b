//! Container config writes (`PUT config`, synchronous as pct's `update_vm`), `resize`,
//! `template`, destroy and snapshots.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{check_lock, check_protection, ct, ct_mut, fail, ok, perm_exc, task};
use crate::sim::api::{Ctx, WCtx};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::lxc::{
    MountPoint, MpType, is_mp_key, is_volume_key, new_volname, parse_net, render_net,
};
use crate::sim::snapshot::{copy_config, snapshot_supported};
use crate::sim::state::{GIB, State, Vm, now, parse_size};
use crate::sim::volumes::{format_size, parse_resize};

/// Keys a running container takes at once (`LXC_FASTPLUG_OPTIONS` plus what
/// `vmconfig_hotplug_pending` applies); the rest wait in `[pending]` for the next start.
fn hotpluggable(k: &str) -> bool {
    matches!(
        k,
        "description"
            | "onboot"
            | "startup"
            | "protection"
            | "hostname"
            | "hookscript"
            | "cores"
            | "tags"
            | "lock"
            | "cpulimit"
            | "cpuunits"
            | "memory"
            | "swap"
    ) || crate::sim::api::qemu::sdn::is_net_key(k)
}

fn vm_path(c: &WCtx) -> String {
    format!("/vms/{}", c.args.vmid)
}

/// `check_ct_modify_config_perm` for one key (`delete`: the key is being removed).
pub(super) fn check_key_perm(
    c: &Ctx,
    vm: Option<&Vm>,
    key: &str,
    value: Option<&str>,
    unprivileged: bool,
) -> Result<(), ApiError> {
    if c.authid() == "root@pam" {
        return Ok(());
    }
    let path = format!("/vms/{}", c.args.vmid);
    let need = |p: &str| c.require(&path, &[p], false);
    match key {
        "cores" | "cpuunits" | "cpulimit" => need("VM.Config.CPU"),
        k if is_volume_key(k) => {
            need("VM.Config.Disk")?;
            let Some(v) = value else { return Ok(()) };
            let Ok(mp) = MountPoint::parse(v) else {
                return Ok(());
            };
            match mp.kind() {
                MpType::Bind => Err(perm_exc(
                    "mount point type bind is only allowed for root@pam",
                )),
                MpType::Device => Err(perm_exc(
                    "mount point type device is only allowed for root@pam",
                )),
                MpType::Volume => {
                    let sid = mp.volume.split(':').next().unwrap_or("");
                    c.require(
                        &format!("/storage/{sid}"),
                        &["Datastore.AllocateSpace"],
                        false,
                    )
                }
            }
        }
        "memory" | "swap" => need("VM.Config.Memory"),
        k if crate::sim::api::qemu::sdn::is_net_key(k) => {
            need("VM.Config.Network")?;
            let old = vm.and_then(|v| v.get(k));
            crate::sim::api::qemu::sdn::check_bridge_access(
                c,
                old.map(|o| (k, o)).into_iter().chain(value.map(|n| (k, n))),
            )
        }
        k if k.starts_with("dev") => Err(perm_exc(
            "configuring device passthrough is only allowed for root@pam",
        )),
        "nameserver" | "searchdomain" | "hostname" => need("VM.Config.Network"),
        "features" => {
            if !unprivileged {
                return Err(perm_exc(
                    "changing feature flags for privileged container is only allowed for root@pam",
                ));
            }
            let parse = |s: Option<&str>| -> BTreeMap<String, String> {
                s.unwrap_or("")
                    .split(',')
                    .filter_map(|p| p.split_once('='))
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            };
            let old = parse(vm.and_then(|v| v.get("features")));
            let new = parse(value);
            let changed: Vec<&String> = old
                .keys()
                .chain(new.keys())
                .filter(|k| old.get(*k) != new.get(*k))
                .collect();
            if changed.iter().any(|k| *k != "nesting") {
                return Err(perm_exc(
                    "changing feature flags (except nesting) is only allowed for root@pam",
                ));
            }
            if !changed.is_empty() {
                need("VM.Allocate")?;
            }
            Ok(())
        }
        "hookscript" => Err(perm_exc(
            "changing the hookscript is only allowed for root@pam",
        )),
        "tags" => need("VM.Config.Options"),
        _ => need("VM.Config.Options"),
    }
}

/// The format checks the schema makes on `netN`, `rootfs` and `mpN` (400).
pub fn check_formats(params: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let mut errors = BTreeMap::new();
    for (k, v) in params {
        if crate::sim::api::qemu::sdn::is_net_key(k) {
            if let Err(e) = parse_net(v) {
                errors.insert(k.clone(), e);
            }
        } else if is_volume_key(k) {
            match MountPoint::parse(v) {
                Err(e) => {
                    errors.insert(k.clone(), e);
                }
                Ok(mp) if is_mp_key(k) && mp.opt("mp").is_none() => {
                    errors.insert(
                        k.clone(),
                        "invalid format - format error\nmp: property is missing and it is not optional\n"
                            .into(),
                    );
                }
                Ok(_) => {}
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Param(errors))
    }
}

/// Allocates `storage:size` mount points (create, config writes of a stopped container);
/// returns the value with the new volume (`create_disks`).
pub fn allocate(
    st: &State,
    vmid: u32,
    key: &str,
    value: &str,
    reserved: &mut Vec<u32>,
) -> Result<String, String> {
    let Ok(mut mp) = MountPoint::parse(value) else {
        return Ok(value.to_string());
    };
    let Some((sid, gib)) = mp.alloc_request() else {
        return Ok(value.to_string());
    };
    let sid = sid.to_string();
    let Some(s) = st.storage(&sid) else {
        return Err(format!("storage '{sid}' does not exist"));
    };
    if !s.content.iter().any(|c| c == "rootdir") {
        return Err(format!(
            "storage '{sid}' does not allow content type 'rootdir' (Container)"
        ));
    }
    let name = new_volname(st, &sid, vmid, reserved);
    mp.volume = format!("{sid}:{name}");
    let bytes = (gib * GIB as f64) as u64;
    mp.opts.retain(|(k, _)| k != "size");
    mp.set("size", &format_size(bytes));
    let _ = key;
    Ok(mp.render())
}

/// Applies pending changes (stopped container, or its next start/stop).
pub fn apply_pending(vm: &mut Vm) {
    for k in std::mem::take(&mut vm.pending_delete) {
        if let Some(old) = vm.config.remove(&k)
            && is_mp_key(&k)
            && let Ok(mp) = MountPoint::parse(&old)
            && mp.kind() == MpType::Volume
        {
            crate::sim::snapshot::add_unused(&mut vm.config, &mp.volume);
        }
    }
    for (k, v) in std::mem::take(&mut vm.pending) {
        vm.config.insert(k, v);
    }
}

pub fn config_put(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(
        &path,
        &[
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.Options",
        ],
        true,
    )?;
    c.ro().validate()?;
    check_formats(&c.req.params)?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let mut params: BTreeMap<String, String> = c.req.params.clone();
    params.remove("node");
    params.remove("vmid");
    let digest = params.remove("digest");
    if params.is_empty() {
        return Err(ApiError::Server("no options specified".into()));
    }
    let split = |s: Option<String>| -> Vec<String> {
        s.unwrap_or_default()
            .split([',', ';', ' ', '\0'])
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let delete = split(params.remove("delete"));
    let revert = split(params.remove("revert"));
    let vm = ct(c.st, &node, &c.args.vmid)?;
    check_lock(vm)?;
    crate::sim::guest::check_digest(vm, digest.as_deref())?;
    let unprivileged = vm.get("unprivileged") == Some("1");
    let ro = c.ro();
    for k in delete.iter().chain(&revert) {
        check_key_perm(&ro, Some(vm), k, None, unprivileged)?;
    }
    let known = |k: &str| {
        ro.spec_has(k)
            || is_volume_key(k)
            || crate::sim::api::qemu::sdn::is_net_key(k)
            || crate::sim::snapshot::is_unused(k)
            || k.strip_prefix("dev")
                .is_some_and(|n| n.parse::<u32>().is_ok())
    };
    for k in &revert {
        if !known(k) || matches!(k.as_str(), "delete" | "revert" | "digest") {
            return Err(ApiError::param("revert", format!("unknown option '{k}'")));
        }
        if params.contains_key(k) {
            return Err(ApiError::param(
                "revert",
                format!("you can't use '-{k}' and '-revert {k}' at the same time"),
            ));
        }
    }
    for k in &delete {
        if !known(k) || matches!(k.as_str(), "delete" | "revert" | "digest") {
            return Err(ApiError::param("delete", format!("unknown option '{k}'")));
        }
        if params.contains_key(k) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{k}' and -delete {k}' at the same time"),
            ));
        }
        if revert.contains(k) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-delete {k}' and '-revert {k}' at the same time"),
            ));
        }
    }
    for (k, v) in &params {
        check_key_perm(&ro, Some(vm), k, Some(v), unprivileged)?;
    }
    // update_pct_config
    for k in &delete {
        if vm.get(k).is_none() && !vm.pending.contains_key(k) {
            continue;
        }
        match k.as_str() {
            "memory" | "rootfs" | "ostype" => {
                return Err(ApiError::Server(format!(
                    "unable to delete required option '{k}'"
                )));
            }
            "unprivileged" => {
                return Err(ApiError::Server(format!(
                    "unable to delete read-only option: '{k}'"
                )));
            }
            k if is_mp_key(k) || crate::sim::snapshot::is_unused(k) => {
                check_protection(vm, &format!("can't remove CT {vmid} drive '{k}'"))?;
            }
            _ => {}
        }
    }
    for (k, v) in &params {
        if is_volume_key(k) {
            check_protection(vm, &format!("can't update CT {vmid} drive '{k}'"))?;
            if let Ok(mp) = MountPoint::parse(v)
                && mp.kind() == MpType::Volume
            {
                let sid = mp.volume.split(':').next().unwrap_or("");
                let rootdir =
                    c.st.storage(sid)
                        .is_some_and(|s| s.content.iter().any(|x| x == "rootdir"));
                if !rootdir {
                    return Err(ApiError::Server(format!(
                        "storage '{sid}' does not allow content type 'rootdir' (Container)"
                    )));
                }
            }
        } else if k == "unprivileged" {
            return Err(ApiError::Server(format!(
                "unable to modify read-only option: '{k}'"
            )));
        }
    }
    let running = vm.running;
    // new volumes are allocated when the change is applied
    let mut reserved = Vec::new();
    let mut values = BTreeMap::new();
    for (k, v) in &params {
        let v = if crate::sim::api::qemu::sdn::is_net_key(k) {
            let mut opts = parse_net(v).unwrap_or_default();
            if !opts.iter().any(|(a, _)| a == "hwaddr") {
                opts.push((
                    "hwaddr".into(),
                    crate::sim::volumes::new_mac(&format!("ct-{vmid}-{k}")),
                ));
            }
            if !opts.iter().any(|(a, _)| a == "type") {
                opts.push(("type".into(), "veth".into()));
            }
            render_net(&opts)
        } else if is_volume_key(k) && (!running || (is_mp_key(k) && vm.get(k).is_none())) {
            allocate(c.st, vmid, k, v, &mut reserved).map_err(ApiError::Server)?
        } else {
            v.clone()
        };
        values.insert(k.clone(), v);
    }
    let vm = ct_mut(c.st, &node, vmid)?;
    for k in &revert {
        vm.pending.remove(k);
        vm.pending_delete.remove(k);
    }
    for k in &delete {
        if vm.get(k).is_none() && !vm.pending.contains_key(k) {
            continue;
        }
        vm.pending.remove(k);
        vm.pending_delete.insert(k.clone());
    }
    for (k, v) in values {
        vm.pending_delete.remove(&k);
        vm.pending.insert(k, v);
    }
    // drop pending values equal to the current ones (`cleanup_pending`)
    let same: Vec<String> = vm
        .pending
        .iter()
        .filter(|(k, v)| vm.config.get(*k) == Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    for k in same {
        vm.pending.remove(&k);
    }
    if running {
        let hot: Vec<String> = vm
            .pending
            .keys()
            .filter(|k| hotpluggable(k) || (is_mp_key(k) && !vm.config.contains_key(*k)))
            .cloned()
            .collect();
        for k in hot {
            if let Some(v) = vm.pending.remove(&k) {
                vm.config.insert(k, v);
            }
        }
        let gone: Vec<String> = vm
            .pending_delete
            .iter()
            .filter(|k| {
                matches!(
                    k.as_str(),
                    "description"
                        | "onboot"
                        | "startup"
                        | "protection"
                        | "hostname"
                        | "cores"
                        | "tags"
                        | "cpulimit"
                        | "cpuunits"
                        | "swap"
                ) || crate::sim::api::qemu::sdn::is_net_key(k)
            })
            .cloned()
            .collect();
        for k in gone {
            vm.pending_delete.remove(&k);
            vm.config.remove(&k);
        }
    } else {
        apply_pending(vm);
    }
    Ok(Reply::data(Value::Null))
}

pub fn resize(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.Config.Disk"], true)?;
    c.ro().validate()?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let disk = c.param("disk").unwrap_or("").to_string();
    let sizestr = c.param("size").unwrap_or("").to_string();
    let Some((ext, request)) = parse_resize(&sizestr) else {
        return Err(ApiError::Server("invalid size string".into()));
    };
    let vm = ct(c.st, &node, &c.args.vmid)?;
    check_lock(vm)?;
    let ro = c.ro();
    let unprivileged = vm.get("unprivileged") == Some("1");
    for k in ["disk", "size"] {
        check_key_perm(&ro, Some(vm), k, None, unprivileged)?;
    }
    crate::sim::guest::check_digest(vm, c.param("digest"))?;
    let value = vm.get(&disk).unwrap_or("").to_string();
    let mp = MountPoint::parse(&value)
        .ok()
        .filter(|m| m.kind() == MpType::Volume);
    let Some(mut mp) = mp else {
        let vol = value.split(',').next().unwrap_or("");
        return Err(ApiError::Server(format!(
            "unable to parse volume ID '{vol}'"
        )));
    };
    let sid = mp.volume.split(':').next().unwrap_or("").to_string();
    ro.require(
        &format!("/storage/{sid}"),
        &["Datastore.AllocateSpace"],
        false,
    )?;
    let size = mp.opt("size").and_then(parse_size).unwrap_or(0);
    let newsize = if ext { size + request } else { request };
    if newsize < size {
        return Err(ApiError::Server("unable to shrink disk size".into()));
    }
    if newsize == size {
        return Err(ApiError::Server("disk is already at specified size".into()));
    }
    let volid = mp.volume.clone();
    let lv = volid.split(':').nth(1).unwrap_or("").to_string();
    let vg =
        c.st.storage(&sid)
            .and_then(|s| s.props.get("vgname").cloned())
            .unwrap_or_else(|| "pve".into());
    let lvm =
        c.st.storage(&sid)
            .is_some_and(|s| s.stype.starts_with("lvm"));
    mp.set("size", &format_size(newsize));
    let new_value = mp.render();
    let gib = |b: u64| b as f64 / GIB as f64;
    let mut log = Vec::new();
    if lvm {
        log.push(format!(
            "  Size of logical volume {vg}/{lv} changed from {:.2} GiB ({} extents) to {:.2} GiB ({} extents).",
            gib(size),
            size / (4 * 1024 * 1024),
            gib(newsize),
            newsize / (4 * 1024 * 1024)
        ));
        log.push(format!("  Logical volume {vg}/{lv} successfully resized."));
    }
    log.push("resize2fs 1.47.2 (1-Jan-2025)".into());
    log.push(format!(
        "The filesystem on /dev/{vg}/{lv} is now {} (4k) blocks long.",
        newsize / 4096
    ));
    let id = vmid.to_string();
    task(c, "resize", &id, 2.0, move |st| {
        match st.vms.get_mut(&vmid).filter(|v| v.node == node) {
            Some(vm) => {
                vm.config.insert(disk, new_value);
                ok(log)
            }
            None => fail(
                Vec::new(),
                crate::sim::api::qemu::worker_error(crate::sim::lxc::missing(&node, vmid)),
            ),
        }
    })
}

pub fn template(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.Allocate"], false)?;
    c.ro().validate()?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let vm = ct(c.st, &node, &c.args.vmid)?;
    check_lock(vm)?;
    if !vm.snapshots.is_empty() {
        return Err(ApiError::Server(
            "unable to create template, because CT contains snapshots".into(),
        ));
    }
    if vm.is_template() {
        return Err(ApiError::Server(
            "you can't convert a template to a template".into(),
        ));
    }
    if vm.running {
        return Err(ApiError::Server(
            "you can't convert a CT to template if the CT is running".into(),
        ));
    }
    let id = vmid.to_string();
    task(c, "vztemplate", &id, 2.0, move |st| {
        let Some(vm) = st.vms.get_mut(&vmid) else {
            return fail(Vec::new(), "container vanished");
        };
        let mut log = Vec::new();
        let keys: Vec<String> = vm
            .config
            .keys()
            .filter(|k| is_volume_key(k))
            .cloned()
            .collect();
        for k in keys {
            let Some(v) = vm.config.get(&k) else { continue };
            let Ok(mut mp) = MountPoint::parse(v) else {
                continue;
            };
            if mp.kind() != MpType::Volume {
                continue;
            }
            let old = mp.volume.clone();
            let (sid, name) = old.split_once(':').unwrap_or(("", ""));
            let base = name.replacen("vm-", "base-", 1);
            if base != name {
                log.push(format!(
                    "  Renamed \"{name}\" to \"{base}\" in volume group \"pve\""
                ));
            }
            mp.volume = format!("{sid}:{base}");
            vm.config.insert(k, mp.render());
        }
        vm.config.insert("template".into(), "1".into());
        ok(log)
    })?;
    Ok(Reply::data(Value::Null))
}

pub fn destroy(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.Allocate"], false)?;
    c.ro().validate()?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let purge = c.flag("purge");
    let force = c.flag("force");
    let unreferenced = c.flag("destroy-unreferenced-disks");
    let vm = ct(c.st, &node, &c.args.vmid)?;
    check_protection(vm, &format!("can't remove CT {vmid}"))?;
    check_lock(vm)?;
    let ha = c.st.ha.is_managed(vmid);
    if ha && !purge {
        return Err(ApiError::Server(format!(
            "unable to remove CT {vmid} - used in HA resources and purge parameter not set."
        )));
    }
    if vm.running && !force {
        return Err(ApiError::Server(format!(
            "unable to destroy CT {vmid} - container is running"
        )));
    }
    let vols: Vec<String> = vm
        .disk_refs()
        .map(|d| {
            d.volname
                .rsplit('/')
                .next()
                .unwrap_or(d.volname)
                .to_string()
        })
        .collect();
    if let Some(vm) = c.st.vms.get_mut(&vmid) {
        vm.config.insert("lock".into(), "destroyed".into());
    }
    let id = vmid.to_string();
    task(c, "vzdestroy", &id, 2.0, move |st| {
        let mut log = Vec::new();
        if st.vms.get(&vmid).is_some_and(|v| v.running) {
            log.push(format!("forced to stop CT {vmid} before destroying!"));
        }
        for v in &vols {
            log.push(format!("  Logical volume \"{v}\" successfully removed."));
        }
        st.vms.remove(&vmid);
        if unreferenced {
            st.images.retain(|i| i.vmid != Some(vmid));
        }
        if purge {
            log.push(format!("purging CT {vmid} from related configurations.."));
        }
        ok(log)
    })
}

fn snap_task_error(st: &State, node: &str, vmid: u32) -> Result<(), String> {
    match st.vms.get(&vmid).filter(|v| v.node == node && v.is_ct()) {
        Some(_) => Ok(()),
        None => Err(crate::sim::api::qemu::worker_error(
            crate::sim::lxc::missing(node, vmid),
        )),
    }
}

pub fn snapshot(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.Snapshot"], false)?;
    c.ro().validate()?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let name = c.param("snapname").unwrap_or("").to_string();
    for reserved in ["current", "pending"] {
        if name.eq_ignore_ascii_case(reserved) {
            return Err(ApiError::Server(format!(
                "unable to use snapshot name '{reserved}' (reserved name)"
            )));
        }
    }
    let description = c.param("description").unwrap_or("").to_string();
    let vm = ct(c.st, &node, &c.args.vmid)?;
    // the worker's checks (`snapshot_prepare`), made now: a failing one ends the task at once
    let early = if vm.is_template() {
        Some("you can't take a snapshot if it's a template".to_string())
    } else if let Some(l) = vm.get("lock") {
        Some(format!("CT is locked ({l})"))
    } else if vm.snapshots.contains_key(&name) {
        Some(format!("snapshot name '{name}' already used"))
    } else if vm.disk_refs().any(|d| {
        let stype =
            c.st.storage(d.storage)
                .map(|s| s.stype.as_str())
                .unwrap_or("");
        !snapshot_supported(stype, d.volname)
    }) {
        Some("snapshot feature is not available".to_string())
    } else {
        None
    };
    let id = vmid.to_string();
    if let Some(e) = early {
        return task(c, "vzsnapshot", &id, 0.2, move |_| fail(Vec::new(), e));
    }
    let vm = ct_mut(c.st, &node, vmid)?;
    let mut snap = copy_config(&vm.config);
    snap.insert("snapstate".into(), "prepare".into());
    snap.insert("snaptime".into(), now().to_string());
    if !description.is_empty() {
        snap.insert("description".into(), description);
    }
    vm.snapshots.insert(name.clone(), snap);
    vm.config.insert("lock".into(), "snapshot".into());
    let vols: Vec<String> = vm
        .disk_refs()
        .map(|d| format!("{}:{}", d.storage, d.volname))
        .collect();
    task(c, "vzsnapshot", &id, 1.5, move |st| {
        if let Err(e) = snap_task_error(st, &node, vmid) {
            return fail(Vec::new(), e);
        }
        let Some(vm) = st.vms.get_mut(&vmid) else {
            return fail(Vec::new(), "container vanished");
        };
        if let Some(s) = vm.snapshots.get_mut(&name) {
            s.remove("snapstate");
        }
        vm.config.remove("lock");
        vm.config.insert("parent".into(), name.clone());
        let log = vols
            .iter()
            .map(|v| {
                let lv = v.split(':').nth(1).unwrap_or("");
                format!("  Logical volume \"snap_{lv}_{name}\" created.")
            })
            .collect();
        ok(log)
    })
}

pub fn rollback(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro()
        .require(&path, &["VM.Snapshot", "VM.Snapshot.Rollback"], true)?;
    c.ro().validate()?;
    let start = c.flag("start");
    if start {
        c.ro().require(&path, &["VM.PowerMgmt"], false)?;
    }
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let name = c.param("snapname").unwrap_or("").to_string();
    let id = vmid.to_string();
    let early = match ct(c.st, &node, &c.args.vmid) {
        Err(e) => Some(crate::sim::api::qemu::worker_error(e)),
        Ok(vm) if vm.is_template() => Some("you can't rollback if vm is a template".into()),
        Ok(vm) if !vm.snapshots.contains_key(&name) => {
            Some(format!("snapshot '{name}' does not exist"))
        }
        Ok(vm) => vm.get("lock").map(|l| format!("CT is locked ({l})")),
    };
    if let Some(e) = early {
        return task(c, "vzrollback", &id, 0.2, move |_| fail(Vec::new(), e));
    }
    let vm = ct_mut(c.st, &node, vmid)?;
    vm.config.insert("lock".into(), "rollback".into());
    let was_running = vm.running;
    task(c, "vzrollback", &id, 2.0, move |st| {
        let Some(vm) = st.vms.get_mut(&vmid) else {
            return fail(Vec::new(), "container vanished");
        };
        let mut log = Vec::new();
        if was_running && vm.running {
            vm.running = false;
            vm.started_instant = None;
        }
        let Some(snap) = vm.snapshots.get(&name).cloned() else {
            vm.config.remove("lock");
            return fail(log, format!("snapshot '{name}' does not exist"));
        };
        let unused: Vec<(String, String)> = vm
            .config
            .iter()
            .filter(|(k, _)| crate::sim::snapshot::is_unused(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let description = vm.config.get("description").cloned();
        let mut conf: BTreeMap<String, String> = snap
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "snaptime" | "snapstate" | "description"))
            .collect();
        conf.extend(unused);
        if let Some(d) = description {
            conf.insert("description".into(), d);
        }
        conf.insert("parent".into(), name.clone());
        vm.config = conf;
        vm.pending.clear();
        vm.pending_delete.clear();
        for d in vm.disk_refs() {
            log.push(format!(
                "  Logical volume \"{}\" successfully removed.",
                d.volname
            ));
        }
        if start {
            vm.running = true;
            vm.started_at = now();
            vm.started_instant = Some(std::time::Instant::now());
        }
        ok(log)
    })
}

pub fn delsnapshot(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.Snapshot"], false)?;
    c.ro().validate()?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let name = c.param("snapname").unwrap_or("").to_string();
    let force = c.flag("force");
    let id = vmid.to_string();
    let early = match ct(c.st, &node, &c.args.vmid) {
        Err(e) => Some(crate::sim::api::qemu::worker_error(e)),
        Ok(vm) if !vm.snapshots.contains_key(&name) => {
            Some(format!("snapshot '{name}' does not exist"))
        }
        Ok(vm) if !force => vm.get("lock").map(|l| format!("CT is locked ({l})")),
        Ok(_) => None,
    };
    if let Some(e) = early {
        return task(c, "vzdelsnapshot", &id, 0.2, move |_| fail(Vec::new(), e));
    }
    let vm = ct_mut(c.st, &node, vmid)?;
    vm.config.insert("lock".into(), "snapshot-delete".into());
    if let Some(s) = vm.snapshots.get_mut(&name) {
        s.insert("snapstate".into(), "delete".into());
    }
    task(c, "vzdelsnapshot", &id, 1.0, move |st| {
        let Some(vm) = st.vms.get_mut(&vmid) else {
            return fail(Vec::new(), "container vanished");
        };
        let parent = vm
            .snapshots
            .get(&name)
            .and_then(|s| s.get("parent").cloned());
        vm.snapshots.remove(&name);
        for s in vm.snapshots.values_mut() {
            if s.get("parent") == Some(&name) {
                match &parent {
                    Some(p) => s.insert("parent".into(), p.clone()),
                    None => s.remove("parent"),
                };
            }
        }
        if vm.get("parent") == Some(name.as_str()) {
            match &parent {
                Some(p) => vm.config.insert("parent".into(), p.clone()),
                None => vm.config.remove("parent"),
            };
        }
        vm.config.remove("lock");
        let log = vm
            .disk_refs()
            .map(|d| {
                format!(
                    "  Logical volume \"snap_{}_{name}\" successfully removed.",
                    d.volname
                )
            })
            .collect();
        ok(log)
    })
}

pub fn snapshot_config_put(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.Snapshot"], false)?;
    c.ro().validate()?;
    let Some(desc) = c.param("description").map(str::to_string) else {
        return Ok(Reply::data(Value::Null));
    };
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let name = c.param("snapname").unwrap_or("").to_string();
    let vm = ct_mut(c.st, &node, vmid)?;
    check_lock(vm)?;
    let snap = vm
        .snapshots
        .get_mut(&name)
        .ok_or_else(|| ApiError::Server(format!("snapshot '{name}' does not exist")))?;
    snap.insert("description".into(), desc);
    Ok(Reply::data(json!(null)))
}
