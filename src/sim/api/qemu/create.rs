//! `POST /nodes/{node}/qemu` (qemu-server `create_vm`, semantics items 18, 20, 22, 23): VM
//! creation with new disks (`STORAGE:SIZE`), cloud-init drives and disk imports
//! (`STORAGE:0,import-from=VOLID`).
//!
//! As in PVE, the permission checks and `create_and_lock_config` happen before the fork: the
//! new config exists at once with `lock: create`, so a second create of the same vmid fails
//! early. The `qmcreate` task (id = vmid) imports the disks (about 1 s per GiB), clears the
//! lock and, with `start=1`, starts the guest; when it fails, the guest is removed again.

use std::collections::BTreeMap;

use serde_json::json;

use crate::sim::api::WCtx;
use crate::sim::api::qemu::write::{convert, priv_for};
use crate::sim::guest::{DriveValue, drive_order};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{GIB, State, Vm, is_drive_key};
use crate::sim::tasks::{NewTask, Outcome, spawn_locked};
use crate::sim::volumes::{format_size, new_disk_name, new_uuid};

/// Parameters that are not config keys (`archive` and its options are the restore's, see
/// `api::backup::restore`).
const META: &[&str] = &[
    "node",
    "vmid",
    "pool",
    "start",
    "unique",
    "archive",
    "force",
    "storage",
    "bwlimit",
    "live-restore",
];

/// One disk import the task performs.
struct Import {
    key: String,
    from: String,
    size: u64,
}

