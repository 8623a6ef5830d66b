//! Restore: `POST /nodes/{node}/qemu` with `archive=<volid>` (qemu-server `PVE/API2/Qemu.pm`
//! `create_vm`, `PVE/QemuServer.pm` `restore_vma_archive`, semantics items 18, 22, 34) and
//! `GET /nodes/{node}/vzdump/extractconfig`.
//!
//! ## Before the fork (HTTP errors), in PVE's order
//!
//! Schema (400; `force`/`unique` without `archive` → `{"archive":"missing property required by
//! 'force'"}`); a `pool` that does not exist → 500; `storage` → 403 Datastore.AllocateSpace;
//! `start` → 403 VM.PowerMgmt; VM.Allocate on `/vms/{vmid}`, or — with `force` over a guest of
//! this node — VM.Backup, else 403 "Permission check failed"; drive options → 400 "option
//! conflicts with option 'archive'"; the archive (`check_volume_access`: "unable to use volume
//! X - content type needs to be 'backup'", Datastore.AllocateSpace + VM.Backup on the owner
//! unless Datastore.Allocate, "Only root can pass arbitrary filesystem paths."; a volume not
//! on this node → 500 "can't find file 'X'"); the other parameters override the archived
//! config and need their `VM.Config.*` privileges; then `create_and_lock_config`: "unable to
//! restore VM N - VM N already exists on node 'X'" without `force`, "unable to restore VM N -
//! VM is locked (x)", "unable to restore VM N - can't lock file ... - got timeout". The config
//! gets `lock: create` (a new vmid: an otherwise empty config).
//!
//! ## In the `qmrestore` task (id = vmid)
//!
//! "unable to restore VM N - protection mode enabled", "unable to restore VM N - vm is
//! running", the config flock, the bridges of the merged config (SDN.Use), `live-restore`
//! ("live-restore is only compatible with backup images from a Proxmox Backup Server"), target
//! storages ("Content type 'images' is not available on storage 'local'",
//! Datastore.AllocateSpace). The log (`restore vma archive: zstd -q -d -c <path> | vma extract
//! ...`, `CFG:`/`DEV:`/`CTIME:` lines, `new volume ID is '...'`, `map 'drive-scsi0' to '...'`,
//! `progress N% (read X bytes, duration D sec)`, `total bytes read ...`, `rescan volumes...`)
//! grows while it runs; the guest config flock is held throughout (config writes time out).
//!
//! Semantics: disks are recreated on `storage`, else on the storage each disk was on (the
//! archive's `#qmdump#map` hint), in the hinted format when the storage supports it; MACs and
//! the SMBIOS uuid stay the archive's unless `unique=1`; `vmgenid` is always new; `lock`,
//! `unused*` and `parent` are dropped, so are drives with `backup=0`. Over an existing guest
//! (`force`): its config becomes `memory: 128` and the disks the archive replaces are freed
//! when the archive's header is read; its other disks become `unusedN` of the restored
//! config. A template archive is restored as a template ("Convert to template."). `start=1`
//! starts the guest ("Execute autostart").
//!
//! On failure PVE does NOT clean up ("error before or during data restore, some or all disks
//! were not completely restored. VM N state is NOT cleaned up."): the volumes allocated so far
//! are removed ("temporary volume '...' successfully removed"), `lock: create` is removed, and
//! the guest stays — a new vmid as an empty config, a forced restore as `memory: 128` with
//! the replaced disks gone and the others orphaned on their storage. An injected failure
//! (`fail_next_task(node, "qmrestore", e)`) strikes halfway through the data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::sim::api::qemu::sdn::check_bridge_access;
use crate::sim::api::qemu::write::priv_for;
use crate::sim::api::storage::volume::path_of;
use crate::sim::api::{Ctx, WCtx};
use crate::sim::backup::schedule::ctime;
use crate::sim::backup::script::{
    DATA_SPEED, ZERO_SPEED, backup_volumes, parse_archive_name, render_archive_config, used_bytes,
    volume_format,
};
use crate::sim::backup::{archive_config, script};
use crate::sim::guest::DriveValue;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{MIB, Shared, State, Vm, Volume, is_drive_key};
use crate::sim::tasks::{NewTask, Outcome, append_log, finish, register};
use crate::sim::volumes::{is_file_storage, new_disk_name, new_mac, new_uuid};

