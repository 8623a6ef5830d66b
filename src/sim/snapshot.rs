//! The snapshot model (pve-guest-common `AbstractConfig.pm` snapshot_create/rollback/delete,
//! qemu-server `QemuConfig.pm`): a guest's snapshots are its config's `[name]` sections, kept in
//! [`super::state::Vm::snapshots`]; the current config's `parent:` names the snapshot it
//! derives from and each section's `parent:` chains the tree. This file holds what the
//! endpoints (`api/qemu/snapshot.rs`), the scenario and other modules share:
//!
//! - which config keys a snapshot copies (`__snapshot_copy_config`) and how a rollback
//!   rebuilds the current config (`__snapshot_apply_config`, the rollback hook, unused disks);
//! - the RAM (`vmstate`) volume: its storage (`find_vmstate_storage`: `vmstatestorage`, else a
//!   shared storage the guest's disks use, else a local one, file-based preferred, else
//!   `local`), its name (`vm-N-state-<snap>`, `N/vm-N-state-<snap>.raw` on file storages) and
//!   size (twice the memory plus 500 MiB), listed in storage content as an image of the guest;
//!   disk snapshots themselves (LVM-thin `snap_*` LVs, qcow2 internal snapshots) are never
//!   listed, as on PVE;
//! - the storage `snapshot` feature (LVM-thin, ZFS, RBD; qcow2 on file storages);
//! - migration: a local disk a snapshot references blocks it (`QemuMigrate`
//!   `scan_local_volumes`);
//! - volumes freed while a config still names them ([`super::state::State::freed_volumes`]):
//!   the error PVE meets when it activates one;
//! - scenario snapshots ([`from_spec`]) and the [`SimHandle::snapshots`] observer.

use std::collections::BTreeMap;

use super::guest::{DriveValue, drive_order};
use super::scenario::VmSpec;
use super::state::{MIB, State, Storage, Vm, is_drive_key};
use super::{SimError, SimHandle};

/// One snapshot section: config keys plus `snaptime`, `description`, `parent`, `vmstate`,
/// `runningmachine`, `runningcpu`, `running-nets-host-mtu` and `snapstate` (while a snapshot
/// is being made or deleted).
pub type SnapConf = BTreeMap<String, String>;
/// A guest's snapshot sections by name.
pub type Snapshots = BTreeMap<String, SnapConf>;

/// The machine and CPU a running guest reports (as `status/current`'s `running-machine`).
pub const RUNNING_MACHINE: &str = "pc-q35-9.2+pve1";

/// Whether `k` is an `unusedN` key.
pub fn is_unused(k: &str) -> bool {
    k.strip_prefix("unused")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `__snapshot_copy_config`: every key but the snapshot bookkeeping, `lock`, `description`
/// and `unusedN` (the current `parent` is copied: it becomes the new snapshot's parent).
pub fn copy_config(src: &BTreeMap<String, String>) -> SnapConf {
    src.iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "snapstate" | "snaptime" | "vmstate" | "lock" | "digest" | "description"
            ) && !is_unused(k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Volume ids of a config's disks (cdroms and cloud-init drives left out), in PVE's drive
/// order: `(key, volid)`.
pub fn drive_volids(conf: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = conf
        .iter()
        .filter(|(k, _)| is_drive_key(k))
        .map(|(k, v)| (k, DriveValue::parse(v)))
        .filter(|(_, d)| !d.is_cdrom() && !d.is_cloudinit() && d.vol.contains(':'))
        .map(|(k, d)| (k.clone(), d.vol))
        .collect();
    out.sort_by_key(|(k, _)| drive_order(k));
    out
}

/// `add_unused_volume`: `volid` at the lowest free `unusedN`, unless an `unusedN` holds it.
pub fn add_unused(conf: &mut BTreeMap<String, String>, volid: &str) {
    if conf.iter().any(|(k, v)| is_unused(k) && v == volid) {
        return;
    }
    if let Some(n) = (0..256).find(|n| !conf.contains_key(&format!("unused{n}"))) {
        conf.insert(format!("unused{n}"), volid.to_string());
    }
}

/// `write_config` drops `unusedN` entries whose volume a drive uses again.
pub fn drop_reattached_unused(conf: &mut BTreeMap<String, String>) {
    let used: Vec<String> = drive_volids(conf).into_iter().map(|(_, v)| v).collect();
    conf.retain(|k, v| !(is_unused(k) && used.contains(v)));
}

/// The current config after a rollback to `snap` (`snapshot_rollback`'s second pass): the
/// current `description` and `unusedN` kept, the snapshot's config copied, disks the snapshot
/// does not have kept as unused, `parent` = `snapname`; the rollback hook drops the
/// `running*` keys and gives the guest a new `vmgenid`.
pub fn rolled_back(
    current: &BTreeMap<String, String>,
    snap: &SnapConf,
    snapname: &str,
) -> BTreeMap<String, String> {
    let in_snap: Vec<String> = drive_volids(snap).into_iter().map(|(_, v)| v).collect();
    let unused: Vec<String> = drive_volids(current)
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| !in_snap.contains(v))
        .collect();
    let mut conf: BTreeMap<String, String> = current
        .iter()
        .filter(|(k, _)| is_unused(k) || k.as_str() == "description")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for v in &unused {
        add_unused(&mut conf, v);
    }
    conf.extend(copy_config(snap));
    conf.insert("parent".into(), snapname.to_string());
    for k in ["runningmachine", "runningcpu", "running-nets-host-mtu"] {
        conf.remove(k);
    }
    if conf.contains_key("vmgenid") {
        conf.insert(
            "vmgenid".into(),
            super::volumes::new_uuid(&format!("rollback-{snapname}")),
        );
    }
    drop_reattached_unused(&mut conf);
    conf
}

/// `check_non_migratable_resources` with a state to save: what stops a snapshot with RAM.
pub fn ram_blockers(conf: &BTreeMap<String, String>) -> Vec<&'static str> {
    let mut out = Vec::new();
    if conf.contains_key("amd-sev") {
        out.push("amd-sev");
    }
    if conf.contains_key("intel-tdx") {
        out.push("intel-tdx");
    }
    if conf.keys().any(|k| {
        k.strip_prefix("virtiofs")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }) {
        out.push("virtiofs");
    }
    out
}

