//! Config writes (`POST`/`PUT .../config`), `GET .../pending` and `PUT .../resize`.
//!
//! As in qemu-server's `update_vm_api`: permission, digest and lock checks happen before
//! anything is written; every change first lands in the pending section, then is applied —
//! at once for `PUT`, in a short `qmconfig` task for `POST`. On a stopped guest everything
//! applies; on a running one only fast-plug options (name, tags, description, ...), cloud-init
//! options and what the guest's `hotplug` setting allows; the rest stays pending until the
//! next start/stop (see [`apply_pending`]).

use serde_json::{Map, Value, json};

use crate::sim::api::qemu::read::lookup;
use crate::sim::api::{Ctx, WCtx};
use crate::sim::guest::{DriveValue, check_digest, check_lock, skiplock, vm_mut};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{State, Vm, is_drive_key, parse_size};
use crate::sim::tasks::{NewTask, Outcome, spawn_locked};
use crate::sim::volumes::{format_size, new_disk_name, new_mac, normalize_tags, parse_resize};

/// Options applied even while the guest runs (`is_fastplug_option` plus cloud-init ones).
const FASTPLUG: &[&str] = &[
    "name",
    "description",
    "tags",
    "onboot",
    "protection",
    "startup",
    "hookscript",
    "ciuser",
    "cipassword",
    "citype",
    "cicustom",
    "ciupgrade",
    "nameserver",
    "searchdomain",
    "sshkeys",
];

/// Privilege needed to change `key` (qemu-server `check_vm_modify_config_perm`).
pub(crate) fn priv_for(key: &str, value: Option<&str>) -> &'static str {
    let k = key.trim_end_matches(|c: char| c.is_ascii_digit());
    match k {
        "cores" | "sockets" | "cpu" | "numa" | "vcpus" | "cpulimit" | "cpuunits" | "affinity" => {
            "VM.Config.CPU"
        }
        "memory" | "balloon" | "shares" => "VM.Config.Memory",
        "net" => "VM.Config.Network",
        "ciuser" | "cipassword" | "citype" | "cicustom" | "ciupgrade" | "ipconfig"
        | "nameserver" | "searchdomain" | "sshkeys" => "VM.Config.Cloudinit",
        "bios" | "machine" | "scsihw" | "vga" | "serial" | "hotplug" | "kvm" | "efidisk" => {
            "VM.Config.HWType"
        }
        _ if is_drive_key(key) => match value.map(DriveValue::parse) {
            Some(d) if d.is_cdrom() && !d.is_cloudinit() => "VM.Config.CDROM",
            _ => "VM.Config.Disk",
        },
        _ => "VM.Config.Options",
    }
}

fn hotplug_features(vm: &Vm) -> Vec<String> {
    match vm.get("hotplug").unwrap_or("network,disk,usb") {
        "1" => vec!["network".into(), "disk".into(), "usb".into()],
        "0" => Vec::new(),
        h => h.split(',').map(str::to_string).collect(),
    }
}

/// Whether a change of `key` applies to a running guest now.
fn applies_live(vm: &Vm, key: &str, value: Option<&str>) -> bool {
    if FASTPLUG.contains(&key) || key.starts_with("ipconfig") || key == "balloon" {
        return true;
    }
    let hp = hotplug_features(vm);
    let has = |f: &str| hp.iter().any(|x| x == f);
    if key.starts_with("net") && !key.starts_with("nameserver") {
        // a model change needs a restart; new NICs and bridge/tag changes hotplug
        let model = |v: &str| v.split([',', '=']).next().unwrap_or("").to_string();
        let same = match (vm.get(key), value) {
            (Some(old), Some(new)) => model(old) == model(new),
            _ => true,
        };
        return has("network") && same;
    }
    if is_drive_key(key) {
        let cdrom = value.is_some_and(|v| DriveValue::parse(v).is_cdrom());
        return cdrom || (has("disk") && (key.starts_with("scsi") || key.starts_with("virtio")));
    }
    match key {
        "memory" => has("memory"),
        "cores" | "vcpus" => has("cpu"),
        _ => false,
    }
}

