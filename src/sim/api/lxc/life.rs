//! Container life cycle: create and restore (`POST lxc`), clone, power, migrate, and the
//! appliance download (`POST aplinfo`).

use std::collections::BTreeMap;

use super::write::{allocate, check_formats};
use super::{check_lock, check_protection, ct, fail, ok, task};
use crate::sim::api::{Ctx, WCtx};
use crate::sim::http::{ApiError, ApiResult};
use crate::sim::lxc::{MountPoint, MpType, is_volume_key, parse_net, render_net};
use crate::sim::state::{GuestKind, State, Vm, Volume, now};

/// Task durations at time scale 1, in seconds.
const CREATE_SECS: f64 = 6.0;
const START_SECS: f64 = 2.0;
const STOP_SECS: f64 = 1.0;
const SHUTDOWN_SECS: f64 = 3.0;
const MIGRATE_SECS: f64 = 4.0;
const DOWNLOAD_SECS: f64 = 3.0;

/// `PVE::Storage::check_volume_access` for a `vztmpl` or `backup` volume.
fn check_volume_access(ro: &Ctx, vmid: u32, volid: &str, content: &str) -> Result<(), ApiError> {
    let Some((sid, volname)) = volid.split_once(':') else {
        if ro.authid() != "root@pam" {
            return Err(ApiError::Server(
                "Only root can pass arbitrary filesystem paths.".into(),
            ));
        }
        return Ok(());
    };
    if ro.st.storage(sid).is_none() {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    }
    let vtype = volname.split_once('/').map(|(t, _)| t).unwrap_or("images");
    if vtype != content {
        return Err(ApiError::Server(format!(
            "unable to use volume {volid} - content type needs to be '{content}'"
        )));
    }
    let storage = format!("/storage/{sid}");
    if ro.can(&storage, &["Datastore.Allocate"]) {
        return Ok(());
    }
    if content == "vztmpl" {
        return ro.require(
            &storage,
            &["Datastore.AllocateSpace", "Datastore.Audit"],
            true,
        );
    }
    let owner: Option<u32> = volname
        .trim_start_matches("backup/")
        .strip_prefix("vzdump-lxc-")
        .and_then(|r| r.split('-').next())
        .and_then(|v| v.parse().ok());
    ro.require(&storage, &["Datastore.AllocateSpace"], false)?;
    if let Some(o) = owner.filter(|o| *o != vmid) {
        ro.require(&format!("/vms/{o}"), &["VM.Backup"], false)?;
    }
    Ok(())
}

/// The storage of a volume the node can see (`None`: no such volume).
fn find_file<'a>(st: &'a State, node: &str, volid: &str) -> Option<&'a Volume> {
    st.files
        .iter()
        .find(|f| f.volid == volid && (f.node.is_none() || f.node.as_deref() == Some(node)))
}

/// `ostype` as `PVE::LXC::Setup` detects it from a template's name.
fn detect_ostype(template: &str) -> &'static str {
    let file = template.rsplit('/').next().unwrap_or(template);
    for os in [
        "debian",
        "ubuntu",
        "alpine",
        "centos",
        "fedora",
        "archlinux",
        "devuan",
        "gentoo",
        "opensuse",
        "nixos",
    ] {
        if file.starts_with(os) {
            return os;
        }
    }
    "unmanaged"
}

/// A net value with the `hwaddr` and `type` pct adds.
fn complete_net(vmid: u32, key: &str, v: &str, fresh_mac: bool) -> String {
    let mut opts = parse_net(v).unwrap_or_default();
    if fresh_mac {
        opts.retain(|(k, _)| k != "hwaddr");
    }
    if !opts.iter().any(|(k, _)| k == "hwaddr") {
        opts.push((
            "hwaddr".into(),
            crate::sim::volumes::new_mac(&format!("ct-{vmid}-{key}")),
        ));
    }
    if !opts.iter().any(|(k, _)| k == "type") {
        opts.push(("type".into(), "veth".into()));
    }
    render_net(&opts)
}