/// The storage `snapshot` feature of a volume's current state (`volume_has_feature`).
pub fn snapshot_supported(stype: &str, volname: &str) -> bool {
    let file = volname.rsplit('/').next().unwrap_or(volname);
    match stype {
        "lvmthin" | "zfspool" | "zfs" | "rbd" => !file.starts_with("base-"),
        t if super::volumes::is_file_storage(t) => file.ends_with(".qcow2"),
        _ => false,
    }
}

/// `find_vmstate_storage`: `vmstatestorage`, else a shared storage of the guest's disks, else
/// a local one (file-based ones preferred), else `local`.
pub fn vmstate_storage(storages: &[Storage], conf: &BTreeMap<String, String>) -> String {
    if let Some(s) = conf.get("vmstatestorage") {
        return s.clone();
    }
    let mut sids: Vec<String> = drive_volids(conf)
        .into_iter()
        .filter_map(|(_, v)| v.split_once(':').map(|(s, _)| s.to_string()))
        .collect();
    sids.sort();
    sids.dedup();
    let (mut shared, mut local): (Option<&Storage>, Option<&Storage>) = (None, None);
    for sid in &sids {
        let Some(s) = storages.iter().find(|s| &s.id == sid) else {
            continue;
        };
        let slot = if s.shared { &mut shared } else { &mut local };
        if slot.is_none() || s.props.contains_key("path") {
            *slot = Some(s);
        }
    }
    shared
        .or(local)
        .map(|s| s.id.clone())
        .unwrap_or_else(|| "local".into())
}

/// The volume id of the RAM state of snapshot `snap` of `vmid` on `sid`.
pub fn vmstate_volid(storages: &[Storage], sid: &str, vmid: u32, snap: &str) -> String {
    let file_based = storages
        .iter()
        .find(|s| s.id == sid)
        .is_some_and(|s| s.props.contains_key("path"));
    if file_based {
        format!("{sid}:{vmid}/vm-{vmid}-state-{snap}.raw")
    } else {
        format!("{sid}:vm-{vmid}-state-{snap}")
    }
}

/// The size PVE allocates for a RAM state: twice the memory plus 500 MiB.
pub fn vmstate_size(conf: &BTreeMap<String, String>) -> u64 {
    let mib: u64 = conf
        .get("memory")
        .and_then(|m| {
            m.split(',')
                .find_map(|p| p.strip_prefix("current=").or(Some(p)))
        })
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    (mib * 2 + 500) * MIB
}

/// A snapshot's RAM state volume, as storage content lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmstateVolume {
    pub volid: String,
    pub storage: String,
    pub vmid: u32,
    pub size: u64,
    pub ctime: i64,
}