/// Moves pending changes into the config: all of them (`all`, at start/stop or when the
/// guest is stopped) or those that apply live.
pub fn apply_pending(vm: &mut Vm, all: bool) {
    let all = all || !vm.running;
    let keys: Vec<String> = vm.pending.keys().cloned().collect();
    for k in keys {
        let v = vm.pending.get(&k).cloned();
        if (all || applies_live(vm, &k, v.as_deref()))
            && let Some(v) = vm.pending.remove(&k)
        {
            vm.config.insert(k, v);
        }
    }
    let dels: Vec<String> = vm.pending_delete.iter().cloned().collect();
    for k in dels {
        if all || applies_live(vm, &k, None) {
            vm.pending_delete.remove(&k);
            vm.config.remove(&k);
        }
    }
}

/// `format: urlencoded` (pve-common): only unreserved characters and `%XX`.
fn urlencoded(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-%_.!~*'()".contains(c))
}

/// Turns a requested value into what PVE writes: normalised tags, generated MACs, allocated
/// disks (`STORAGE:SIZE`), cloud-init drives.
pub(super) fn convert(
    c: &WCtx,
    vmid: u32,
    key: &str,
    v: &str,
    reserved: &mut Vec<u32>,
) -> Result<String, ApiError> {
    if key == "tags" {
        return Ok(normalize_tags(v));
    }
    if key == "sshkeys" {
        if !urlencoded(v) {
            return Err(ApiError::param(
                "sshkeys",
                format!("invalid format - invalid urlencoded string: {v}\n"),
            ));
        }
        return Ok(v.to_string());
    }
    if key.starts_with("net") && key != "nameserver" {
        let mut parts: Vec<String> = v.split(',').map(str::to_string).collect();
        let first = parts.first().cloned().unwrap_or_default();
        let model = first.strip_prefix("model=").unwrap_or(&first);
        if !model.contains('=') {
            let mac = parts
                .iter()
                .find_map(|p| p.strip_prefix("macaddr="))
                .map(str::to_string)
                .unwrap_or_else(|| new_mac(&format!("{vmid}-{key}")));
            parts.retain(|p| !p.starts_with("macaddr="));
            parts[0] = format!("{model}={mac}");
        }
        return Ok(parts.join(","));
    }
    if is_drive_key(key) {
        let mut d = DriveValue::parse(v);
        if d.vol == "none" || d.vol == "cdrom" {
            return Ok(d.render());
        }
        let Some((sid, rest)) = d
            .vol
            .split_once(':')
            .map(|(a, b)| (a.to_string(), b.to_string()))
        else {
            return Err(ApiError::param(
                key,
                format!("invalid format - unable to parse drive '{v}'\n"),
            ));
        };
        let Some(st) = c.st.storage(&sid) else {
            return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
        };
        let file = crate::sim::volumes::is_file_storage(&st.stype);
        if rest == "cloudinit" {
            d.vol = if file {
                format!("{sid}:{vmid}/vm-{vmid}-cloudinit.qcow2")
            } else {
                format!("{sid}:vm-{vmid}-cloudinit")
            };
            d.set_opt("media", "cdrom");
            return Ok(d.render());
        }
        if let Ok(gib) = rest.parse::<f64>() {
            c.ro().require(
                &format!("/storage/{sid}"),
                &["Datastore.AllocateSpace"],
                false,
            )?;
            let name = new_disk_name(c.st, &sid, vmid, reserved);
            d.vol = format!("{sid}:{name}");
            let bytes = (gib * crate::sim::state::GIB as f64) as u64;
            let size = if key == "efidisk0" {
                "528K".to_string()
            } else {
                format_size(bytes)
            };
            d.set_opt("size", &size);
            return Ok(d.render());
        }
        // an existing loose volume (an imported disk) keeps its size, as PVE reads it
        if d.opt("size").is_none()
            && let Some(v) =
                c.st.images
                    .iter()
                    .find(|v| v.volid == d.vol && v.node.as_ref().is_none_or(|n| *n == c.args.node))
        {
            d.set_opt("size", &format_size(v.size));
        }
        return Ok(d.render());
    }
    Ok(v.to_string())
}