/// Parameters of `POST /nodes/{node}/qemu` that are not config keys.
const META: &[&str] = &[
    "node",
    "vmid",
    "archive",
    "storage",
    "force",
    "unique",
    "start",
    "bwlimit",
    "live-restore",
    "pool",
];

/// The schema's `requires => 'archive'` of `force` and `unique` for a create without
/// `archive`.
pub fn check_requires(c: &WCtx) -> Result<(), ApiError> {
    for k in ["force", "unique"] {
        if c.param(k).is_some() {
            return Err(ApiError::param(
                "archive",
                format!("missing property required by '{k}'"),
            ));
        }
    }
    Ok(())
}

/// The path-form archive of a storage's dump directory, as a volume id.
fn path_to_volid(st: &State, path: &str) -> Option<String> {
    st.storages.iter().find_map(|s| {
        let base = s.props.get("path")?;
        let f = path.strip_prefix(&format!("{base}/dump/"))?;
        Some(format!("{}:backup/{f}", s.id))
    })
}

/// `parse_volume_id`'s storage part: `[a-z][a-z0-9\-_.]*[a-z0-9]`, any case.
fn storage_id_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `PVE::Storage::check_volume_access($rpcenv, $user, $cfg, $vmid, $volid, 'backup')`;
/// returns the volume id.
fn check_archive_access(ro: &Ctx, vmid: u32, archive: &str) -> Result<String, ApiError> {
    if archive == "-" {
        return Err(ApiError::Server("pipe requires cli environment".into()));
    }
    let sid_like = archive.split_once(':').filter(|(s, _)| storage_id_like(s));
    let Some((sid, volname)) = sid_like else {
        if ro.authid() != "root@pam" {
            return Err(ApiError::Server(
                "Only root can pass arbitrary filesystem paths. at /usr/share/perl5/PVE/Storage.pm line 651.".into(),
            ));
        }
        return path_to_volid(ro.st, archive)
            .ok_or_else(|| ApiError::Server(format!("can't find file '{archive}'")));
    };
    if ro.st.storage(sid).is_none() {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    }
    let vtype = match volname.split_once('/') {
        Some((t @ ("import" | "iso" | "vztmpl" | "backup" | "snippets"), _)) => t,
        _ => "images",
    };
    if vtype != "backup" {
        return Err(ApiError::Server(format!(
            "unable to use volume {archive} - content type needs to be 'backup'"
        )));
    }
    let storage = format!("/storage/{sid}");
    if ro.can(&storage, &["Datastore.Allocate"]) {
        return Ok(archive.to_string());
    }
    let file = volname.trim_start_matches("backup/");
    let owner: Option<u32> = file
        .strip_prefix("vzdump-qemu-")
        .or_else(|| file.strip_prefix("vzdump-lxc-"))
        .and_then(|r| r.split('-').next())
        .and_then(|v| v.parse().ok());
    match owner {
        Some(o) if o == vmid => {}
        Some(o) => {
            ro.require(&storage, &["Datastore.AllocateSpace"], false)?;
            ro.require(&format!("/vms/{o}"), &["VM.Backup"], false)?;
        }
        None => {
            return Err(ApiError::Server(format!(
                "missing privileges to access {archive}"
            )));
        }
    }
    Ok(archive.to_string())
}

/// What the worker needs, decided before the fork.
struct Job {
    shared: Arc<Shared>,
    upid: String,
    node: String,
    vmid: u32,
    user: String,
    path: String,
    archive_size: u64,
    archive_ctime: i64,
    config: BTreeMap<String, String>,
    overrides: BTreeMap<String, String>,
    storage: Option<String>,
    unique: bool,
    start: bool,
    live: bool,
    bwlimit: Option<u64>,
    /// A permission error of `check_restore_permissions`, met in the task.
    perm_error: Option<String>,
    injected: Option<String>,
    factor: f64,
}