/// The RAM state volumes of `vm`'s snapshots (those not freed).
pub fn vmstate_volumes(st: &State, vm: &Vm) -> Vec<VmstateVolume> {
    vm_vmstates(vm)
        .filter(|v| !st.freed_volumes.contains(&v.volid))
        .collect()
}

/// The RAM state volumes `vm`'s snapshots name, freed or not.
pub fn vm_vmstates(vm: &Vm) -> impl Iterator<Item = VmstateVolume> + '_ {
    vm.snapshots.values().filter_map(|s| {
        let volid = s.get("vmstate")?;
        Some(VmstateVolume {
            volid: volid.clone(),
            storage: volid.split_once(':')?.0.to_string(),
            vmid: vm.vmid,
            size: vmstate_size(s),
            ctime: s.get("snaptime").and_then(|t| t.parse().ok()).unwrap_or(0),
        })
    })
}

/// The `runningcpu` QEMU reports for a guest's `cpu` setting.
pub fn running_cpu(cpu: Option<&str>) -> String {
    let model = cpu
        .and_then(|c| c.split(',').next())
        .map(|c| c.strip_prefix("cputype=").unwrap_or(c))
        .unwrap_or("x86-64-v2-AES");
    match model {
        "host" => "host,+kvm_pv_eoi,+kvm_pv_unhalt".into(),
        "x86-64-v2-AES" => {
            "qemu64,+aes,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+pni,+popcnt,+sse4.1,+sse4.2,+ssse3"
                .into()
        }
        other => format!("{other},enforce,+kvm_pv_eoi,+kvm_pv_unhalt"),
    }
}

/// `running-nets-host-mtu`: the host MTU of each virtio NIC (`net0=1500,...`), if any.
pub fn nets_host_mtu(conf: &BTreeMap<String, String>) -> Option<String> {
    let nets: Vec<String> = conf
        .iter()
        .filter(|(k, v)| {
            k.strip_prefix("net")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                && v.starts_with("virtio")
        })
        .map(|(k, _)| format!("{k}=1500"))
        .collect();
    (!nets.is_empty()).then(|| nets.join(","))
}

/// `scan_local_volumes` on a local volume a snapshot of `vm` references: an online migration
/// cannot copy snapshots, an offline one only on ZFS or as qcow2.
pub fn migration_blocker(vm: &Vm, volid: &str, stype: &str, running: bool) -> Option<&'static str> {
    let referenced = vm
        .snapshots
        .values()
        .any(|s| drive_volids(s).iter().any(|(_, v)| v == volid));
    if !referenced {
        return None;
    }
    if running {
        return Some("online storage migration not possible if non-replicated snapshot exists");
    }
    if stype == "zfspool" || volid.ends_with(".qcow2") {
        return None;
    }
    Some("non-migratable snapshot exists")
}

/// The error PVE meets activating `volid` after it was freed: LVM's "no such logical volume
/// vg/lv", a file storage's "volume '...' does not exist".
pub fn freed_error(st: &State, volid: &str) -> Option<String> {
    if !st.freed_volumes.contains(volid) {
        return None;
    }
    let (sid, volname) = volid.split_once(':')?;
    let s = st.storage(sid)?;
    Some(match s.props.get("vgname") {
        Some(vg) if !s.props.contains_key("path") => {
            format!(
                "no such logical volume {vg}/{}",
                volname.rsplit('/').next().unwrap_or(volname)
            )
        }
        _ => format!("volume '{volid}' does not exist"),
    })
}

/// The first current disk of `vm` that was freed: the error its start meets.
pub fn missing_disk_error(st: &State, vm: &Vm) -> Option<String> {
    drive_volids(&vm.config)
        .iter()
        .find_map(|(_, v)| freed_error(st, v))
}

/// A `pve-snapshot-name` PVE accepts (`pve-configid`, at most 40 characters), and not one of
/// the reserved names.
fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    n.len() >= 2
        && n.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && n != "current"
        && !n.eq_ignore_ascii_case("pending")
}