/// The config a `vzdump-lxc` archive holds: the one recorded when the simulator made it, else
/// (a scenario file, an upload) its container's current config, else a minimal container.
fn ct_archive_config(st: &State, volid: &str) -> BTreeMap<String, String> {
    if let Some(c) = st.backup.archives.get(volid) {
        return c.clone();
    }
    let owner: Option<u32> = volid
        .rsplit('/')
        .next()
        .and_then(|f| f.strip_prefix("vzdump-lxc-"))
        .and_then(|r| r.split('-').next())
        .and_then(|v| v.parse().ok());
    if let Some(vm) = owner.and_then(|o| st.vms.get(&o)).filter(|v| v.is_ct()) {
        return crate::sim::backup::script::archived_config(&vm.config);
    }
    let id = owner.unwrap_or(0);
    [
        ("arch", "amd64".to_string()),
        ("cores", "1".into()),
        ("hostname", format!("CT{id}")),
        ("memory", "512".into()),
        ("net0", "name=eth0,bridge=vmbr0,ip=dhcp,type=veth".into()),
        ("ostype", "debian".into()),
        ("rootfs", format!("local-lvm:vm-{id}-disk-0,size=8G")),
        ("swap", "512".into()),
        ("unprivileged", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn new_ct(vmid: u32, node: &str, config: BTreeMap<String, String>) -> Vm {
    Vm {
        vmid,
        kind: GuestKind::Lxc,
        node: node.to_string(),
        running: false,
        started_at: now(),
        pid: 40_000 + vmid % 20_000,
        cpu_usage: 0.0,
        mem_usage: 0.0,
        config,
        pending: BTreeMap::new(),
        pending_delete: Default::default(),
        snapshots: Default::default(),
        paused: false,
        started_instant: None,
    }
}

fn power_on(vm: &mut Vm) {
    vm.running = true;
    vm.paused = false;
    vm.started_at = now();
    vm.started_instant = Some(std::time::Instant::now());
    if vm.cpu_usage == 0.0 {
        vm.cpu_usage = 0.02;
    }
    if vm.mem_usage == 0.0 {
        vm.mem_usage = 0.25;
    }
    super::write::apply_pending(vm);
}

fn power_off(vm: &mut Vm) {
    vm.running = false;
    vm.started_instant = None;
    super::write::apply_pending(vm);
}

/// `POST /nodes/{node}/lxc`: create from a `vztmpl`, or restore a `vzdump-lxc-*` archive.
pub fn create(c: &mut WCtx) -> ApiResult {
    c.ro().validate()?;
    check_formats(&c.req.params)?;
    let vmid: u32 = c.param("vmid").and_then(|v| v.parse().ok()).unwrap_or(0);
    let node = c.args.node.clone();
    let restore = c.flag("restore");
    let force = c.flag("force");
    let unique = c.flag("unique");
    let start = c.flag("start");
    let authid = c.authid().to_string();
    let is_root = authid == "root@pam";
    // the schema's `requires => 'restore'` (JSONSchema.pm)
    if c.param("unique").is_some() && c.param("restore").is_none() {
        return Err(ApiError::param(
            "restore",
            "missing property required by 'unique'",
        ));
    }
    let explicit_unpriv = c
        .param("unprivileged")
        .and_then(crate::sim::params::parse_bool);
    let ro = c.ro();
    if !restore && !explicit_unpriv.unwrap_or(true) {
        ro.require("/", &["Sys.Modify"], false)?;
    }
    let existing = c.st.vms.get(&vmid);
    let same_ct = existing.filter(|v| v.is_ct() && v.node == node);
    if !(same_ct.is_some() && restore && force) {
        if let Some(v) = existing {
            let kind = if v.is_ct() { "CT" } else { "VM" };
            return Err(ApiError::Server(format!(
                "{kind} {vmid} already exists on node '{}'",
                v.node
            )));
        }
    } else if let Some(v) = same_ct {
        if v.running {
            return Err(ApiError::Server("can't overwrite running container".into()));
        }
        check_protection(v, &format!("unable to restore CT {vmid}"))?;
    }
    let vm_path = format!("/vms/{vmid}");
    let allowed = ro.can(&vm_path, &["VM.Allocate"])
        || (restore && force && same_ct.is_some() && ro.can(&vm_path, &["VM.Backup"]));
    if !allowed {
        return Err(ApiError::Forbidden("Permission check failed".into()));
    }
    let ostemplate = c.param("ostemplate").unwrap_or("").to_string();
    let storage = c.param("storage").unwrap_or("local").to_string();
    // the config keys the request sets (check_ct_modify_config_perm over them)
    let skip = [
        "node",
        "vmid",
        "ostemplate",
        "storage",
        "force",
        "restore",
        "unique",
        "password",
        "ssh-public-keys",
        "pool",
        "ignore-unpack-errors",
        "bwlimit",
        "start",
        "ha-managed",
        "unprivileged",
    ];
    let mut params: BTreeMap<String, String> = c
        .req
        .params
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let unpriv_now = explicit_unpriv.unwrap_or(true);
    for (k, v) in &params {
        super::write::check_key_perm(&ro, None, k, Some(v), unpriv_now)?;
    }
    check_volume_access(
        &ro,
        vmid,
        &ostemplate,
        if restore { "backup" } else { "vztmpl" },
    )?;
    // mount points: plain numbers take the default storage
    for (k, v) in params.iter_mut() {
        if is_volume_key(k) {
            let (first, rest) = v.split_once(',').unwrap_or((v.as_str(), ""));
            if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                *v = if rest.is_empty() {
                    format!("{storage}:{first}")
                } else {
                    format!("{storage}:{first},{rest}")
                };
            }
        }
    }
    let mounts: Vec<(String, MountPoint)> = params
        .iter()
        .filter(|(k, _)| is_volume_key(k))
        .filter_map(|(k, v)| MountPoint::parse(v).ok().map(|m| (k.clone(), m)))
        .collect();
    if !mounts.is_empty() && !params.contains_key("rootfs") {
        return Err(ApiError::Server(
            "mount points configured, but 'rootfs' not set - aborting".into(),
        ));
    }
    let check_storage = |sid: &str| -> Result<(), ApiError> {
        let Some(s) = ro.st.storage(sid) else {
            return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
        };
        if !s.content.iter().any(|x| x == "rootdir") {
            return Err(ApiError::param(
                "storage",
                format!("storage '{sid}' does not support container directories"),
            ));
        }
        ro.require(
            &format!("/storage/{sid}"),
            &["Datastore.AllocateSpace"],
            false,
        )
    };
    for (_, m) in &mounts {
        if m.kind() != MpType::Volume {
            if !is_root {
                return Err(ApiError::Server(
                    "Only root can pass arbitrary filesystem paths.".into(),
                ));
            }
        } else {
            check_storage(m.volume.split(':').next().unwrap_or(""))?;
        }
    }
    if !params.contains_key("rootfs") {
        check_storage(&storage)?;
    }
    // the archive's config (restore) or the template (create)
    let template = find_file(c.st, &node, &ostemplate).map(|f| f.volid.clone());
    let archived = template
        .as_ref()
        .filter(|_| restore)
        .map(|v| ct_archive_config(c.st, v));
    // the worker's work, decided now
    let mut reserved = Vec::new();
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    let mut error: Option<String> = None;
    let emsg = if restore {
        format!("unable to restore CT {vmid} -")
    } else {
        format!("unable to create CT {vmid} -")
    };
    if template.is_none() {
        error = Some(format!("{emsg} volume '{ostemplate}' does not exist"));
    }
    if let Some(orig) = &archived {
        for (k, v) in orig {
            if !matches!(k.as_str(), "template" | "lock" | "parent") && !k.starts_with("unused") {
                config.insert(k.clone(), v.clone());
            }
        }
        if !params.contains_key("rootfs") {
            // storage-only mode: the archive's volumes on `storage`, sizes as they were
            for (k, v) in orig.iter().filter(|(k, _)| is_volume_key(k)) {
                if let Ok(mut m) = MountPoint::parse(v)
                    && m.kind() == MpType::Volume
                {
                    {
                        let gib = m
                            .opt("size")
                            .and_then(crate::sim::state::parse_size)
                            .unwrap_or(4 << 30) as f64
                            / (1u64 << 30) as f64;
                        m.volume = format!("{storage}:{gib}");
                        m.opts.retain(|(a, _)| a != "size");
                        params.insert(k.clone(), m.render());
                    }
                }
            }
        }
    }
    if !params.contains_key("rootfs") {
        params.insert("rootfs".into(), format!("{storage}:4"));
    }
    for (k, v) in &params {
        if is_volume_key(k) {
            match allocate(c.st, vmid, k, v, &mut reserved) {
                Ok(val) => {
                    config.insert(k.clone(), val);
                }
                Err(e) => {
                    error.get_or_insert(format!("{emsg} {e}"));
                }
            }
        } else if crate::sim::api::qemu::sdn::is_net_key(k) {
            config.insert(k.clone(), complete_net(vmid, k, v, false));
        } else {
            config.insert(k.clone(), v.clone());
        }
    }
    if unique {
        let nets: Vec<(String, String)> = config
            .iter()
            .filter(|(k, _)| crate::sim::api::qemu::sdn::is_net_key(k))
            .map(|(k, v)| (k.clone(), complete_net(vmid, k, v, true)))
            .collect();
        config.extend(nets);
    }
    if !restore {
        config.insert("unprivileged".into(), "1".into());
        if explicit_unpriv == Some(false) {
            config.remove("unprivileged");
        }
        config
            .entry("ostype".into())
            .or_insert_with(|| detect_ostype(&ostemplate).to_string());
        config
            .entry("arch".into())
            .or_insert_with(|| "amd64".into());
    } else if let Some(u) = explicit_unpriv {
        if u {
            config.insert("unprivileged".into(), "1".into());
        } else {
            config.remove("unprivileged");
        }
    }
    config
        .entry("hostname".into())
        .or_insert_with(|| format!("CT{vmid}"));
    config
        .entry("memory".into())
        .or_insert_with(|| "512".into());
    config.entry("swap".into()).or_insert_with(|| "512".into());
    let was_template = archived
        .as_ref()
        .is_some_and(|a| a.get("template").is_some_and(|t| t == "1"));
    // create_and_lock_config: a config holding only the lock while the worker runs
    let old = c.st.vms.remove(&vmid);
    let mut placeholder = new_ct(
        vmid,
        &node,
        BTreeMap::from([("lock".into(), "create".into())]),
    );
    if let Some(o) = &old {
        placeholder.config = o.config.clone();
        placeholder.config.insert("lock".into(), "create".into());
    }
    c.st.vms.insert(vmid, placeholder);
    let ttype = if restore { "vzrestore" } else { "vzcreate" };
    let id = vmid.to_string();
    let secs = if error.is_some() { 0.5 } else { CREATE_SECS };
    let log_archive = ostemplate.clone();
    task(c, ttype, &id, secs, move |st| {
        if let Some(e) = error {
            // the config goes (create), or keeps its old content without the lock (restore
            // over an existing container that failed before touching it)
            match old {
                Some(mut o) => {
                    o.config.remove("lock");
                    st.vms.insert(vmid, o);
                }
                None => {
                    st.vms.remove(&vmid);
                }
            }
            return fail(Vec::new(), e);
        }
        let mut log = Vec::new();
        if restore {
            log.push(format!(
                "recovering backed-up configuration from '{log_archive}'"
            ));
        }
        for (k, v) in config.iter().filter(|(k, _)| is_volume_key(k)) {
            let vol = v.split(',').next().unwrap_or("");
            log.push(format!(
                "  Logical volume \"{}\" created.",
                vol.split(':').nth(1).unwrap_or("")
            ));
            let _ = k;
        }
        if restore {
            log.push(format!("restoring '{log_archive}' now.."));
            log.push("merging backed-up and given configuration..".into());
        } else {
            log.push(format!(
                "extracting archive '/var/lib/vz/template/cache/{}'",
                log_archive.rsplit('/').next().unwrap_or("")
            ));
            log.push("Total bytes read: 521902080 (498MiB, 249MiB/s)".into());
            log.push(format!(
                "Detected container architecture: {}",
                config.get("arch").map(String::as_str).unwrap_or("amd64")
            ));
            log.push(
                "Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...".into(),
            );
        }
        let mut vm = new_ct(vmid, &node, config);
        if was_template {
            log.push("Convert restored container to template...".into());
            vm.config.insert("template".into(), "1".into());
        }
        if start && !vm.is_template() {
            power_on(&mut vm);
        }
        st.vms.insert(vmid, vm);
        ok(log)
    })
}

/// `POST .../lxc/{vmid}/clone` (`LXC.pm clone_vm`): the checks run before the fork, the source
/// holds `lock: disk` and the new config `lock: create` while the `vzclone` task copies.
pub fn clone(c: &mut WCtx) -> ApiResult {
    let ro = c.ro();
    let vmid = c.vmid();
    let newid: u32 = c.param("newid").and_then(|v| v.parse().ok()).unwrap_or(0);
    ro.require(&format!("/vms/{vmid}"), &["VM.Clone"], false)?;
    ro.validate()?;
    ro.require(&format!("/vms/{newid}"), &["VM.Allocate"], false)?;
    let node = c.args.node.clone();
    let target = c
        .param("target")
        .filter(|t| *t != node && *t != "localhost")
        .map(str::to_string);
    let snapname = c.param("snapname").map(str::to_string);
    let storage = c.param("storage").map(str::to_string);
    let hostname = c.param("hostname").map(str::to_string);
    let description = c.param("description").map(str::to_string);
    if let Some(t) = &target
        && c.st.node(t).is_none()
    {
        return Err(ApiError::Server(format!("no such cluster node '{t}'")));
    }
    if let Some(sid) = &storage {
        let Some(s) = c.st.storage(sid) else {
            return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
        };
        if target.is_some() && !s.shared {
            return Err(ApiError::Server(format!(
                "can't clone to non-shared storage '{sid}'"
            )));
        }
    }
    // set_lock($vmid, 'disk') on the source, then create_and_lock_config($newid)
    let src = ct(c.st, &node, &c.args.vmid)?;
    check_lock(src)?;
    if let Some(v) = c.st.vms.get(&newid) {
        let kind = if v.is_ct() { "CT" } else { "VM" };
        return Err(ApiError::Server(format!(
            "{kind} {newid} already exists on node '{}'",
            v.node
        )));
    }
    let running = src.running;
    let full = c
        .param("full")
        .and_then(crate::sim::params::parse_bool)
        .unwrap_or(!src.is_template());
    if storage.is_some() && !full {
        return Err(ApiError::Server(
            "parameter 'storage' not allowed for linked clones".into(),
        ));
    }
    if let Some(s) = &snapname
        && !src.snapshots.contains_key(s)
    {
        return Err(ApiError::Server(format!("snapshot '{s}' does not exist")));
    }
    let base = match &snapname {
        Some(s) => src.snapshots.get(s).cloned().unwrap_or_default(),
        None => src.config.clone(),
    };
    let mut reserved = Vec::new();
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    let mut log = vec![format!(
        "creating a clone of container {vmid} with ID {newid}"
    )];
    let mut shared_only = true;
    for (k, v) in &base {
        if matches!(
            k.as_str(),
            "template" | "lock" | "parent" | "snaptime" | "snapstate"
        ) || k.starts_with("unused")
        {
            continue;
        }
        if is_volume_key(k) {
            let Ok(mut m) = MountPoint::parse(v) else {
                continue;
            };
            if m.kind() != MpType::Volume {
                let t = if m.kind() == MpType::Bind {
                    "bind"
                } else {
                    "device"
                };
                return Err(ApiError::Server(format!(
                    "unable to clone mountpoint '{k}' (type {t})"
                )));
            }
            let (sid, name) = m.volume.split_once(':').unwrap_or(("", ""));
            let (sid, name) = (sid.to_string(), name.to_string());
            let to = storage.clone().unwrap_or(sid.clone());
            let st = c.st.storage(&to);
            if !st.is_some_and(|s| s.shared) {
                shared_only = false;
            }
            ro.require(
                &format!("/storage/{to}"),
                &["Datastore.AllocateSpace"],
                false,
            )?;
            if full {
                if running && snapname.is_none() {
                    return Err(ApiError::Server(
                        "Full clone of a running container is only possible from a snapshot".into(),
                    ));
                }
                let newname = crate::sim::lxc::new_volname(c.st, &to, newid, &mut reserved);
                log.push(format!(
                    "create full clone of mountpoint {k} ({sid}:{name})"
                ));
                m.volume = format!("{to}:{newname}");
            } else {
                let stype = c.st.storage(&sid).map(|s| s.stype.as_str()).unwrap_or("");
                let file = name.rsplit('/').next().unwrap_or(&name);
                let linkable = file.starts_with("base-")
                    && matches!(stype, "lvmthin" | "zfspool" | "zfs" | "rbd");
                if !linkable {
                    return Err(ApiError::Server(format!(
                        "Linked clone feature for '{sid}:{name}' is not available"
                    )));
                }
                let child = crate::sim::lxc::new_volname(c.st, &sid, newid, &mut reserved);
                log.push(format!(
                    "create linked clone of mount point {k} ({sid}:{name})"
                ));
                m.volume = format!("{sid}:{}", crate::sim::volumes::linked_name(&name, &child));
            }
            config.insert(k.clone(), m.render());
            continue;
        }
        if crate::sim::api::qemu::sdn::is_net_key(k) {
            let net = complete_net(newid, k, v, true);
            crate::sim::api::qemu::sdn::check_bridge_access(&ro, [(k.as_str(), net.as_str())])?;
            config.insert(k.clone(), net);
            continue;
        }
        config.insert(k.clone(), v.clone());
    }
    if let Some(t) = &target
        && !shared_only
    {
        return Err(ApiError::Server(format!(
            "can't clone CT to node '{t}' (CT uses local storage)"
        )));
    }
    if let Some(h) = hostname {
        config.insert("hostname".into(), h);
    }
    if let Some(d) = description {
        config.insert("description".into(), d);
    }
    let dest = target.unwrap_or_else(|| node.clone());
    let mut placeholder = new_ct(newid, &node, BTreeMap::new());
    placeholder.config.insert("lock".into(), "create".into());
    c.st.vms.insert(newid, placeholder);
    if let Some(v) = c.st.vms.get_mut(&vmid) {
        v.config.insert("lock".into(), "disk".into());
    }
    let id = vmid.to_string();
    task(c, "vzclone", &id, if full { 5.0 } else { 1.5 }, move |st| {
        if let Some(v) = st.vms.get_mut(&vmid)
            && v.get("lock") == Some("disk")
        {
            v.config.remove("lock");
        }
        st.vms.insert(newid, new_ct(newid, &dest, config));
        ok(log)
    })
}

fn vm_path(c: &WCtx) -> String {
    format!("/vms/{}", c.args.vmid)
}

/// Permission, validation, `skiplock` and lookup shared by the power endpoints.
fn prepare(c: &mut WCtx) -> Result<(bool, bool), ApiError> {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.PowerMgmt"], false)?;
    c.ro().validate()?;
    let skip = if c.ro().spec_has("skiplock") {
        crate::sim::guest::skiplock(c)?
    } else {
        false
    };
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    Ok((skip, vm.running))
}

fn lock_error(st: &State, vmid: u32, skip: bool) -> Option<String> {
    let vm = st.vms.get(&vmid)?;
    match vm.get("lock") {
        Some(l) if !skip && l != "mounted" => Some(format!("CT is locked ({l})")),
        _ => None,
    }
}

pub fn start(c: &mut WCtx) -> ApiResult {
    let (skip, running) = prepare(c)?;
    let vmid = c.vmid();
    if running {
        return Err(ApiError::Server(format!("CT {vmid} already running")));
    }
    if c.st.ha.is_managed(vmid) {
        let id = vmid.to_string();
        let log = vec![format!("Requesting HA start for CT {vmid}")];
        return task(c, "hastart", &id, 0.5, move |_| ok(log));
    }
    let id = vmid.to_string();
    task(c, "vzstart", &id, START_SECS, move |st| {
        let Some(vm) = st.vms.get(&vmid) else {
            return fail(Vec::new(), "container vanished");
        };
        if vm.is_template() {
            return fail(Vec::new(), "you can't start a CT if it's a template");
        }
        if let Some(e) = lock_error(st, vmid, skip) {
            return fail(Vec::new(), e);
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            power_on(vm);
        }
        ok(Vec::new())
    })
}

pub fn stop(c: &mut WCtx) -> ApiResult {
    let (skip, running) = prepare(c)?;
    let vmid = c.vmid();
    if !running {
        return Err(ApiError::Server(format!("CT {vmid} not running")));
    }
    let overrule = c.flag("overrule-shutdown");
    let node = c.args.node.clone();
    let mut log = Vec::new();
    if overrule {
        let ids: Vec<String> =
            c.st.tasks
                .tasks
                .iter()
                .filter(|t| t.running() && t.ttype == "vzshutdown" && t.id == vmid.to_string())
                .filter(|t| t.node == node)
                .map(|t| t.upid.clone())
                .collect();
        if !ids.is_empty() {
            log.push(format!("overruled vzshutdown tasks: {}", ids.join(", ")));
        }
        for u in ids {
            crate::sim::tasks::finish(c.st, &u, fail(Vec::new(), "interrupted by signal"));
        }
    }
    let id = vmid.to_string();
    task(c, "vzstop", &id, STOP_SECS, move |st| {
        if let Some(e) = lock_error(st, vmid, skip) {
            return fail(log, e);
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            power_off(vm);
        }
        ok(log)
    })
}

pub fn shutdown(c: &mut WCtx) -> ApiResult {
    let (_, running) = prepare(c)?;
    let vmid = c.vmid();
    if !running {
        return Err(ApiError::Server(format!("CT {vmid} not running")));
    }
    let timeout: f64 = c
        .param("timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or(60.0);
    let force = c.flag("forceStop");
    // a guest that ignores the request stays up until the timeout (then is killed or not)
    let ignores = c.st.faults.ignores_acpi.contains(&vmid);
    let secs = if ignores {
        timeout
    } else {
        SHUTDOWN_SECS.min(timeout.max(0.5))
    };
    let id = vmid.to_string();
    task(c, "vzshutdown", &id, secs, move |st| {
        if let Some(e) = lock_error(st, vmid, false) {
            return fail(Vec::new(), e);
        }
        if ignores && !force {
            return fail(Vec::new(), "container did not stop");
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            power_off(vm);
        }
        ok(Vec::new())
    })
}

pub fn reboot(c: &mut WCtx) -> ApiResult {
    let (_, running) = prepare(c)?;
    let vmid = c.vmid();
    if !running {
        return Err(ApiError::Server(format!("VM {vmid} not running")));
    }
    let id = vmid.to_string();
    task(c, "vzreboot", &id, SHUTDOWN_SECS + START_SECS, move |st| {
        if let Some(e) = lock_error(st, vmid, false) {
            return fail(Vec::new(), e);
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            power_off(vm);
            power_on(vm);
        }
        ok(Vec::new())
    })
}

/// `status/suspend`: `lxc-checkpoint -s` dumps the container and stops it (the simulator
/// remembers the checkpoint in `paused`).
pub fn suspend(c: &mut WCtx) -> ApiResult {
    let (_, running) = prepare(c)?;
    let vmid = c.vmid();
    if !running {
        return Err(ApiError::Server(format!("CT {vmid} not running")));
    }
    let id = vmid.to_string();
    task(c, "vzsuspend", &id, SHUTDOWN_SECS, move |st| {
        if let Some(e) = lock_error(st, vmid, false) {
            return fail(Vec::new(), e);
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            vm.running = false;
            vm.started_instant = None;
            vm.paused = true;
        }
        ok(Vec::new())
    })
}

/// `status/resume`: `lxc-checkpoint -r` restores a checkpoint (and fails without one).
pub fn resume(c: &mut WCtx) -> ApiResult {
    let (_, running) = prepare(c)?;
    let vmid = c.vmid();
    if running {
        return Err(ApiError::Server(format!("CT {vmid} already running")));
    }
    let id = vmid.to_string();
    task(c, "vzresume", &id, START_SECS, move |st| {
        let Some(vm) = st.vms.get_mut(&vmid) else {
            return fail(Vec::new(), "container vanished");
        };
        if !vm.paused {
            return fail(
                Vec::new(),
                format!(
                    "command 'lxc-checkpoint -n {vmid} -r --foreground -D /var/lib/vz/dump' failed: exit code 1"
                ),
            );
        }
        vm.paused = false;
        vm.running = true;
        vm.started_at = now();
        vm.started_instant = Some(std::time::Instant::now());
        ok(Vec::new())
    })
}

/// `POST .../lxc/{vmid}/migrate` (`LXC.pm migrate_vm`, `LXC/Migrate.pm`).
pub fn migrate(c: &mut WCtx) -> ApiResult {
    let path = vm_path(c);
    c.ro().require(&path, &["VM.Migrate"], false)?;
    c.ro().validate()?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let target = c.param("target").unwrap_or("").to_string();
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    let Some(tnode) = c.st.node(&target) else {
        return Err(ApiError::Server(format!("no such cluster node '{target}'")));
    };
    let (tip, tonline) = (tnode.ip.clone(), tnode.online);
    let online = c.flag("online");
    let restart = c.flag("restart");
    let vm = ct(c.st, &node, &c.args.vmid)?;
    if vm.running && !online && !restart {
        return Err(ApiError::Server(
            "can't migrate running container without --online or --restart".into(),
        ));
    }
    let storagemap: BTreeMap<String, String> = c
        .param("target-storage")
        .unwrap_or("")
        .split([',', ';', ' '])
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once(':') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (String::new(), e.to_string()),
        })
        .collect();
    if !storagemap.is_empty() {
        let identity = storagemap.values().any(|v| v == "1");
        if !identity {
            c.ro().require(&path, &["VM.Config.Disk"], false)?;
        }
        for sid in storagemap.values().filter(|v| *v != "1") {
            if c.st.storage(sid).is_none() {
                return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
            }
            c.ro().require(
                &format!("/storage/{sid}"),
                &["Datastore.AllocateSpace"],
                false,
            )?;
        }
    }
    if c.st.ha.is_managed(vmid) {
        let id = vmid.to_string();
        let log = vec![format!(
            "Requesting HA migration for CT {vmid} to node {target}"
        )];
        return task(c, "hamigrate", &id, 0.5, move |_| ok(log));
    }
    // prepare (in the worker): what fails, and the volumes that move
    let t0 = now();
    let ts = move |s: i64| crate::sim::api::qemu::migrate::stamp(t0 + s);
    let running = vm.running;
    let mut error: Option<String> = vm.get("lock").map(|l| format!("CT is locked ({l})"));
    if error.is_none() && running && online {
        error = Some("lxc live migration is currently not implemented".into());
    }
    let mut moves: Vec<(String, String, String)> = Vec::new();
    if error.is_none() {
        let mut keys: Vec<&String> = vm
            .config
            .keys()
            .filter(|k| is_volume_key(k) || k.starts_with("unused"))
            .collect();
        keys.sort_by_key(|k| {
            (
                k.as_str() != "rootfs",
                k.trim_start_matches(|ch: char| ch.is_alphabetic())
                    .parse::<u32>()
                    .unwrap_or(0),
            )
        });
        for k in keys {
            let v = vm.config.get(k).map(String::as_str).unwrap_or("");
            let m = MountPoint::parse(v).ok();
            let Some(m) = m else { continue };
            if m.kind() != MpType::Volume {
                if m.opt("shared") == Some("1") {
                    continue;
                }
                let t = if m.kind() == MpType::Bind {
                    "bind"
                } else {
                    "device"
                };
                error = Some(format!("cannot migrate local {t} mount point '{k}'"));
                break;
            }
            let (sid, name) = m.volume.split_once(':').unwrap_or(("", ""));
            let Some(s) = c.st.storage(sid) else { continue };
            if !s.content.iter().any(|x| x == "rootdir") {
                error = Some(format!(
                    "content type 'rootdir' is not available on storage '{sid}'"
                ));
                break;
            }
            if s.shared {
                continue;
            }
            let tsid = storagemap
                .get(sid)
                .or_else(|| storagemap.get(""))
                .filter(|v| *v != "1")
                .cloned()
                .unwrap_or_else(|| sid.to_string());
            let trootdir =
                c.st.storage(&tsid)
                    .is_some_and(|x| x.content.iter().any(|y| y == "rootdir"));
            if !trootdir {
                error = Some(format!(
                    "{}: content type 'rootdir' is not available on storage '{tsid}'",
                    m.volume
                ));
                break;
            }
            moves.push((k.clone(), m.volume.clone(), format!("{tsid}:{name}")));
        }
    }
    if error.is_none() && !tonline {
        error = Some("Can't connect to destination address using public key".into());
    }
    let id = vmid.to_string();
    if let Some(e) = error {
        let line = format!(
            "{} ERROR: migration aborted (duration 00:00:00): {e}",
            ts(0)
        );
        return task(c, "vzmigrate", &id, 0.3, move |_| {
            fail(vec![line], "migration aborted")
        });
    }
    if let Some(v) = c.st.vms.get_mut(&vmid) {
        v.config.insert("lock".into(), "migrate".into());
    }
    let secs = MIGRATE_SECS
        + moves.len() as f64 * 2.0
        + if running {
            SHUTDOWN_SECS + START_SECS
        } else {
            0.0
        };
    task(c, "vzmigrate", &id, secs, move |st| {
        let mut log = Vec::new();
        let mut t = 0;
        if running {
            log.push(format!("{} shutdown CT {vmid}", ts(t)));
            t += 3;
        }
        log.push(format!(
            "{} starting migration of CT {vmid} to node '{target}' ({tip})",
            ts(t)
        ));
        for (k, from, _) in &moves {
            let _ = k;
            log.push(format!(
                "{} found local volume '{from}' (in current VM config)",
                ts(t)
            ));
        }
        for (_, from, to) in &moves {
            t += 2;
            log.push(format!("{} volume '{from}' is '{to}' on the target", ts(t)));
        }
        log.push(format!("{} start final cleanup", ts(t)));
        let Some(vm) = st.vms.get_mut(&vmid) else {
            return fail(log, "migration aborted");
        };
        for (k, from, to) in &moves {
            if let Some(v) = vm.config.get(k).cloned() {
                vm.config
                    .insert(k.clone(), v.replacen(from.as_str(), to, 1));
            }
        }
        vm.config.remove("lock");
        vm.node = target.clone();
        if running {
            vm.running = false;
            log.push(format!("{} start container on target node", ts(t)));
            power_on(vm);
            t += 2;
        }
        log.push(format!(
            "{} migration finished successfully (duration 00:00:{t:02})",
            ts(t)
        ));
        ok(log)
    })
}

/// `POST /nodes/{node}/aplinfo`: downloads an appliance into a storage's template cache.
pub fn apl_download(c: &mut WCtx) -> ApiResult {
    let sid = c.param("storage").unwrap_or("").to_string();
    c.ro().require(
        &format!("/storage/{sid}"),
        &["Datastore.AllocateTemplate"],
        false,
    )?;
    c.ro().validate()?;
    let node = c.args.node.clone();
    let template = c.param("template").unwrap_or("").to_string();
    let Some(a) = super::read::APPLIANCES
        .iter()
        .find(|a| a.template == template)
    else {
        return Err(ApiError::param("template", "no such template"));
    };
    let Some(s) = c.st.storage(&sid) else {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    };
    if !s.content.iter().any(|x| x == "vztmpl") {
        return Err(ApiError::Server(format!(
            "storage '{sid}' does not support templates"
        )));
    }
    let shared = s.shared;
    let dir = s
        .props
        .get("path")
        .cloned()
        .unwrap_or_else(|| format!("/mnt/pve/{sid}"));
    let size = a.size;
    let sha = super::read::sha512_of(a);
    let url = format!(
        "http://download.proxmox.com/images/{}/{template}",
        a.section
    );
    let format = if template.ends_with(".tar.zst") {
        "tzst"
    } else if template.ends_with(".tar.xz") {
        "txz"
    } else {
        "tgz"
    };
    let dest = format!("{dir}/template/cache/{template}");
    let volid = format!("{sid}:vztmpl/{template}");
    let id = template.clone();
    let user = c.authid().to_string();
    let _ = user;
    task(c, "download", &id, DOWNLOAD_SECS, move |st| {
        let log = vec![
            format!("downloading {url} to {dest}"),
            format!("--{}--  {url}", crate::sim::api::qemu::migrate::stamp(now())),
            "Resolving download.proxmox.com (download.proxmox.com)... 212.224.123.70".into(),
            "Connecting to download.proxmox.com (download.proxmox.com)|212.224.123.70|:80... connected.".into(),
            "HTTP request sent, awaiting response... 200 OK".into(),
            format!("Length: {size} ({}M) [application/octet-stream]", size >> 20),
            format!("Saving to: '{dest}.tmp_dwnl.{}'", std::process::id()),
            "calculating checksum...OK, checksum verified".into(),
            format!("download of '{url}' to '{dest}' finished"),
        ];
        st.files.retain(|f| {
            !(f.volid == volid && (shared || f.node.as_deref() == Some(node.as_str())))
        });
        st.files.push(Volume {
            volid,
            storage: sid,
            node: (!shared).then_some(node),
            content: "vztmpl".into(),
            format: format.into(),
            size,
            virtual_size: None,
            vmid: None,
            ctime: now(),
            notes: None,
            protected: false,
            body: Some(crate::sim::state::Body {
                sha256: String::new(),
                sha512: sha,
                content: None,
            }),
        });
        ok(log)
    })
}