/// `POST /nodes/{node}/qemu` with `archive` (`create_vm`'s restore path).
pub fn restore(c: &mut WCtx) -> ApiResult {
    c.ro().validate()?;
    let vmid: u32 = c.param("vmid").and_then(|v| v.parse().ok()).unwrap_or(0);
    let node = c.args.node.clone();
    let user = c.authid().to_string();
    let force = c.flag("force");
    let start = c.flag("start");
    let archive = c.param("archive").unwrap_or("").to_string();
    let storage = c.param("storage").map(str::to_string);
    let vm_path = format!("/vms/{vmid}");
    if let Some(pool) = c.param("pool") {
        return Err(ApiError::Server(format!("pool '{pool}' does not exist")));
    }
    let volid = {
        let ro = c.ro();
        if let Some(s) = &storage {
            ro.require(
                &format!("/storage/{s}"),
                &["Datastore.AllocateSpace"],
                false,
            )?;
        }
        if start {
            ro.require(&vm_path, &["VM.PowerMgmt"], false)?;
        }
        let here = ro.st.vms.get(&vmid).is_some_and(|v| v.node == node);
        let allowed = ro.can(&vm_path, &["VM.Allocate"])
            || (force && here && ro.can(&vm_path, &["VM.Backup"]));
        if !allowed {
            return Err(ApiError::Forbidden("Permission check failed".into()));
        }
        let mut keys: Vec<&String> = c.req.params.keys().collect();
        keys.sort();
        if let Some(k) = keys.into_iter().find(|k| is_drive_key(k)) {
            return Err(ApiError::param(k, "option conflicts with option 'archive'"));
        }
        check_archive_access(&ro, vmid, &archive)?
    };
    let shared_storage = |sid: &str| c.st.storage(sid).is_some_and(|s| s.shared);
    let file =
        c.st.files
            .iter()
            .find(|f| {
                f.volid == volid && (shared_storage(&f.storage) || f.node.as_deref() == Some(&node))
            })
            .cloned()
            .ok_or_else(|| ApiError::Server(format!("can't find file '{archive}'")))?;
    // the other parameters override the archived config
    let mut overrides: BTreeMap<String, String> = c
        .req
        .params
        .iter()
        .filter(|(k, _)| !META.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    {
        let ro = c.ro();
        for (k, v) in &overrides {
            ro.require(&vm_path, &[priv_for(k, Some(v))], false)?;
        }
        check_bridge_access(&ro, overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    }
    // `add_random_macs`: NICs given without a MAC get one
    for (k, v) in overrides.iter_mut() {
        if crate::sim::api::qemu::sdn::is_net_key(k) && !has_mac(v) {
            let mut parts: Vec<String> = v.split(',').map(str::to_string).collect();
            if let Some(first) = parts.first_mut()
                && !first.contains('=')
            {
                *first = format!("{first}={}", new_mac(&format!("{vmid}-{k}")));
            }
            *v = parts.join(",");
        }
    }
    let config = archive_config(c.st, &volid, file.vmid);
    let perm_error = {
        let ro = c.ro();
        let mut merged = config.clone();
        merged.extend(overrides.clone());
        check_bridge_access(&ro, merged.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .err()
            .map(crate::sim::api::qemu::worker_error)
    };
    // create_and_lock_config($vmid, $force)
    let emsg = format!("unable to restore VM {vmid} -");
    if let Err(e) = c.st.faults.check_flock(vmid) {
        return Err(ApiError::Server(format!(
            "{emsg} {}",
            crate::sim::api::qemu::worker_error(e)
        )));
    }
    match c.st.vms.get_mut(&vmid) {
        // (a container's vmid is taken whatever `force` says: its config is no qemu-server one)
        Some(other) if !force || other.is_ct() => {
            return Err(ApiError::Server(format!(
                "{emsg} {} {vmid} already exists on node '{}'",
                if other.is_ct() { "CT" } else { "VM" },
                other.node
            )));
        }
        // with `force` the vmid check passes, but the config of another node cannot be
        // written from here (pmxcfs refuses a second config for the vmid) — inferred wording
        Some(other) if other.node != node => {
            return Err(ApiError::Server(format!(
                "{emsg} close (rename) atomic file '/etc/pve/nodes/{node}/qemu-server/{vmid}.conf' failed: File exists"
            )));
        }
        Some(vm) => {
            if let Some(l) = vm.get("lock") {
                return Err(ApiError::Server(format!("{emsg} VM is locked ({l})")));
            }
            vm.config.insert("lock".into(), "create".into());
        }
        None => {
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
                    config: BTreeMap::from([("lock".to_string(), "create".to_string())]),
                    pending: Default::default(),
                    pending_delete: Default::default(),
                    paused: false,
                    started_instant: None,
                    snapshots: Default::default(),
                },
            );
        }
    }
    let id = vmid.to_string();
    let (upid, injected, _) = register(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "qmrestore",
            id: &id,
            user: &user,
            duration_secs: 0.0,
            log: Vec::new(),
        },
    );
    let job = Job {
        shared: Arc::clone(c.shared),
        upid: upid.clone(),
        node: node.clone(),
        vmid,
        user,
        path: path_of(
            c.st,
            &file.storage,
            volid.split_once(':').map(|x| x.1).unwrap_or(""),
        ),
        archive_size: file.size,
        archive_ctime: file.ctime,
        config,
        overrides,
        storage,
        unique: c.flag("unique"),
        start,
        live: c.flag("live-restore"),
        bwlimit: c
            .param("bwlimit")
            .and_then(|v| v.parse().ok())
            .filter(|b| *b > 0),
        perm_error,
        injected,
        factor: c.st.faults.factor(&node),
    };
    tokio::spawn(job.run());
    Ok(Reply::data(json!(upid)))
}