/// The snapshot sections of a scenario guest (see [`super::scenario::SnapshotSpec`]); sets
/// the current config's `parent` to the last one unless the spec's `config` names it.
///
/// # Errors
/// A message naming the bad snapshot: invalid or reserved name, a duplicate, an unknown or
/// later parent, an unknown current parent, snapshots on a template.
pub fn from_spec(
    v: &VmSpec,
    config: &mut BTreeMap<String, String>,
    started: i64,
    storages: &[Storage],
) -> Result<Snapshots, String> {
    let mut out = Snapshots::new();
    if v.snapshots.is_empty() {
        return Ok(out);
    }
    if v.template {
        return Err("a template cannot have snapshots".into());
    }
    for s in &v.snapshots {
        if !valid_name(&s.name) {
            return Err(format!("snapshot name '{}' is not valid", s.name));
        }
        if out.contains_key(&s.name) {
            return Err(format!("snapshot name '{}' appears twice", s.name));
        }
        if let Some(p) = s.parent.as_ref().filter(|p| !out.contains_key(*p)) {
            return Err(format!(
                "snapshot '{}' names parent '{p}', which is not listed before it",
                s.name
            ));
        }
        let mut snap = copy_config(config);
        snap.remove("parent");
        for (k, val) in &s.config {
            snap.insert(k.clone(), val.clone());
        }
        if let Some(p) = &s.parent {
            snap.insert("parent".into(), p.clone());
        }
        snap.insert(
            "snaptime".into(),
            (started - s.snaptime_ago as i64).to_string(),
        );
        if let Some(d) = s.description.as_ref().filter(|d| !d.is_empty()) {
            snap.insert("description".into(), d.clone());
        }
        if s.vmstate {
            let sid = vmstate_storage(storages, &snap);
            snap.insert(
                "vmstate".into(),
                vmstate_volid(storages, &sid, v.vmid, &s.name),
            );
            snap.insert("runningmachine".into(), RUNNING_MACHINE.into());
            snap.insert(
                "runningcpu".into(),
                running_cpu(snap.get("cpu").map(String::as_str)),
            );
            if let Some(m) = nets_host_mtu(&snap) {
                snap.insert("running-nets-host-mtu".into(), m);
            }
        }
        out.insert(s.name.clone(), snap);
    }
    let parent = match config.get("parent") {
        Some(p) if !out.contains_key(p) => {
            return Err(format!(
                "config names parent '{p}', which is not a snapshot"
            ));
        }
        Some(p) => p.clone(),
        None => v
            .snapshots
            .last()
            .map(|s| s.name.clone())
            .unwrap_or_default(),
    };
    config.insert("parent".into(), parent);
    Ok(out)
}

/// One snapshot as [`SimHandle::snapshots`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    pub parent: Option<String>,
    /// The RAM state volume, if the snapshot has one.
    pub vmstate: Option<String>,
    /// `prepare` or `delete` while a task works on it.
    pub snapstate: Option<String>,
    pub snaptime: i64,
}