/// The shared part of POST and PUT: checks and writes the pending section.
fn update(c: &mut WCtx) -> Result<(u32, String), ApiError> {
    let vmid = c.vmid();
    let path = format!("/vms/{}", c.args.vmid);
    c.ro().require(
        &path,
        &[
            "VM.Config.Disk",
            "VM.Config.CDROM",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Config.Cloudinit",
        ],
        true,
    )?;
    c.ro().validate()?;
    let skip = skiplock(c)?;
    const META: &[&str] = &[
        "node",
        "vmid",
        "digest",
        "delete",
        "revert",
        "skiplock",
        "background_delay",
    ];
    let sets: Vec<(String, String)> = c
        .req
        .params
        .iter()
        .filter(|(k, _)| !META.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let split = |k: &str| -> Vec<String> {
        c.param(k)
            .map(|d| {
                d.split([',', ';', ' '])
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (deletes, reverts) = (split("delete"), split("revert"));
    for d in &deletes {
        if sets.iter().any(|(k, _)| k == d) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{d}' and -delete {d}' at the same time"),
            ));
        }
    }
    for (k, v) in &sets {
        c.ro().require(&path, &[priv_for(k, Some(v))], false)?;
    }
    for k in deletes.iter().chain(&reverts) {
        c.ro().require(&path, &[priv_for(k, None)], false)?;
    }
    if sets.is_empty() && deletes.is_empty() && reverts.is_empty() {
        return Err(ApiError::Server("no options specified".into()));
    }
    // the new NICs' bridges, before taking the lock
    super::sdn::check_bridge_access(&c.ro(), sets.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    c.st.faults.check_flock(vmid)?;
    let node = c.args.node.clone();
    {
        let vm = vm_mut(c.st, &node, vmid)?;
        check_digest(vm, c.req.params.get("digest").map(String::as_str))?;
        check_lock(vm, skip)?;
    }
    {
        // under the lock: the bridge a changed or deleted NIC leaves
        let vm = vm_mut(c.st, &node, vmid)?;
        let old: Vec<(String, String)> = sets
            .iter()
            .map(|(k, _)| k)
            .chain(&deletes)
            .filter_map(|k| vm.get(k).map(|v| (k.clone(), v.to_string())))
            .collect();
        super::sdn::check_bridge_access(
            &c.ro(),
            old.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
    }
    let mut reserved = Vec::new();
    let mut converted = Vec::new();
    for (k, v) in &sets {
        converted.push((k.clone(), convert(c, vmid, k, v, &mut reserved)?));
    }
    let vm = vm_mut(c.st, &node, vmid)?;
    for k in &reverts {
        vm.pending.remove(k);
        vm.pending_delete.remove(k);
    }
    // Removing an `unusedN` entry takes effect at once, running or not, and frees the volume
    // (qemu-server `update_vm_api`: `vdisk_free` unless a snapshot still references it) —
    // the GUI's "Remove" on an unused disk erases it.
    let mut freed = Vec::new();
    for k in deletes {
        vm.pending.remove(&k);
        if k.starts_with("unused") {
            if let Some(v) = vm.config.remove(&k) {
                freed.push(DriveValue::parse(&v).vol);
            }
            continue;
        }
        if vm.config.contains_key(&k) {
            vm.pending_delete.insert(k);
        }
    }
    let in_snapshots: Vec<String> = vm
        .snapshots
        .values()
        .flat_map(|s| s.values())
        .map(|v| DriveValue::parse(v).vol)
        .collect();
    freed.retain(|v| !in_snapshots.contains(v));
    for (k, v) in converted {
        vm.pending_delete.remove(&k);
        vm.pending.insert(k, v);
    }
    c.st.images.retain(|i| !freed.contains(&i.volid));
    Ok((vmid, node))
}

/// After a config change: loose image volumes now carried by a drive stop being loose, and
/// their `unusedN` entries go (PVE drops the unused entry of a volume it attaches).
fn adopt_images(st: &mut State, vmid: u32) {
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return;
    };
    let attached: Vec<String> = vm
        .config
        .iter()
        .filter(|(k, _)| is_drive_key(k))
        .map(|(_, v)| DriveValue::parse(v).vol)
        .collect();
    vm.config
        .retain(|k, v| !(k.starts_with("unused") && attached.contains(v)));
    st.images.retain(|i| !attached.contains(&i.volid));
}

pub fn config_put(c: &mut WCtx) -> ApiResult {
    let (vmid, node) = update(c)?;
    if let Ok(vm) = vm_mut(c.st, &node, vmid) {
        apply_pending(vm, false);
    }
    adopt_images(c.st, vmid);
    Ok(Reply::data(Value::Null))
}

pub fn config_post(c: &mut WCtx) -> ApiResult {
    let (vmid, node) = update(c)?;
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmconfig",
            id: &id,
            user: &user,
            duration_secs: 0.5,
            log: Vec::new(),
        },
        move |st, injected| {
            if let Some(error) = injected {
                return Outcome::Err {
                    log: Vec::new(),
                    error,
                };
            }
            if let Some(vm) = st.vms.get_mut(&vmid) {
                apply_pending(vm, false);
            }
            adopt_images(st, vmid);
            Outcome::Ok {
                log: Vec::new(),
                warnings: 0,
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}

pub fn pending(c: &Ctx) -> ApiResult {
    c.require(&format!("/vms/{}", c.args.vmid), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = lookup(c, &c.args.node, &c.args.vmid)?;
    let mut keys: Vec<&String> = vm
        .config
        .keys()
        .chain(vm.pending.keys())
        .chain(vm.pending_delete.iter())
        .collect();
    keys.sort();
    keys.dedup();
    let out: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            let mut m = Map::new();
            m.insert("key".into(), json!(k));
            if let Some(v) = vm.config.get(k) {
                m.insert("value".into(), json!(v));
            }
            if let Some(p) = vm.pending.get(k) {
                m.insert("pending".into(), json!(p));
            }
            if vm.pending_delete.contains(k) {
                m.insert("delete".into(), json!(1));
            }
            Value::Object(m)
        })
        .collect();
    Ok(Reply::data(Value::Array(out)))
}

/// `PUT .../resize`. Since qemu-server 8 the endpoint forks its worker first: the flock,
/// digest, `check_lock`, disk and cd-rom checks all run inside the `resize` task
/// (`Qemu.pm` `resize_vm`: `$updatefn` under `lock_config` in `$worker`), so a locked guest
/// gets a UPID whose task fails with "VM is locked (backup)".
pub fn resize(c: &mut WCtx) -> ApiResult {
    let vmid = c.vmid();
    c.ro()
        .require(&format!("/vms/{}", c.args.vmid), &["VM.Config.Disk"], false)?;
    c.ro().validate()?;
    let skip = skiplock(c)?;
    let node = c.args.node.clone();
    vm_mut(c.st, &node, vmid)?;
    let disk = c.param("disk").unwrap_or("").to_string();
    let size = c.param("size").unwrap_or("").to_string();
    let digest = c.param("digest").map(str::to_string);
    let (plus, bytes) = parse_resize(&size)
        .ok_or_else(|| ApiError::param("size", "value does not match the regex pattern"))?;
    let worker_checks = |st: &mut State| -> Result<u64, ApiError> {
        st.faults.check_flock(vmid)?;
        let vm = vm_mut(st, &node, vmid)?;
        check_digest(vm, digest.as_deref())?;
        check_lock(vm, skip)?;
        let Some(value) = vm.get(&disk) else {
            return Err(ApiError::Server(format!("disk '{disk}' does not exist")));
        };
        let d = DriveValue::parse(value);
        if d.is_cdrom() {
            return Err(ApiError::Server("you can't resize a cdrom".into()));
        }
        Ok(d.opt("size").and_then(parse_size).unwrap_or(0))
    };
    let old = match worker_checks(c.st) {
        Ok(old) => old,
        Err(e) => return super::failed_worker(c, "resize", super::worker_error(e)),
    };
    let new = if plus {
        old.saturating_add(bytes)
    } else {
        bytes
    };
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "resize",
            id: &id,
            user: &user,
            duration_secs: 1.0,
            log: Vec::new(),
        },
        move |st, injected| {
            if let Some(error) = injected {
                return Outcome::Err {
                    log: Vec::new(),
                    error,
                };
            }
            if new < old {
                return Outcome::Err {
                    log: Vec::new(),
                    error: "shrinking disks is not supported".into(),
                };
            }
            if new == old {
                return Outcome::Ok {
                    log: Vec::new(),
                    warnings: 0,
                };
            }
            let Some(vm) = st.vms.get_mut(&vmid) else {
                return Outcome::Err {
                    log: Vec::new(),
                    error: format!("VM {vmid} does not exist"),
                };
            };
            let Some(cur) = vm.config.get(&disk) else {
                return Outcome::Err {
                    log: Vec::new(),
                    error: format!("disk '{disk}' does not exist"),
                };
            };
            let mut d = DriveValue::parse(cur);
            d.set_opt("size", &format_size(new));
            let line = format!(
                "Image resized: {} from {} to {}",
                d.vol,
                format_size(old),
                format_size(new)
            );
            vm.config.insert(disk, d.render());
            Outcome::Ok {
                log: vec![line],
                warnings: 0,
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}