fn has_mac(net: &str) -> bool {
    net.split(',').any(|p| {
        p.split_once('=')
            .is_some_and(|(_, m)| m.len() == 17 && m.matches(':').count() == 5)
    })
}

/// A disk of the archive and where it is restored to.
struct Dev {
    key: String,
    size: u64,
    data: u64,
    storage: String,
    format: String,
    cloudinit: bool,
    volid: String,
}

/// `%.3g`.
fn g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32;
    let decimals = (2 - digits).clamp(0, 10) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

impl Job {
    fn scaled(&self, secs: f64) -> Duration {
        self.shared.scaled(secs * self.factor)
    }

    async fn pause(&self, secs: f64) {
        tokio::time::sleep(self.scaled(secs)).await;
    }

    /// PVE's error path: allocated volumes go, `lock: create` goes, the guest stays.
    fn fail(&self, st: &mut State, allocated: &[String], error: String) {
        let mut log = Vec::new();
        for v in allocated {
            st.images.retain(|i| i.volid != *v);
            log.push(format!("temporary volume '{v}' successfully removed"));
        }
        match st.vms.get_mut(&self.vmid) {
            Some(vm) if vm.get("lock") == Some("create") => {
                vm.config.remove("lock");
            }
            Some(vm) if vm.get("lock").is_some() => log.push(format!(
                "found lock '{}' trying to remove 'create' lock",
                vm.get("lock").unwrap_or("")
            )),
            _ => log.push("no lock found trying to remove 'create' lock".into()),
        }
        log.push(format!(
            "error before or during data restore, some or all disks were not completely restored. VM {} state is NOT cleaned up.",
            self.vmid
        ));
        finish(
            st,
            &self.upid,
            Outcome::Err {
                log,
                error: error.replace('\n', " "),
            },
        );
    }

    fn running(&self, st: &State) -> bool {
        st.tasks.find(&self.upid).is_some_and(|t| t.running())
    }

    async fn run(self) {
        let emsg = format!("unable to restore VM {} -", self.vmid);
        let flock_until = Instant::now() + self.scaled(3600.0 * 24.0);
        {
            let mut st = self.shared.lock();
            // restorefn: protection, running; then lock_config_full (the flock) in realcmd
            let vm = st.vms.get(&self.vmid);
            let early = if vm.is_some_and(|v| v.get("protection") == Some("1")) {
                Some(format!("{emsg} protection mode enabled"))
            } else if vm.is_some_and(|v| v.running) {
                Some(format!("{emsg} vm is running"))
            } else if let Err(e) = st.faults.check_flock(self.vmid) {
                Some(crate::sim::api::qemu::worker_error(e))
            } else if let Some(e) = &self.perm_error {
                Some(e.clone())
            } else if self.live {
                Some(
                    "live-restore is only compatible with backup images from a Proxmox Backup Server"
                        .into(),
                )
            } else {
                None
            };
            if let Some(e) = early {
                self.fail(&mut st, &[], e);
                return;
            }
            // the worker holds the config's flock until it is done
            st.faults.flock_until.insert(self.vmid, flock_until);
        }
        let result = self.restore().await;
        let mut st = self.shared.lock();
        if st.faults.flock_until.get(&self.vmid) == Some(&flock_until) {
            st.faults.flock_until.remove(&self.vmid);
        }
        if let Err((allocated, e)) = result
            && self.running(&st)
        {
            self.fail(&mut st, &allocated, e);
        }
    }