impl SimHandle {
    /// The snapshots of guest `vmid` (by name) and the current state's `parent`, read from the
    /// live state without going through the API.
    ///
    /// # Errors
    /// [`SimError::UnknownVm`] if there is no such guest.
    pub fn snapshots(&self, vmid: u32) -> Result<(Vec<SnapshotInfo>, Option<String>), SimError> {
        let st = self.shared.lock();
        let vm = st.vms.get(&vmid).ok_or(SimError::UnknownVm(vmid))?;
        let list = vm
            .snapshots
            .iter()
            .map(|(name, s)| SnapshotInfo {
                name: name.clone(),
                parent: s.get("parent").cloned(),
                vmstate: s.get("vmstate").cloned(),
                snapstate: s.get("snapstate").cloned(),
                snaptime: s.get("snaptime").and_then(|t| t.parse().ok()).unwrap_or(0),
            })
            .collect();
        Ok((list, vm.get("parent").map(str::to_string)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_snapshot_copies_the_config_but_its_bookkeeping() {
        let c = conf(&[
            ("scsi0", "local-lvm:vm-100-disk-0,size=8G"),
            ("lock", "backup"),
            ("description", "web"),
            ("unused0", "local-lvm:vm-100-disk-1"),
            ("parent", "a"),
            ("memory", "2048"),
        ]);
        let s = copy_config(&c);
        assert_eq!(
            s.keys().map(String::as_str).collect::<Vec<_>>(),
            ["memory", "parent", "scsi0"]
        );
    }

    #[test]
    fn a_rollback_keeps_unused_disks_and_sets_the_parent() {
        let current = conf(&[
            ("scsi0", "local-lvm:vm-100-disk-0,size=8G"),
            ("scsi1", "local-lvm:vm-100-disk-2,size=4G"),
            ("unused0", "local-lvm:vm-100-disk-9"),
            ("description", "now"),
            ("memory", "4096"),
            ("vmgenid", "x"),
        ]);
        let snap = conf(&[
            ("scsi0", "local-lvm:vm-100-disk-0,size=8G"),
            ("memory", "2048"),
            ("snaptime", "1"),
            ("vmstate", "local-lvm:vm-100-state-a"),
            ("runningmachine", RUNNING_MACHINE),
            ("description", "then"),
            ("parent", "root"),
            ("vmgenid", "x"),
        ]);
        let c = rolled_back(&current, &snap, "a");
        assert_eq!(c["memory"], "2048");
        assert_eq!(c["description"], "now");
        assert_eq!(c["parent"], "a");
        assert_eq!(c["unused0"], "local-lvm:vm-100-disk-9");
        assert_eq!(c["unused1"], "local-lvm:vm-100-disk-2");
        assert!(!c.contains_key("scsi1") && !c.contains_key("snaptime"));
        assert!(!c.contains_key("vmstate") && !c.contains_key("runningmachine"));
        assert_ne!(c["vmgenid"], "x");
    }

    #[test]
    fn the_state_goes_where_pve_puts_it() {
        let s = crate::sim::scenario::Scenario::embedded().expect("scenario");
        let st = State::from_scenario(&s).expect("state");
        let lvm = conf(&[("scsi0", "local-lvm:vm-1-disk-0"), ("memory", "4096")]);
        assert_eq!(vmstate_storage(&st.storages, &lvm), "local-lvm");
        assert_eq!(
            vmstate_volid(&st.storages, "local-lvm", 1, "a"),
            "local-lvm:vm-1-state-a"
        );
        assert_eq!(vmstate_size(&lvm), (4096 * 2 + 500) * MIB);
        let mixed = conf(&[
            ("scsi0", "local-lvm:vm-1-disk-0"),
            ("scsi1", "nfs-shared:1/vm-1-disk-1.qcow2"),
            ("ide2", "nfs-shared:1/vm-1-cloudinit.qcow2,media=cdrom"),
        ]);
        assert_eq!(vmstate_storage(&st.storages, &mixed), "nfs-shared");
        assert_eq!(
            vmstate_volid(&st.storages, "nfs-shared", 1, "a"),
            "nfs-shared:1/vm-1-state-a.raw"
        );
        assert_eq!(vmstate_storage(&st.storages, &conf(&[])), "local");
        let mut pinned = lvm.clone();
        pinned.insert("vmstatestorage".into(), "nfs-shared".into());
        assert_eq!(vmstate_storage(&st.storages, &pinned), "nfs-shared");
    }

    #[test]
    fn storage_features_and_blockers() {
        assert!(snapshot_supported("lvmthin", "vm-1-disk-0"));
        assert!(!snapshot_supported("lvmthin", "base-1-disk-0"));
        assert!(snapshot_supported("nfs", "1/vm-1-disk-0.qcow2"));
        assert!(!snapshot_supported("dir", "1/vm-1-disk-0.raw"));
        assert!(!snapshot_supported("lvm", "vm-1-disk-0"));
        assert_eq!(
            ram_blockers(&conf(&[("amd-sev", "type=std"), ("virtiofs0", "x")])),
            ["amd-sev", "virtiofs"]
        );
        let mut c = conf(&[("memory", "1")]);
        add_unused(&mut c, "a:b");
        add_unused(&mut c, "a:b");
        add_unused(&mut c, "a:c");
        assert_eq!(
            (c["unused0"].as_str(), c["unused1"].as_str()),
            ("a:b", "a:c")
        );
    }

    #[test]
    fn the_scenario_guest_has_its_tree() {
        let s = crate::sim::scenario::Scenario::embedded().expect("scenario");
        let st = State::from_scenario(&s).expect("state");
        let with: Vec<&Vm> = st
            .vms
            .values()
            .filter(|v| !v.snapshots.is_empty())
            .collect();
        assert!(!with.is_empty(), "the scenario has a guest with snapshots");
        for vm in with {
            let parent = vm.get("parent").expect("current has a parent");
            assert!(vm.snapshots.contains_key(parent));
            for s in vm.snapshots.values() {
                assert!(s.get("parent").is_none_or(|p| vm.snapshots.contains_key(p)));
                assert!(s.contains_key("snaptime") && !s.contains_key("lock"));
            }
        }
        let mut bad = s.clone();
        if let Some(v) = bad.vms.iter_mut().find(|v| !v.snapshots.is_empty()) {
            v.snapshots[0].name = "current".into();
        }
        let err = State::from_scenario(&bad).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("'current' is not valid")));
    }
}