pub fn create(c: &mut WCtx) -> ApiResult {
    // `archive` makes it a restore (`api::backup::restore`)
    if c.param("archive").is_some() {
        return crate::sim::api::backup::restore::restore(c);
    }
    crate::sim::api::backup::restore::check_requires(c)?;
    let vmid_s = c.param("vmid").unwrap_or("").to_string();
    let vm_path = format!("/vms/{vmid_s}");
    {
        let ro = c.ro();
        match c.param("pool") {
            Some(pool) if !ro.can(&vm_path, &["VM.Allocate"]) => {
                ro.require(&format!("/pool/{pool}"), &["VM.Allocate"], false)?
            }
            _ => ro.require(&vm_path, &["VM.Allocate"], false)?,
        }
        ro.validate()?;
    }
    let vmid: u32 = vmid_s.parse().unwrap_or(0);
    let node = c.args.node.clone();
    let sets: Vec<(String, String)> = c
        .req
        .params
        .iter()
        .filter(|(k, _)| !META.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // check_vm_create_serial_perm and check_vm_modify_config_perm; drives are checked below
    // against their storages (check_storage_access)
    for (k, v) in &sets {
        if k.starts_with("serial") {
            if v != "socket" && c.authid() != "root@pam" {
                return Err(ApiError::Forbidden(format!(
                    "only root can set '{k}' config for real devices"
                )));
            }
            continue;
        }
        if is_drive_key(k) || k == "tags" {
            continue;
        }
        c.ro().require(&vm_path, &[priv_for(k, Some(v))], false)?;
    }
    if let Some(pool) = c.param("pool") {
        return Err(ApiError::Server(format!("pool '{pool}' does not exist")));
    }
    let mut drives: Vec<&(String, String)> = sets.iter().filter(|(k, _)| is_drive_key(k)).collect();
    drives.sort_by_key(|(k, _)| drive_order(k));
    for (k, v) in &drives {
        check_drive(c, k, v)?;
    }
    super::sdn::check_bridge_access(&c.ro(), sets.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    c.st.faults.check_flock(vmid)?;
    // create_and_lock_config: check_vmid_unused
    if let Some(other) = c.st.vms.get(&vmid) {
        return Err(ApiError::Server(format!(
            "unable to create VM {vmid} - {} {vmid} already exists on node '{}'",
            if other.is_ct() { "CT" } else { "VM" },
            other.node
        )));
    }
    let mut reserved = Vec::new();
    let mut imports = Vec::new();
    let mut config = BTreeMap::new();
    for (k, v) in &drives {
        let d = DriveValue::parse(v);
        let value = match d.opt("import-from") {
            Some(src) => {
                let src = src.to_string();
                let size = source_size(c.st, &node, &src)?;
                import_target(c.st, vmid, k, d, size, &mut reserved, &mut imports, src)
            }
            None => convert(c, vmid, k, v, &mut reserved)?,
        };
        config.insert(k.clone(), value);
    }
    for (k, v) in sets.iter().filter(|(k, _)| !is_drive_key(k)) {
        config.insert(k.clone(), convert(c, vmid, k, v, &mut reserved)?);
    }
    if !config.contains_key("boot") {
        config.insert("boot".into(), default_boot(&config));
    }
    config.insert(
        "smbios1".into(),
        format!("uuid={}", new_uuid(&format!("{vmid}-smbios"))),
    );
    config.insert("vmgenid".into(), new_uuid(&format!("{vmid}-vmgenid")));
    config.insert(
        "meta".into(),
        format!("creation-qemu=9.2.0,ctime={}", crate::sim::state::now()),
    );
    config.insert("lock".into(), "create".into());
    c.st.vms.insert(
        vmid,
        Vm {
            vmid,
            kind: Default::default(),
            node: node.clone(),
            running: false,
            started_at: 0,
            pid: 3000 + vmid % 60_000,
            cpu_usage: 0.0,
            mem_usage: 0.0,
            config,
            pending: Default::default(),
            pending_delete: Default::default(),
            snapshots: Default::default(),
            paused: false,
            started_instant: None,
        },
    );
    let log: Vec<String> = imports
        .iter()
        .map(|i| format!("create full clone of drive {} ({})", i.key, i.from))
        .collect();
    let mut done_log: Vec<String> = imports
        .iter()
        .map(|i| format!("transferred {0} of {0} (100.00%)", format_size(i.size)))
        .collect();
    let gib: f64 = imports.iter().map(|i| i.size as f64 / GIB as f64).sum();
    let start = c.flag("start");
    if start {
        done_log.push("Execute autostart".into());
    }
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmcreate",
            id: &id,
            user: &user,
            duration_secs: 0.5 + gib,
            log,
        },
        move |st, injected| {
            if let Some(error) = injected {
                st.vms.remove(&vmid);
                return Outcome::Err {
                    log: Vec::new(),
                    error,
                };
            }
            let Some(vm) = st.vms.get_mut(&vmid) else {
                return Outcome::Err {
                    log: Vec::new(),
                    error: format!("unable to create VM {vmid} - VM {vmid} vanished"),
                };
            };
            vm.config.remove("lock");
            if start {
                crate::sim::api::qemu::power::power_on(st, vmid);
            }
            Outcome::Ok {
                log: done_log,
                warnings: 0,
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `check_drive_param` and `check_storage_access` for one drive of the new guest.
fn check_drive(c: &WCtx, key: &str, value: &str) -> Result<(), ApiError> {
    let d = DriveValue::parse(value);
    if d.is_cdrom() && !d.is_cloudinit() {
        // an ISO volume needs read access to its storage (check_volume_access)
        return match d.vol.split_once(':') {
            Some((sid, volname)) if volname.starts_with("iso/") => c.ro().require(
                &format!("/storage/{sid}"),
                &["Datastore.AllocateSpace", "Datastore.Audit"],
                true,
            ),
            _ => Ok(()),
        };
    }
    let Some((sid, rest)) = d.vol.split_once(':') else {
        return Ok(());
    };
    let new_disk = rest == "cloudinit" || rest.parse::<f64>().is_ok();
    if let Some(src) = d.opt("import-from") {
        if rest.parse::<f64>().ok() != Some(0.0) {
            return Err(ApiError::param(
                key,
                "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>",
            ));
        }
        if key == "efidisk0" {
            for required in ["efitype", "pre-enrolled-keys"] {
                if d.opt(required).is_none() {
                    return Err(ApiError::param(
                        key,
                        format!("need to specify '{required}' when using 'import-from'"),
                    ));
                }
            }
        }
        check_source_access(c, key, src)?;
    }
    if !new_disk {
        return Ok(());
    }
    let Some(st) = c.st.storage(sid) else {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    };
    c.ro().require(
        &format!("/storage/{sid}"),
        &["Datastore.AllocateSpace"],
        false,
    )?;
    if !st.content.iter().any(|x| x == "images") {
        return Err(ApiError::Server(format!(
            "storage '{sid}' does not support vm images"
        )));
    }
    Ok(())
}

/// The content type of a volume name as PVE's `parse_volname` reports it.
fn vtype(volname: &str) -> &str {
    match volname.split_once('/') {
        Some((t @ ("import" | "iso" | "vztmpl" | "backup" | "snippets"), _)) => t,
        _ => "images",
    }
}

/// The guest owning an image volume name (`vm-N-...`, `base-N-...`, `N/...`).
fn owner(volname: &str) -> Option<u32> {
    let file = volname.split('/').next_back().unwrap_or(volname);
    let rest = file
        .strip_prefix("vm-")
        .or_else(|| file.strip_prefix("base-"))?;
    rest.split('-').next()?.parse().ok()
}

/// Permission checks on an `import-from` source (qemu-server `check_storage_access`).
fn check_source_access(c: &WCtx, key: &str, src: &str) -> Result<(), ApiError> {
    if src.starts_with('/') {
        // PVE::Storage::check_volume_access for a plain path
        return match c.authid() {
            "root@pam" => Ok(()),
            _ => Err(ApiError::Forbidden(
                "Only root can pass arbitrary filesystem paths.".into(),
            )),
        };
    }
    let Some((sid, volname)) = src.split_once(':') else {
        return Err(ApiError::param(
            key,
            format!("unable to parse volume ID '{src}'"),
        ));
    };
    match vtype(volname) {
        "import" => c.ro().require(
            &format!("/storage/{sid}"),
            &["Datastore.AllocateSpace", "Datastore.Audit"],
            true,
        ),
        "images" => match owner(volname) {
            Some(v) => c.ro().require(&format!("/vms/{v}"), &["VM.Clone"], false),
            None => c
                .ro()
                .require(&format!("/storage/{sid}"), &["Datastore.Allocate"], false),
        },
        t => Err(ApiError::param(
            key,
            format!("{src} has wrong type '{t}' - needs to be 'images' or 'import'"),
        )),
    }
}

/// The virtual size of an import source on `node`, or PVE-style "does not exist".
fn source_size(st: &State, node: &str, src: &str) -> Result<u64, ApiError> {
    let gone = || ApiError::Server(format!("volume '{src}' does not exist"));
    // an absolute path (root only) names a file below a storage's path
    let volid = match src.strip_prefix('/') {
        None => src.to_string(),
        Some(_) => st
            .storages
            .iter()
            .find_map(|s| {
                let base = s.props.get("path")?;
                let rel = src.strip_prefix(base.as_str())?.strip_prefix('/')?;
                let volname = rel
                    .strip_prefix("template/iso/")
                    .map_or_else(|| rel.to_string(), |f| format!("iso/{f}"));
                Some(format!("{}:{volname}", s.id))
            })
            .ok_or_else(gone)?,
    };
    let (sid, volname) = volid.split_once(':').ok_or_else(gone)?;
    let storage = st.storage(sid).ok_or_else(gone)?;
    if vtype(volname) == "images" {
        return st.guest_disk_size(node, sid, volname).ok_or_else(gone);
    }
    st.files
        .iter()
        .find(|f| f.volid == volid && (storage.shared || f.node.as_deref() == Some(node)))
        .map(|f| f.virtual_size.unwrap_or(f.size))
        .ok_or_else(gone)
}

/// Allocates the disk an import lands on; returns the config value PVE writes (the source
/// is not kept: `import-from` is create-time only).
#[allow(clippy::too_many_arguments)]
fn import_target(
    st: &State,
    vmid: u32,
    key: &str,
    mut d: DriveValue,
    size: u64,
    reserved: &mut Vec<u32>,
    imports: &mut Vec<Import>,
    from: String,
) -> String {
    let sid = d.vol.split(':').next().unwrap_or("").to_string();
    let name = new_disk_name(st, &sid, vmid, reserved);
    d.vol = format!("{sid}:{name}");
    d.opts.retain(|o| !o.starts_with("import-from="));
    d.set_opt("size", &format_size(size));
    imports.push(Import {
        key: key.to_string(),
        from,
        size,
    });
    d.render()
}

/// `get_default_bootdevices`: the first disk, cdrom drives, then the first NIC.
fn default_boot(config: &BTreeMap<String, String>) -> String {
    let mut keys: Vec<&String> = config
        .keys()
        .filter(|k| is_drive_key(k) && *k != "efidisk0" && *k != "tpmstate0")
        .collect();
    keys.sort_by_key(|k| drive_order(k));
    let mut order: Vec<String> = Vec::new();
    let is_cd = |k: &str| {
        config
            .get(k)
            .map(|v| DriveValue::parse(v))
            .is_some_and(|d| d.is_cdrom())
    };
    if let Some(disk) = keys.iter().find(|k| !is_cd(k)) {
        order.push((*disk).clone());
    }
    for k in keys.iter().filter(|k| {
        is_cd(k)
            && config
                .get(k.as_str())
                .is_some_and(|v| !v.contains("cloudinit"))
    }) {
        order.push((*k).clone());
    }
    if config.contains_key("net0") {
        order.push("net0".into());
    }
    format!("order={}", order.join(";"))
}