    /// `restore_vma_archive` and what follows; `Err((allocated volids, error))`.
    async fn restore(&self) -> Result<(), (Vec<String>, String)> {
        let vmid = self.vmid;
        let included: Vec<script::BackupVolume> = backup_volumes(&self.config)
            .into_iter()
            .filter(|b| b.included)
            .collect();
        let mut sorted = included.clone();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let (header, mut devs) = {
            let st = self.shared.lock();
            let mut lines = Vec::new();
            if let Some(bw) = self.bwlimit {
                lines.push(format!("applying read rate limit: {bw}"));
            }
            let mut cmd = Vec::new();
            let mut src = self.path.clone();
            if let Some(bw) = self.bwlimit {
                cmd.push(format!("cstream -t {} -- {src}", bw * 1024));
                src = "-".into();
            }
            let decomp = match self.path.rsplit('.').next() {
                Some("zst") => Some("zstd -q -d -c"),
                Some("gz") => Some("zcat"),
                Some("lzo") => Some("lzop -d -c"),
                _ => None,
            };
            if let Some(d) = decomp {
                cmd.push(format!("{d} {src}"));
                src = "-".into();
            }
            let pid = st.tasks.find(&self.upid).map(|t| t.pid).unwrap_or(0);
            cmd.push(format!(
                "vma extract -v -r /var/tmp/vzdumptmp{pid}.fifo {src} /var/tmp/vzdumptmp{pid}"
            ));
            lines.push(format!("restore vma archive: {}", cmd.join(" | ")));
            lines.push(format!(
                "CFG: size: {} name: qemu-server.conf",
                render_archive_config(&self.config).len()
            ));
            for (i, b) in sorted.iter().enumerate() {
                lines.push(format!(
                    "DEV: dev_id={} size: {} devname: drive-{}",
                    i + 1,
                    b.size,
                    b.key
                ));
            }
            lines.push(format!("CTIME: {}", ctime(self.archive_ctime)));
            let mut devs: Vec<Dev> = sorted
                .iter()
                .map(|b| {
                    let hint = b.volid.split_once(':').map(|x| x.0).unwrap_or("");
                    Dev {
                        key: b.key.clone(),
                        size: b.size,
                        data: used_bytes(&st, &b.volid, b.size),
                        storage: self
                            .storage
                            .clone()
                            .unwrap_or_else(|| if hint.is_empty() { "local" } else { hint }.into()),
                        format: volume_format(&b.volid).into(),
                        cloudinit: false,
                        volid: String::new(),
                    }
                })
                .collect();
            // cloud-init drives are recreated, not restored
            for (k, v) in self.config.iter().filter(|(k, _)| is_drive_key(k)) {
                let d = DriveValue::parse(v);
                if d.is_cloudinit()
                    && (k.starts_with("ide") || k.starts_with("sata") || k.starts_with("scsi"))
                {
                    let own = d.vol.split_once(':').map(|x| x.0).unwrap_or("local");
                    devs.push(Dev {
                        key: k.clone(),
                        size: 4 * MIB,
                        data: 0,
                        storage: self.storage.clone().unwrap_or_else(|| own.to_string()),
                        format: volume_format(&d.vol).into(),
                        cloudinit: true,
                        volid: String::new(),
                    });
                }
            }
            devs.sort_by(|a, b| a.key.cmp(&b.key));
            (lines, devs)
        };
        {
            let mut st = self.shared.lock();
            if !append_log(&mut st, &self.upid, header) {
                return Ok(());
            }
        }
        self.pause(1.0).await;
        // parse_backup_hints: the target storages; then the old config goes, volumes come
        let mut allocated: Vec<String> = Vec::new();
        {
            let mut st = self.shared.lock();
            for d in &devs {
                let Some(s) = st.storage(&d.storage) else {
                    return Err((allocated, format!("storage '{}' does not exist", d.storage)));
                };
                if !s.content.iter().any(|c| c == "images") {
                    return Err((
                        allocated,
                        format!(
                            "Content type 'images' is not available on storage '{}'",
                            d.storage
                        ),
                    ));
                }
                if self.user != "root@pam"
                    && !st.access.check(
                        &self.user,
                        &format!("/storage/{}", d.storage),
                        &["Datastore.AllocateSpace"],
                        false,
                    )
                {
                    return Err((
                        allocated,
                        format!(
                            "Permission check failed (/storage/{}, Datastore.AllocateSpace)",
                            d.storage
                        ),
                    ));
                }
            }
            let mut lines = Vec::new();
            if let Some(bw) = self.bwlimit {
                let mut seen = Vec::new();
                for d in &devs {
                    if !seen.contains(&d.storage) {
                        lines.push(format!("rate limit for storage {}: {bw} KiB/s", d.storage));
                        seen.push(d.storage.clone());
                    }
                }
            }
            // $restore_cleanup_oldconf: an existing guest's config becomes `memory: 128`, the
            // disks the archive replaces are freed, its others stay as orphans
            let restored_keys: Vec<String> = devs.iter().map(|d| d.key.clone()).collect();
            if let Some(vm) = st.vms.get_mut(&vmid)
                && vm.config.keys().any(|k| k != "lock")
            {
                let old = std::mem::replace(
                    &mut vm.config,
                    BTreeMap::from([("memory".to_string(), "128".to_string())]),
                );
                vm.pending.clear();
                vm.pending_delete.clear();
                let node = vm.node.clone();
                for (k, v) in old
                    .iter()
                    .filter(|(k, _)| is_drive_key(k) || k.starts_with("unused"))
                {
                    let d = DriveValue::parse(v);
                    if d.is_cdrom() && !d.is_cloudinit() {
                        continue;
                    }
                    if restored_keys.contains(k) || !owned_by(&d.vol, vmid) {
                        continue;
                    }
                    if let Some(vol) = orphan(&st, &node, &d.vol, &d, vmid)
                        && !st.images.iter().any(|i| i.volid == vol.volid)
                    {
                        st.images.push(vol);
                    }
                }
            }
            // allocate
            let mut reserved: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for d in devs.iter_mut() {
                let stype = st
                    .storage(&d.storage)
                    .map(|s| s.stype.clone())
                    .unwrap_or_default();
                let file_based = is_file_storage(&stype);
                let format = if file_based {
                    if ["raw", "qcow2", "vmdk"].contains(&d.format.as_str()) {
                        d.format.clone()
                    } else {
                        "qcow2".into()
                    }
                } else {
                    "raw".into()
                };
                let volname = if d.cloudinit {
                    if file_based {
                        format!("{vmid}/vm-{vmid}-cloudinit.{format}")
                    } else {
                        format!("vm-{vmid}-cloudinit")
                    }
                } else {
                    let r = reserved.entry(d.storage.clone()).or_default();
                    let mut taken = r.clone();
                    let name = new_disk_name(&st, &d.storage, vmid, &mut taken);
                    *r = taken;
                    if file_based {
                        name.replace(".qcow2", &format!(".{format}"))
                    } else {
                        name
                    }
                };
                d.volid = format!("{}:{volname}", d.storage);
                let path = path_of(&st, &d.storage, &volname);
                if file_based {
                    lines.push(if format == "qcow2" {
                        format!(
                            "Formatting '{path}', fmt=qcow2 cluster_size=65536 extended_l2=off preallocation=metadata compression_type=zlib size={} lazy_refcounts=off refcount_bits=16",
                            d.size
                        )
                    } else {
                        format!("Formatting '{path}', fmt={format} size={}", d.size)
                    });
                } else {
                    lines.push(format!(
                        "  Logical volume \"{}\" created.",
                        volname.rsplit('/').next().unwrap_or(&volname)
                    ));
                }
                lines.push(format!("new volume ID is '{}'", d.volid));
                d.format = format.clone();
                let node = self.node.clone();
                if let Some(s) = st.storage(&d.storage) {
                    let v = Volume::new_image(&d.volid, s, &node, format, d.size, vmid);
                    st.images.push(v);
                }
                allocated.push(d.volid.clone());
            }
            for d in devs.iter().filter(|d| !d.cloudinit) {
                let volname = d.volid.split_once(':').map(|x| x.1).unwrap_or("");
                lines.push(format!(
                    "map 'drive-{}' to '{}' (write zeros = 0)",
                    d.key,
                    path_of(&st, &d.storage, volname)
                ));
            }
            if !append_log(&mut st, &self.upid, lines) {
                return Ok(());
            }
        }
        self.pause(0.5 * devs.len() as f64).await;
        // the data
        let total: u64 = devs.iter().filter(|d| !d.cloudinit).map(|d| d.size).sum();
        let data: u64 = devs.iter().filter(|d| !d.cloudinit).map(|d| d.data).sum();
        let zero = total.saturating_sub(data);
        let mut dur = data as f64 / DATA_SPEED + zero as f64 / ZERO_SPEED;
        if let Some(bw) = self.bwlimit {
            dur = dur.max(self.archive_size as f64 / (bw as f64 * 1024.0));
        }
        let dur = dur.max(0.5);
        let stop_at = if self.injected.is_some() { 50 } else { 100 };
        for pct in 1..=stop_at {
            self.pause(dur / 100.0).await;
            let mut st = self.shared.lock();
            let line = format!(
                "progress {pct}% (read {} bytes, duration {} sec)",
                u128::from(total) * pct / 100,
                (dur * pct as f64 / 100.0) as u64
            );
            if !append_log(&mut st, &self.upid, [line]) {
                return Ok(());
            }
        }
        if let Some(e) = &self.injected {
            return Err((allocated, e.clone()));
        }
        let mut st = self.shared.lock();
        let sparse = if total > 0 {
            zero as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let mut lines = vec![
            format!(
                "total bytes read {total}, sparse bytes {zero} ({}%)",
                g3(sparse)
            ),
            format!(
                "space reduction due to 4K zero blocks {}%",
                g3(0.01 + f64::from(vmid % 97) / 1000.0)
            ),
        ];
        // the new config, then `rescan`: orphans of this guest become unused disks
        let map: BTreeMap<String, String> = devs
            .iter()
            .map(|d| (d.key.clone(), d.volid.clone()))
            .collect();
        let mut conf = restored_config(&self.config, &map, self.unique, vmid);
        for (k, v) in &self.overrides {
            conf.insert(k.clone(), v.clone());
        }
        lines.push("rescan volumes...".into());
        let node = self.node.clone();
        let referenced: Vec<String> = conf.values().map(|v| DriveValue::parse(v).vol).collect();
        let orphans: Vec<String> = st
            .images
            .iter()
            .filter(|i| i.vmid == Some(vmid) && i.node.as_deref().is_none_or(|n| n == node))
            .filter(|i| !allocated.contains(&i.volid) && !referenced.contains(&i.volid))
            .map(|i| i.volid.clone())
            .collect();
        let mut n = 0;
        for v in orphans {
            while conf.contains_key(&format!("unused{n}")) {
                n += 1;
            }
            lines.push(format!(
                "VM {vmid} add unreferenced volume '{v}' as 'unused{n}' to config"
            ));
            conf.insert(format!("unused{n}"), v);
        }
        st.images.retain(|i| !allocated.contains(&i.volid));
        let template = conf.get("template").map(String::as_str) == Some("1");
        if template {
            lines.push("Convert to template.".into());
            for (k, v) in conf.iter_mut() {
                if is_drive_key(k) && !DriveValue::parse(v).is_cdrom() {
                    let (head, tail) = match v.rfind('/') {
                        Some(i) if v[..i].contains(':') => v.split_at(i),
                        _ => v.split_at(v.find(':').unwrap_or(0)),
                    };
                    *v = format!(
                        "{head}{}",
                        tail.replacen(
                            &format!("vm-{vmid}-disk-"),
                            &format!("base-{vmid}-disk-"),
                            1
                        )
                    );
                }
            }
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            vm.config = conf;
            vm.pending.clear();
            vm.pending_delete.clear();
            // The restored config replaces the old one whole, snapshot sections included.
            vm.snapshots.clear();
        }
        if self.start && !template {
            lines.push("Execute autostart".into());
            crate::sim::api::qemu::power::power_on(&mut st, vmid);
        }
        finish(
            &mut st,
            &self.upid,
            Outcome::Ok {
                log: lines,
                warnings: 0,
            },
        );
        Ok(())
    }
}

fn owned_by(volid: &str, vmid: u32) -> bool {
    let file = volid.rsplit('/').next().unwrap_or(volid);
    let file = file.split_once(':').map(|x| x.1).unwrap_or(file);
    [format!("vm-{vmid}-"), format!("base-{vmid}-")]
        .iter()
        .any(|p| file.starts_with(p.as_str()))
}

/// A disk left on its storage when the config that referenced it is replaced.
fn orphan(st: &State, node: &str, volid: &str, d: &DriveValue, vmid: u32) -> Option<Volume> {
    let sid = volid.split_once(':')?.0;
    let s = st.storage(sid)?;
    let size = d
        .opt("size")
        .and_then(crate::sim::state::parse_size)
        .or_else(|| st.images.iter().find(|i| i.volid == volid).map(|i| i.size))
        .unwrap_or(0);
    Some(Volume::new_image(
        volid,
        s,
        node,
        volume_format(volid).to_string(),
        size,
        vmid,
    ))
}

/// `restore_update_config_line` over the archived config.
fn restored_config(
    archived: &BTreeMap<String, String>,
    map: &BTreeMap<String, String>,
    unique: bool,
    vmid: u32,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in archived {
        if matches!(k.as_str(), "lock" | "parent") || k.starts_with("unused") {
            continue;
        }
        let mut value = v.clone();
        if is_drive_key(k) {
            let mut d = DriveValue::parse(v);
            if d.opt("backup").is_some_and(|b| b == "0" || b == "no") {
                continue;
            }
            if let Some(new) = map.get(k) {
                d.vol = new.clone();
                d.opts.retain(|o| !o.starts_with("format="));
                value = d.render();
            }
        } else if crate::sim::api::qemu::sdn::is_net_key(k) && unique {
            value = v
                .split(',')
                .map(|p| match p.split_once('=') {
                    Some((model, mac)) if mac.len() == 17 && mac.matches(':').count() == 5 => {
                        format!("{model}={}", new_mac(&format!("{vmid}-{k}-restore")))
                    }
                    _ => p.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
        } else if k == "vmgenid" && v != "0" {
            value = new_uuid(&format!("{vmid}-vmgenid-restore"));
        } else if k == "smbios1" && unique {
            value = v
                .split(',')
                .map(|p| match p.strip_prefix("uuid=") {
                    Some(_) => format!("uuid={}", new_uuid(&format!("{vmid}-smbios-restore"))),
                    None => p.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
        }
        out.insert(k.clone(), value);
    }
    out
}

/// `GET /nodes/{node}/vzdump/extractconfig` (pve-manager `PVE/API2/VZDump.pm`).
pub fn extractconfig(c: &Ctx) -> ApiResult {
    c.validate()?;
    let node = &c.args.node;
    let volume = c.param("volume").unwrap_or("");
    let volid = check_archive_access(c, 0, volume)?;
    if let Some(owner) = volid
        .rsplit('/')
        .next()
        .and_then(parse_archive_name)
        .map(|x| x.0)
    {
        c.require(&format!("/vms/{owner}"), &["VM.Backup"], false)?;
    }
    let shared = |sid: &str| c.st.storage(sid).is_some_and(|s| s.shared);
    let file =
        c.st.files
            .iter()
            .find(|f| f.volid == volid && (shared(&f.storage) || f.node.as_deref() == Some(node)))
            .ok_or_else(|| ApiError::Server(format!("can't find file '{volume}'")))?;
    let config = archive_config(c.st, &volid, file.vmid);
    Ok(Reply::data(json!(render_archive_config(&config))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_g_like_c() {
        assert_eq!(g3(66.6666), "66.7");
        assert_eq!(g3(0.0123), "0.0123");
        assert_eq!(g3(100.0), "100");
        assert_eq!(g3(0.0), "0");
    }

    #[test]
    fn restored_configs_follow_restore_update_config_line() {
        let archived = BTreeMap::from([
            ("lock".to_string(), "backup".to_string()),
            ("unused0".to_string(), "local-lvm:vm-100-disk-9".to_string()),
            (
                "scsi0".to_string(),
                "local-lvm:vm-100-disk-0,format=raw,iothread=1,size=32G".to_string(),
            ),
            (
                "scsi1".to_string(),
                "local-lvm:vm-100-disk-2,backup=0,size=8G".to_string(),
            ),
            (
                "net0".to_string(),
                "virtio=BC:24:11:00:00:01,bridge=vmbr0".to_string(),
            ),
            ("smbios1".to_string(), "uuid=0000".to_string()),
            ("vmgenid".to_string(), "1111".to_string()),
        ]);
        let map = BTreeMap::from([(
            "scsi0".to_string(),
            "nfs-shared:200/vm-200-disk-0.raw".to_string(),
        )]);
        let c = restored_config(&archived, &map, false, 200);
        assert_eq!(
            c["scsi0"],
            "nfs-shared:200/vm-200-disk-0.raw,iothread=1,size=32G"
        );
        assert!(!c.contains_key("scsi1") && !c.contains_key("lock") && !c.contains_key("unused0"));
        assert_eq!(c["net0"], archived["net0"]);
        assert_eq!(c["smbios1"], "uuid=0000");
        assert_ne!(c["vmgenid"], "1111");
        let u = restored_config(&archived, &map, true, 200);
        assert_ne!(u["net0"], archived["net0"]);
        assert!(u["net0"].starts_with("virtio=BC:24:11:") && u["net0"].ends_with(",bridge=vmbr0"));
        assert_ne!(u["smbios1"], "uuid=0000");
    }
}
