//! `POST /nodes/{node}/qemu/{vmid}/migrate` and its precondition `GET` (semantics items 20,
//! 21, 23, 25), as qemu-server's `migrate_vm` / `migrate_vm_precondition` (`src/PVE/API2/Qemu.pm`),
//! `PVE::QemuMigrate` and pve-guest-common's `PVE::AbstractMigrate` do them (qemu-server 9.2,
//! pve-guest-common master, 2026).
//!
//! ## Where each check happens
//!
//! Before the fork (HTTP errors), in this order: `target` equal to the node → 400
//! `{"target":"target is local node."}`; no quorum → 500 "cluster not ready - no quorum?"; an
//! unknown target → 500 "no such cluster node 'x'" (an *offline* target passes: the nodelist
//! has its address); `force`, `migration_type`, `migration_network` for anyone but `root@pam`
//! → 400 "Only root may use this option."; the guest not on this node → 500 "Configuration file
//! 'nodes/N/qemu-server/V.conf' does not exist"; a config lock → 500 "VM is locked (backup)";
//! running without `online` → 500 "can't migrate running VM without --online" (stopped with
//! `online=1`: PVE `warn`s in the API daemon's log, never in the task, and migrates offline);
//! `targetstorage` (parse errors → 400 `targetstorage`, `VM.Config.Disk` unless `1`, then per
//! target storage: exists, enabled on the target node, `Datastore.AllocateSpace`, supports
//! images); without a storage map every volume's storage must be enabled on both nodes and
//! hold its content type. An HA-managed guest then gets a `hamigrate` task that only queues
//! the request for the CRM (see `crate::sim::ha`); any other a `qmigrate` task (id = vmid, on
//! the source node).
//!
//! Inside the `qmigrate` worker (the task fails with exit status `migration aborted`): local
//! devices (`hostpci*`/`usb*` without a mapping, `serial*` other than `socket`, `parallel*`,
//! `ivshmem`, `virtiofs*`) — "can't migrate VM which uses local devices: hostpci0" unless
//! `force`; mapped devices (the simulator has no mappings, so they are missing on every node);
//! an offline target ("Can't connect to destination address using public key"); then, after
//! `lock: migrate` is set, the volume scan: attached local disks of a running guest without
//! `with-local-disks`, local ISOs ("local cdrom image"), local linked clones and used base
//! volumes, local disks a snapshot references ("online storage migration not possible if
//! non-replicated snapshot exists", offline "non-migratable snapshot exists" unless qcow2 or
//! ZFS), unsupported local storage types — all reported, then "Problem found while scanning
//! volumes - can't migrate VM - check log".
//!
//! ## Task log lines (the `qmigrate` log grows while the task runs)
//!
//! `TS` is `YYYY-MM-DD HH:MM:SS` (simulated time: the task's start plus simulated seconds, UTC).
//! Lines marked *(bare)* are printed without `TS ` as PVE prints them (`print` in
//! `QemuServer/BlockJob.pm`, `API2/Qemu.pm`). Sizes use pve-common `render_bytes(x, 1)`:
//! `%.1f` and `B|KiB|MiB|GiB|TiB`; durations `render_duration`: `1h 2m 3s`, `0s`.
//!
//! ```text
//! # hamigrate (HA-managed guest; Qemu.pm migrate_vm $hacmd)
//! Requesting HA migration for VM <vmid> to node <target>                           (bare)
//! # qmigrate, prepare (QemuMigrate.pm prepare; running guest without with-conntrack-state)
//! TS conntrack state migration not supported or disabled, active connections might get dropped
//! TS migrating VM which uses local devices                                          (force)
//! # phase 1 (QemuMigrate.pm phase1, scan_local_volumes, sync_offline_local_volumes)
//! TS starting migration of VM <vmid> to node '<target>' (<target ip>)
//! TS found local disk '<volid>' (attached)                                          (or (unused))
//! TS found generated disk '<volid>' (in current VM config)                          (cloud-init, tpmstate)
//! TS can't migrate local disk '<volid>': <reason>
//! TS copying local disk images
//! TS   Logical volume "<name>" created.                                             (lvm/lvmthin target)
//! TS <bytes> bytes (<SI size>, <IEC size>) copied, <s> s, <rate>                    (dd progress, every 3/10/30 s)
//! TS <n>+0 records in
//! TS <n>+0 records out
//! TS <bytes> bytes (<SI size>, <IEC size>) copied, <s.ssss> s, <rate>               (dd summary)
//! TS successfully imported '<new volid>'
//! TS volume '<volid>' is '<new volid>' on the target
//! # phase 2, running guests (QemuMigrate.pm phase2, phase2_start_local_cluster, BlockJob.pm)
//! TS starting VM <vmid> on remote node '<target>'
//! TS volume '<volid>' is '<new volid>' on the target                                (with-local-disks)
//! TS start remote tunnel
//! TS ssh tunnel ver 1
//! TS starting storage migration
//! TS <drive>: start migration to nbd:unix:/run/qemu-server/<vmid>_nbd.migrate:exportname=drive-<drive>
//! drive mirror is starting for drive-<drive>[ with bandwidth limit: <n> KiB/s]      (bare)
//! drive-<drive>: transferred <X> of <Y> (<P.PP>%) in <duration>[, ready]            (bare, each second)
//! all 'mirror' jobs are ready                                                       (bare)
//! TS switching mirror jobs to actively synced mode
//! drive-<drive>: switching to actively synced mode                                  (bare)
//! drive-<drive>: successfully switched to actively synced mode                      (bare)
//! TS starting online/live migration on unix:/run/qemu-server/<vmid>.migrate
//! TS set migration capabilities
//! TS migration speed limit: <X>/s                                                   (bwlimit)
//! TS migration downtime limit: 100 ms
//! TS migration cachesize: <X>
//! TS set migration parameters
//! TS start migrate command to unix:/run/qemu-server/<vmid>.migrate
//! TS migration active, transferred <X> of <Y> VM-state, <S>/s                       (each second)
//! TS average migration speed: <S>/s - downtime <n> ms
//! TS migration completed, transferred <X> VM-state
//! TS migration status: completed
//! all 'mirror' jobs are ready                                                       (bare)
//! drive-<drive>: Completing block job...                                            (bare)
//! drive-<drive>: Completed successfully.                                            (bare)
//! drive-<drive>: mirror-job finished                                                (bare)
//! # phase 3 (QemuMigrate.pm phase3_cleanup) and the end (AbstractMigrate.pm migrate)
//! TS stopping NBD storage migration server on target.
//! TS stopping migration dbus-vmstate helpers                                        (with-conntrack-state)
//! TS migrated <n> conntrack state entries
//! TS flushing conntrack state for guest on source node
//! TS migration finished successfully (duration HH:MM:SS)
//! # failures
//! TS ERROR: <phase 1 error>
//! TS aborting phase 1 - cleanup resources
//! TS ERROR: migration aborted (duration HH:MM:SS): <error>         -> TASK ERROR: migration aborted
//! TS migrate uri => unix:/run/qemu-server/<vmid>.migrate failed: <qmp error>
//! TS migration status error: failed
//! TS ERROR: online migrate failure - aborting
//! TS aborting phase 2 - cleanup resources
//! TS migrate_cancel
//! TS ERROR: migration finished with problems (duration HH:MM:SS)   -> TASK ERROR: migration problems
//! ```
//!
//! Progress lines come once per simulated second as in PVE, but at most ~120 per phase (the
//! interval grows for long transfers). Transfer speeds: guest RAM at 1 GiB/s, disks at
//! 256 MiB/s, or `bwlimit` KiB/s; RAM transferred is what the guest uses (plus 5 % re-sent
//! dirty pages). `SimHandle::fail_next_task(node, "qmigrate", e)` fails the task at its end
//! with `TS ERROR: migration aborted (duration ..): e` and exit status `e` (the injection
//! contract; inject `migration aborted` for PVE's exact exit status): the guest stays on the
//! source, running as before, its lock cleared. On success the guest moves to the target (its
//! run state kept), its local volumes become the target storage's (the `targetstorage`
//! mapping, else the same id; same name when the storage types match) and their usage
//! follows; `lock: migrate` is on the config from phase 1 to the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::sim::api::{Ctx, WCtx};
use crate::sim::guest::{DriveValue, drive_order, missing};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{GIB, MIB, Shared, State, Storage, Vm, is_drive_key, parse_size};
use crate::sim::tasks::{NewTask, Outcome, append_log, finish, register, spawn_locked};
use crate::sim::volumes::{is_file_storage, new_disk_name};

/// Guest RAM transfer speed (bytes/s) without `bwlimit`: a 10 GbE link.
const MEM_SPEED: f64 = GIB as f64;
/// Disk copy and mirror speed (bytes/s) without `bwlimit`.
const DISK_SPEED: f64 = 256.0 * MIB as f64;
/// At most this many progress lines per transfer phase.
const MAX_PROGRESS_LINES: f64 = 120.0;
/// How long a `hamigrate` task takes (it only queues a CRM command).
const HAMIGRATE_SECS: f64 = 1.0;
/// Size of a cloud-init volume PVE allocates.
const CLOUDINIT_SIZE: u64 = 4 * MIB;

/// A migration to start: the API's parameters after permission checks.
pub struct Request {
    pub node: String,
    pub vmid: u32,
    pub target: String,
    pub online: bool,
    pub force: bool,
    pub with_local_disks: bool,
    /// `targetstorage` as given.
    pub storage_map: Option<String>,
    /// KiB/s.
    pub bwlimit: Option<u64>,
    pub conntrack: bool,
    /// Task owner and the identity permission checks use.
    pub user: String,
    /// Called by the HA stack (`$rpcenv->{type} eq 'ha'`): no `hamigrate` redirect.
    pub ha_env: bool,
}

/// `POST /nodes/{node}/qemu/{vmid}/migrate`.
pub fn migrate(c: &mut WCtx) -> ApiResult {
    c.ro()
        .require(&format!("/vms/{}", c.args.vmid), &["VM.Migrate"], false)?;
    c.ro().validate()?;
    let node = c.args.node.clone();
    let target = c.param("target").unwrap_or("").to_string();
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    check_quorum(c.st)?;
    if c.st.node(&target).is_none() {
        return Err(ApiError::Server(format!("no such cluster node '{target}'")));
    }
    if c.authid() != "root@pam" {
        for p in ["force", "migration_type", "migration_network"] {
            let set = if p == "force" {
                c.flag(p)
            } else {
                c.param(p).is_some_and(|v| !v.is_empty())
            };
            if set {
                return Err(ApiError::param(p, "Only root may use this option."));
            }
        }
    }
    let req = Request {
        node,
        vmid: c.vmid(),
        target,
        online: c.flag("online"),
        force: c.flag("force"),
        with_local_disks: c.flag("with-local-disks"),
        storage_map: c.param("targetstorage").map(str::to_string),
        bwlimit: c
            .param("bwlimit")
            .and_then(|b| b.parse::<u64>().ok())
            .filter(|b| *b > 0),
        conntrack: c.flag("with-conntrack-state"),
        user: c.authid().to_string(),
        ha_env: false,
    };
    start(c.shared, c.st, req).map(|upid| Reply::data(json!(upid)))
}

fn check_quorum(st: &State) -> Result<(), ApiError> {
    let online = st.nodes.iter().filter(|n| n.online).count();
    if online * 2 > st.nodes.len() {
        Ok(())
    } else {
        Err(ApiError::Server("cluster not ready - no quorum?".into()))
    }
}

/// `targetstorage` parsed like pve-common `parse_idmap`.
#[derive(Default, Clone, Debug)]
pub struct StorageMap {
    identity: bool,
    default: Option<String>,
    entries: BTreeMap<String, String>,
}

impl StorageMap {
    fn parse(s: &str) -> Result<StorageMap, String> {
        let mut m = StorageMap::default();
        for entry in s.split([',', ';', ' ', '\0']).filter(|e| !e.is_empty()) {
            if entry == "1" {
                m.identity = true;
            } else if let Some((a, b)) = entry.split_once(':') {
                if m.entries.contains_key(a) {
                    return Err(format!("duplicate mapping for source '{a}'"));
                }
                m.entries.insert(a.to_string(), b.to_string());
            } else {
                if m.default.is_some() {
                    return Err("default target ID can only be provided once".into());
                }
                m.default = Some(entry.to_string());
            }
        }
        if m.identity && (m.default.is_some() || !m.entries.is_empty()) {
            return Err("identity mapping cannot be combined with other mappings".into());
        }
        Ok(m)
    }

    /// `map_id`.
    fn map(map: Option<&StorageMap>, sid: &str) -> String {
        let Some(m) = map else {
            return sid.to_string();
        };
        m.entries
            .get(sid)
            .or(m.default.as_ref())
            .cloned()
            .unwrap_or_else(|| sid.to_string())
    }
}

/// `storage_check_enabled`: the storage exists, is not disabled and (with a `nodes` list) is
/// available on `node`.
fn storage_enabled<'a>(st: &'a State, sid: &str, node: &str) -> Result<&'a Storage, String> {
    let s = st
        .storage(sid)
        .ok_or_else(|| format!("storage '{sid}' does not exist"))?;
    if s.props.get("disable").is_some_and(|d| d == "1") {
        return Err(format!("storage '{sid}' is disabled"));
    }
    if let Some(nodes) = s.props.get("nodes")
        && !nodes.split([',', ' ', ';']).any(|n| n == node)
    {
        return Err(format!("storage '{sid}' is not available on node '{node}'"));
    }
    Ok(s)
}

/// One volume of a config as `foreach_volid` sees it.
#[derive(Clone, Debug)]
struct VolRef {
    volid: String,
    key: String,
    cdrom: bool,
    cloudinit: bool,
    unused: bool,
    tpm: bool,
    size: Option<u64>,
}

impl VolRef {
    fn sid(&self) -> Option<&str> {
        self.volid.split_once(':').map(|(s, _)| s)
    }
    fn volname(&self) -> &str {
        self.volid.split_once(':').map(|(_, v)| v).unwrap_or("")
    }
    fn content(&self) -> &'static str {
        if self.volname().starts_with("iso/") {
            "iso"
        } else {
            "images"
        }
    }
}

/// Volumes of the current config (drives, cdroms, `unusedN`), sorted by volid.
fn volumes(vm: &Vm) -> Vec<VolRef> {
    let mut out: BTreeMap<String, VolRef> = BTreeMap::new();
    for (k, v) in &vm.config {
        let unused = k
            .strip_prefix("unused")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_drive_key(k) && !unused {
            continue;
        }
        let d = DriveValue::parse(v);
        if d.vol.is_empty() {
            continue;
        }
        let r = VolRef {
            volid: d.vol.clone(),
            key: k.clone(),
            cdrom: !unused && d.is_cdrom(),
            cloudinit: d.is_cloudinit(),
            unused,
            tpm: k == "tpmstate0",
            size: d.opt("size").and_then(parse_size),
        };
        out.entry(d.vol.clone()).or_insert(r);
    }
    out.into_values().collect()
}

/// `check_local_resources`: (blocking or local resources, mapped ones with their mapping).
fn local_resources(vm: &Vm, running: bool) -> (Vec<String>, BTreeMap<String, String>) {
    let mut loc = Vec::new();
    let mut mapped = BTreeMap::new();
    if running {
        for k in ["amd-sev", "intel-tdx"] {
            if vm.get(k).is_some() {
                loc.push(k.to_string());
            }
        }
    }
    for k in ["hostusb", "hostpci", "ivshmem"] {
        if vm.get(k).is_some() {
            loc.push(k.to_string());
        }
    }
    let indexed = |k: &str, p: &str| {
        k.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    for (k, v) in &vm.config {
        let mapping = v
            .split(',')
            .find_map(|o| o.strip_prefix("mapping="))
            .map(str::to_string);
        if indexed(k, "usb") {
            let host = v
                .split(',')
                .find_map(|o| o.strip_prefix("host="))
                .unwrap_or(v.split(',').next().unwrap_or(""));
            if host.eq_ignore_ascii_case("spice") {
                continue;
            }
            if let Some(m) = &mapping {
                mapped.insert(k.clone(), m.clone());
            }
        }
        if indexed(k, "hostpci")
            && let Some(m) = &mapping
        {
            mapped.insert(k.clone(), m.clone());
            if !running {
                continue;
            }
        }
        if indexed(k, "virtiofs") {
            let dirid = v.split(',').next().unwrap_or("").to_string();
            mapped.insert(k.clone(), dirid);
        }
        if indexed(k, "serial") && v == "socket" {
            continue;
        }
        if ["usb", "hostpci", "serial", "parallel", "virtiofs"]
            .iter()
            .any(|p| indexed(k, p))
        {
            loc.push(k.clone());
        }
    }
    (loc, mapped)
}

/// pve-common `render_bytes($v, 1)`.
pub fn render_bytes(v: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    if v > 1023.0 {
        unit = ((v.ln() / 1024f64.ln()) as usize).min(units.len() - 1);
        v /= 1024f64.powi(unit as i32);
    }
    format!("{v:.1} {}", units[unit])
}

/// pve-common `render_duration`.
pub fn render_duration(secs: f64) -> String {
    let mut rest = secs.round().max(0.0) as u64;
    if rest == 0 {
        return "0s".into();
    }
    let mut out = Vec::new();
    for (unit, len) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        let v = rest / len;
        if v > 0 {
            out.push(format!("{v}{unit}"));
            rest -= v * len;
        }
    }
    out.join(" ")
}

/// `HH:MM:SS` of AbstractMigrate's duration.
fn hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// `strftime("%F %H:%M:%S")` (UTC).
pub fn stamp(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil-from-days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// coreutils `human_readable` as dd prints it: `1.1 GB`, `34 GB`, `1.0 GiB`.
fn dd_human(bytes: f64, iec: bool) -> String {
    let (base, units): (f64, &[&str]) = if iec {
        (1024.0, &["B", "KiB", "MiB", "GiB", "TiB"])
    } else {
        (1000.0, &["B", "kB", "MB", "GB", "TB"])
    };
    let mut v = bytes;
    let mut u = 0;
    while v >= base && u + 1 < units.len() {
        v /= base;
        u += 1;
    }
    if u == 0 {
        format!("{} {}", v.round(), units[0])
    } else if v < 10.0 {
        format!("{:.1} {}", (v * 10.0).round() / 10.0, units[u])
    } else {
        format!("{} {}", v.round(), units[u])
    }
}

/// C's `%g`: six significant digits, trailing zeros dropped.
fn fmt_g(v: f64) -> String {
    let digits = if v > 0.0 { v.log10().floor() as i32 } else { 0 };
    let decimals = (5 - digits).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One moment of the worker: lines written then, and whether it sets `lock: migrate`.
struct Event {
    at: f64,
    lines: Vec<String>,
    lock: bool,
}

/// The worker's log, written against a simulated clock.
struct Script {
    start: i64,
    t: f64,
    events: Vec<Event>,
}

impl Script {
    fn new(start: i64) -> Script {
        Script {
            start,
            t: 0.0,
            events: Vec::new(),
        }
    }
    fn ts(&self) -> String {
        stamp(self.start + self.t as i64)
    }
    fn push(&mut self, line: String) {
        match self.events.last_mut() {
            Some(e) if (e.at - self.t).abs() < 1e-9 => e.lines.push(line),
            _ => self.events.push(Event {
                at: self.t,
                lines: vec![line],
                lock: false,
            }),
        }
    }
    /// `$self->log('info'|'warn', ...)`: each line prefixed with the time.
    fn info(&mut self, msg: &str) {
        for l in msg.trim_end_matches('\n').split('\n') {
            let line = format!("{} {l}", self.ts());
            self.push(line);
        }
    }
    /// `$self->log('err', ...)`.
    fn err(&mut self, msg: &str) {
        for l in msg.trim_end_matches('\n').split('\n') {
            let line = format!("{} ERROR: {l}", self.ts());
            self.push(line);
        }
    }
    /// A bare `print`.
    fn raw(&mut self, msg: &str) {
        self.push(msg.to_string());
    }
    fn wait(&mut self, secs: f64) {
        self.t += secs.max(0.0);
    }
    fn set_lock(&mut self) {
        self.events.push(Event {
            at: self.t,
            lines: Vec::new(),
            lock: true,
        });
    }
    /// Progress ticks over `secs` from now: once a second, at most [`MAX_PROGRESS_LINES`].
    /// The last tick is the first whole step at or after `secs`.
    fn ticks(&self, secs: f64) -> Vec<f64> {
        let step = (secs / MAX_PROGRESS_LINES).ceil().max(1.0);
        let mut out = Vec::new();
        let mut x = step;
        while x < secs {
            out.push(x);
            x += step;
        }
        out.push(x);
        out
    }
}

/// How the worker ends.
enum End {
    /// Decided while planning: the lines before `TASK ERROR` and the exit status.
    Fail { lines: Vec<String>, error: String },
    /// The guest moves (unless an injected failure says otherwise).
    Move {
        target: String,
        running: bool,
        /// (config key, old volid, new volid).
        volmap: Vec<(String, String, String)>,
        ok_lines: Vec<String>,
        /// The error line's prefix time: `TS ERROR: migration aborted (duration ..): `.
        abort_prefix: String,
    },
}

/// A guest migration as the worker will run it.
struct Plan {
    script: Script,
    end_at: f64,
    end: End,
}

struct Volume {
    r: VolRef,
    stype: String,
    /// The target storage's type.
    target_stype: String,
    target_volid: String,
    size: u64,
    /// `online` (mirrored while running) or `offline` (copied in phase 1).
    online: bool,
}

/// Names taken by one migration: disk numbers and volids.
#[derive(Default)]
struct Names {
    reserved: Vec<u32>,
    taken: Vec<String>,
}

/// A new volume name on `target_sid` for `r` (`storage_migrate`'s target volname; a free name
/// when the target node already has one by that name).
fn target_volname(
    st: &State,
    r: &VolRef,
    stype: &str,
    target_sid: &str,
    target_node: &str,
    vmid: u32,
    names: &mut Names,
) -> String {
    let ttype = st
        .storage(target_sid)
        .map(|s| s.stype.clone())
        .unwrap_or_default();
    let volname = r.volname();
    let candidate = if ttype == stype {
        volname.to_string()
    } else {
        let file = volname.rsplit('/').next().unwrap_or(volname);
        let (base, ext) = match file.rsplit_once('.') {
            Some((b, e)) if is_file_storage(stype) => (b, e),
            _ => (file, "raw"),
        };
        if is_file_storage(&ttype) {
            format!("{vmid}/{base}.{ext}")
        } else {
            base.to_string()
        }
    };
    let volid = format!("{target_sid}:{candidate}");
    let shared = st.storage(target_sid).is_some_and(|s| s.shared);
    let used = names.taken.contains(&volid)
        || st
            .vms
            .values()
            .filter(|v| shared || v.node == target_node)
            .any(|v| v.config.values().any(|x| DriveValue::parse(x).vol == volid))
        || st
            .images
            .iter()
            .any(|i| i.volid == volid && (shared || i.node.as_deref() == Some(target_node)));
    let volid = if used && !r.cloudinit {
        format!(
            "{target_sid}:{}",
            new_disk_name(st, target_sid, vmid, &mut names.reserved)
        )
    } else {
        volid
    };
    names.taken.push(volid.clone());
    volid
}

/// dd's `status=progress` output of a storage copy, as `storage_migrate` logs it.
fn storage_copy(s: &mut Script, v: &Volume, speed: f64) {
    let bs: u64 = if matches!(v.stype.as_str(), "lvm" | "lvmthin") {
        64 * 1024
    } else {
        4 * 1024
    };
    let bytes = v.size as f64;
    let secs = (bytes / speed).max(0.05);
    let target_block = matches!(v.target_stype.as_str(), "lvm" | "lvmthin");
    let base = s.t;
    if target_block {
        let name = v.target_volid.split_once(':').map(|(_, n)| n).unwrap_or("");
        s.info(&format!("  Logical volume \"{name}\" created."));
    }
    // `storage_migrate` shows dd's once-a-second lines every 3 s for the first minute, every
    // 10 s up to 10 minutes, then every 30 s
    let mut marks: Vec<u64> = Vec::new();
    let mut x = 3u64;
    while (x as f64) < secs {
        marks.push(x);
        x += if x < 60 {
            3
        } else if x < 600 {
            10
        } else {
            30
        };
    }
    let keep = marks.len().div_ceil(MAX_PROGRESS_LINES as usize).max(1);
    for (i, x) in marks.into_iter().enumerate() {
        if i % keep != keep - 1 {
            continue;
        }
        let x = x as f64;
        let done = (speed * x).min(bytes);
        s.t = base + x;
        s.info(&format!(
            "{} bytes ({}, {}) copied, {} s, {}/s",
            done as u64,
            dd_human(done, false),
            dd_human(done, true),
            x as u64,
            dd_human(done / x, false)
        ));
    }
    s.t = base + secs;
    let records = v.size.div_ceil(bs);
    s.info(&format!("{records}+0 records in"));
    s.info(&format!("{records}+0 records out"));
    s.info(&format!(
        "{} bytes ({}, {}) copied, {} s, {}/s",
        v.size,
        dd_human(bytes, false),
        dd_human(bytes, true),
        fmt_g(secs),
        dd_human(bytes / secs, false)
    ));
    s.info(&format!("successfully imported '{}'", v.target_volid));
    s.info(&format!(
        "volume '{}' is '{}' on the target",
        v.r.volid, v.target_volid
    ));
}

/// Drive mirrors of the attached local disks of a running guest, run side by side.
fn mirror(s: &mut Script, vols: &[&Volume], speed: f64) {
    let mut done: Vec<f64> = vec![0.0; vols.len()];
    let mut ready = vec![false; vols.len()];
    let total: f64 = vols.iter().map(|v| v.size as f64).sum();
    let secs = (total / speed).max(0.1);
    let base = s.t;
    for v in vols {
        s.raw(&format!(
            "drive-{}: transferred {} of {} (0.00%) in 0s",
            v.r.key,
            render_bytes(0.0),
            render_bytes(v.size as f64)
        ));
    }
    let mut last = 0.0;
    for x in s.ticks(secs) {
        // the bandwidth is shared by the jobs still copying
        let mut budget = speed * (x - last);
        last = x;
        while budget > 1e-6 {
            let active: Vec<usize> = (0..vols.len())
                .filter(|i| done[*i] < vols[*i].size as f64)
                .collect();
            if active.is_empty() {
                break;
            }
            let share = budget / active.len() as f64;
            budget = 0.0;
            for i in active {
                let room = vols[i].size as f64 - done[i];
                let take = share.min(room);
                done[i] += take;
                budget += share - take;
            }
        }
        s.t = base + x;
        for (i, v) in vols.iter().enumerate() {
            if ready[i] {
                continue;
            }
            let len = v.size as f64;
            let pct = if len > 0.0 {
                done[i] * 100.0 / len
            } else {
                100.0
            };
            let finished = done[i] >= len;
            s.raw(&format!(
                "drive-{}: transferred {} of {} ({pct:.2}%) in {}{}",
                v.r.key,
                render_bytes(done[i]),
                render_bytes(len),
                render_duration(x),
                if finished { ", ready" } else { "" }
            ));
            ready[i] = finished;
        }
    }
    s.raw("all 'mirror' jobs are ready");
}

fn abort_line(s: &Script, err: &str) -> Vec<String> {
    vec![format!(
        "{} ERROR: migration aborted (duration {}): {err}",
        s.ts(),
        hms(s.t)
    )]
}

/// Builds what the `qmigrate` worker will do and log.
fn plan(st: &State, req: &Request, map: Option<&StorageMap>, start: i64) -> Plan {
    let mut s = Script::new(start);
    let fail = |s: Script, lines: Vec<String>, error: &str| Plan {
        end_at: s.t,
        script: s,
        end: End::Fail {
            lines,
            error: error.to_string(),
        },
    };
    let Some(vm) = st.vms.get(&req.vmid) else {
        let e = format!(
            "Configuration file 'nodes/{}/qemu-server/{}.conf' does not exist",
            req.node, req.vmid
        );
        let lines = abort_line(&s, &e);
        return fail(s, lines, "migration aborted");
    };
    let running = req.online && vm.running;
    let target = req.target.clone();
    let tnode = st.node(&target);
    let tip = tnode.map(|n| n.ip.clone()).unwrap_or_default();
    let target_online = tnode.is_some_and(|n| n.online);
    let speed_mem = req.bwlimit.map_or(MEM_SPEED, |b| (b * 1024) as f64);
    let speed_disk = req.bwlimit.map_or(DISK_SPEED, |b| (b * 1024) as f64);

    // prepare
    s.wait(0.2);
    if running && !req.conntrack {
        s.info("conntrack state migration not supported or disabled, active connections might get dropped");
    }
    let (loc, mapped) = local_resources(vm, running);
    let blocking: Vec<&String> = loc.iter().filter(|r| !mapped.contains_key(*r)).collect();
    let mut vfio_live = false;
    if !blocking.is_empty() {
        if !req.force {
            let e = format!(
                "can't migrate VM which uses local devices: {}",
                blocking
                    .iter()
                    .map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let lines = abort_line(&s, &e);
            return fail(s, lines, "migration aborted");
        }
        s.info("migrating VM which uses local devices");
        vfio_live = running && blocking.iter().any(|r| r.starts_with("hostpci"));
    }
    if !mapped.is_empty() {
        // no resource mappings exist in the simulator: missing on every node
        let e = format!(
            "can't migrate to '{target}': missing mapped devices {}",
            mapped.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        let lines = abort_line(&s, &e);
        return fail(s, lines, "migration aborted");
    }
    let vols = volumes(vm);
    for r in &vols {
        let Some(sid) = r.sid() else { continue };
        let Some(scfg) = st.storage(sid) else {
            continue;
        };
        let tsid = if scfg.shared {
            sid.to_string()
        } else {
            StorageMap::map(map, sid)
        };
        let check = storage_enabled(st, &tsid, &target).and_then(|t| {
            if t.content.iter().any(|c| c == r.content()) {
                Ok(())
            } else {
                Err(format!(
                    "{}: content type '{}' is not available on storage '{tsid}'",
                    r.volid,
                    r.content()
                ))
            }
        });
        if let Err(e) = check {
            let lines = abort_line(&s, &e);
            return fail(s, lines, "migration aborted");
        }
    }
    if !target_online {
        s.wait(3.0);
        let lines = abort_line(&s, "Can't connect to destination address using public key");
        return fail(s, lines, "migration aborted");
    }
    s.wait(0.3);

    // phase 1
    s.info(&format!(
        "starting migration of VM {} to node '{target}' ({tip})",
        req.vmid
    ));
    s.set_lock();
    s.wait(0.2);
    let mut local: Vec<Volume> = Vec::new();
    let mut vol_errors: BTreeMap<String, String> = BTreeMap::new();
    let mut other_errors: Vec<String> = Vec::new();
    let mut names = Names::default();
    for r in &vols {
        if r.volid.starts_with('/') {
            vol_errors.insert(r.volid.clone(), "local file/device".into());
            continue;
        }
        let Some(sid) = r.sid() else {
            if r.volid == "cdrom" {
                other_errors.push("can't migrate local cdrom drive".into());
            }
            continue;
        };
        let Some(scfg) = st.storage(sid) else {
            vol_errors.insert(r.volid.clone(), format!("storage '{sid}' does not exist"));
            continue;
        };
        if scfg.shared {
            continue;
        }
        let tsid = StorageMap::map(map, sid);
        if r.cdrom && !r.cloudinit {
            vol_errors.insert(r.volid.clone(), "local cdrom image".into());
            continue;
        }
        let volname = r.volname();
        if volname.starts_with("base-")
            && st.vms.values().any(|v| {
                v.vmid != req.vmid
                    && v.config
                        .values()
                        .any(|x| x.starts_with(&format!("{}/", r.volid)))
            })
        {
            vol_errors.insert(r.volid.clone(), "referenced by linked clone(s)".into());
            continue;
        }
        let size = r
            .size
            .unwrap_or(if r.cloudinit { CLOUDINIT_SIZE } else { 0 });
        let target_volid = target_volname(st, r, &scfg.stype, &tsid, &target, req.vmid, &mut names);
        let attached = !r.unused && !r.cdrom && !r.tpm;
        local.push(Volume {
            r: r.clone(),
            stype: scfg.stype.clone(),
            target_stype: st
                .storage(&tsid)
                .map(|t| t.stype.clone())
                .unwrap_or_default(),
            target_volid,
            size,
            online: running && attached,
        });
        // a snapshot references it: only ZFS or qcow2 can take snapshots along, offline
        if let Some(e) = crate::sim::snapshot::migration_blocker(vm, &r.volid, &scfg.stype, running)
        {
            vol_errors.insert(r.volid.clone(), e.to_string());
        }
    }
    for v in &local {
        let attached = !v.r.unused && !v.r.cdrom && !v.r.tpm;
        if attached && running && !req.with_local_disks {
            vol_errors.insert(
                v.r.volid.clone(),
                "can't live migrate attached local disks without with-local-disks option".into(),
            );
        }
        if v.r.cloudinit || v.r.tpm {
            s.info(&format!(
                "found generated disk '{}' (in current VM config)",
                v.r.volid
            ));
        } else if v.r.unused {
            s.info(&format!("found local disk '{}' (unused)", v.r.volid));
        } else {
            s.info(&format!("found local disk '{}' (attached)", v.r.volid));
        }
    }
    for (vol, e) in &vol_errors {
        s.info(&format!("can't migrate local disk '{vol}': {e}"));
    }
    for e in &other_errors {
        s.info(e);
    }
    let mut scan_error = (!vol_errors.is_empty() || !other_errors.is_empty())
        .then(|| "Problem found while scanning volumes - can't migrate VM - check log".to_string());
    if scan_error.is_none() {
        for v in &local {
            if !matches!(
                v.stype.as_str(),
                "dir" | "btrfs" | "zfspool" | "lvmthin" | "lvm"
            ) {
                scan_error = Some(format!(
                    "Problem found while scanning volumes - can't migrate '{}' - storage type '{}' not supported",
                    v.r.volid, v.stype
                ));
                break;
            }
            if let Some((base, _)) = v.r.volname().split_once('/')
                && v.r.volname().contains("base-")
            {
                let base = base.rsplit('/').next().unwrap_or(base);
                scan_error = Some(format!(
                    "Problem found while scanning volumes - can't migrate '{}' as it's a clone of '{base}'",
                    v.r.volid
                ));
                break;
            }
        }
    }
    if let Some(e) = scan_error {
        s.err(&e);
        s.info("aborting phase 1 - cleanup resources");
        let lines = abort_line(&s, &e);
        return fail(s, lines, "migration aborted");
    }
    let offline: Vec<&Volume> = local.iter().filter(|v| !v.online).collect();
    if !offline.is_empty() {
        s.info("copying local disk images");
    }
    for v in &offline {
        s.wait(0.3);
        storage_copy(&mut s, v, speed_disk);
    }

    // phase 2
    let online_vols: Vec<&Volume> = {
        let mut o: Vec<&Volume> = local.iter().filter(|v| v.online).collect();
        o.sort_by_key(|v| drive_order(&v.r.key));
        o
    };
    if running {
        s.wait(0.2);
        s.info(&format!(
            "starting VM {} on remote node '{target}'",
            req.vmid
        ));
        s.wait(1.5);
        for v in &online_vols {
            s.info(&format!(
                "volume '{}' is '{}' on the target",
                v.r.volid, v.target_volid
            ));
        }
        s.info("start remote tunnel");
        s.wait(0.3);
        s.info("ssh tunnel ver 1");
        if !online_vols.is_empty() {
            s.info("starting storage migration");
            for v in &online_vols {
                s.info(&format!(
                    "{0}: start migration to nbd:unix:/run/qemu-server/{1}_nbd.migrate:exportname=drive-{0}",
                    v.r.key, req.vmid
                ));
                match req.bwlimit {
                    Some(b) => s.raw(&format!(
                        "drive mirror is starting for drive-{} with bandwidth limit: {b} KiB/s",
                        v.r.key
                    )),
                    None => s.raw(&format!("drive mirror is starting for drive-{}", v.r.key)),
                }
            }
            mirror(&mut s, &online_vols, speed_disk);
            s.info("switching mirror jobs to actively synced mode");
            for v in &online_vols {
                s.raw(&format!(
                    "drive-{}: switching to actively synced mode",
                    v.r.key
                ));
                s.raw(&format!(
                    "drive-{}: successfully switched to actively synced mode",
                    v.r.key
                ));
            }
        }
        let uri = format!("unix:/run/qemu-server/{}.migrate", req.vmid);
        s.info(&format!("starting online/live migration on {uri}"));
        s.info("set migration capabilities");
        if let Some(b) = req.bwlimit {
            s.info(&format!(
                "migration speed limit: {}/s",
                render_bytes((b * 1024) as f64)
            ));
        }
        s.info("migration downtime limit: 100 ms");
        let maxmem = vm.maxmem();
        let cache = (maxmem / 10).max(1).next_power_of_two();
        s.info(&format!(
            "migration cachesize: {}",
            render_bytes(cache as f64)
        ));
        s.info("set migration parameters");
        s.info(&format!("start migrate command to {uri}"));
        if vfio_live {
            s.wait(0.1);
            s.info(&format!(
                "migrate uri => {uri} failed: VM {} qmp command 'migrate' failed - VFIO device doesn't support migration",
                req.vmid
            ));
            s.wait(1.0);
            s.info("migration status error: failed");
            s.err("online migrate failure - aborting");
            s.info("aborting phase 2 - cleanup resources");
            s.info("migrate_cancel");
            s.wait(0.5);
            let lines = vec![format!(
                "{} ERROR: migration finished with problems (duration {})",
                s.ts(),
                hms(s.t)
            )];
            return fail(s, lines, "migration problems");
        }
        let total = maxmem as f64;
        let used = (vm.mem() as f64).max(64.0 * MIB as f64).min(total) * 1.05;
        let secs = (used / speed_mem).max(0.2);
        let base = s.t;
        for x in s.ticks(secs) {
            if x >= secs {
                break;
            }
            s.t = base + x;
            s.info(&format!(
                "migration active, transferred {} of {} VM-state, {}/s",
                render_bytes(speed_mem * x),
                render_bytes(total),
                render_bytes(speed_mem)
            ));
        }
        s.t = base + secs;
        let downtime = 20 + req.vmid % 60;
        s.info(&format!(
            "average migration speed: {}/s - downtime {downtime} ms",
            render_bytes(total / secs.max(1.0))
        ));
        s.info(&format!(
            "migration completed, transferred {} VM-state",
            render_bytes(used)
        ));
        s.info("migration status: completed");
        if !online_vols.is_empty() {
            s.raw("all 'mirror' jobs are ready");
            for v in &online_vols {
                s.raw(&format!("drive-{}: Completing block job...", v.r.key));
                s.raw(&format!("drive-{}: Completed successfully.", v.r.key));
            }
            for v in &online_vols {
                s.raw(&format!("drive-{}: mirror-job finished", v.r.key));
            }
        }
    }

    // phase 3
    s.wait(0.5);
    if running && !online_vols.is_empty() {
        s.info("stopping NBD storage migration server on target.");
    }
    if running && req.conntrack {
        let n = 3 + req.vmid % 40;
        s.info("stopping migration dbus-vmstate helpers");
        s.info(&format!("migrated {n} conntrack state entries"));
        s.info("flushing conntrack state for guest on source node");
    }
    s.wait(0.5);
    let ok_lines = vec![format!(
        "{} migration finished successfully (duration {})",
        s.ts(),
        hms(s.t)
    )];
    let abort_prefix = format!(
        "{} ERROR: migration aborted (duration {}): ",
        s.ts(),
        hms(s.t)
    );
    let volmap = local
        .iter()
        .map(|v| (v.r.key.clone(), v.r.volid.clone(), v.target_volid.clone()))
        .collect();
    Plan {
        end_at: s.t,
        script: s,
        end: End::Move {
            target,
            running,
            volmap,
            ok_lines,
            abort_prefix,
        },
    }
}

/// Starts a migration after the API's early checks; returns the task's UPID.
///
/// # Errors
/// The early errors PVE raises before forking, as [`ApiError`]s.
pub fn start(shared: &Arc<Shared>, st: &mut State, req: Request) -> Result<String, ApiError> {
    let Request { ref node, vmid, .. } = req;
    let vm = st
        .vms
        .get(&vmid)
        .filter(|v| v.node == *node)
        .ok_or_else(|| missing(node, vmid))?;
    if let Some(l) = vm.get("lock") {
        return Err(ApiError::Server(format!("VM is locked ({l})")));
    }
    if vm.running && !req.online {
        return Err(ApiError::Server(
            "can't migrate running VM without --online".into(),
        ));
    }
    let map = match &req.storage_map {
        Some(m) => Some(StorageMap::parse(m).map_err(|e| {
            ApiError::param("targetstorage", format!("failed to parse storage map: {e}"))
        })?),
        None => None,
    };
    let can = |path: &str, privs: &[&str]| st.access.check(&req.user, path, privs, false);
    if let Some(m) = &map {
        if !m.identity && !can(&format!("/vms/{vmid}"), &["VM.Config.Disk"]) {
            return Err(ApiError::perm(&format!("/vms/{vmid}"), "VM.Config.Disk"));
        }
        let targets: Vec<&String> = m.entries.values().chain(m.default.iter()).collect();
        for sid in targets {
            storage_enabled(st, sid, &req.target).map_err(ApiError::Server)?;
            if !can(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"]) {
                return Err(ApiError::perm(
                    &format!("/storage/{sid}"),
                    "Datastore.AllocateSpace",
                ));
            }
            if st
                .storage(sid)
                .is_some_and(|s| !s.content.iter().any(|c| c == "images"))
            {
                return Err(ApiError::Server(format!(
                    "storage '{sid}' does not support vm images"
                )));
            }
        }
    }
    if map.as_ref().is_none_or(|m| m.identity) {
        // `check_storage_availability`: every drive's storage on both nodes
        for r in volumes(vm).iter().filter(|r| !r.unused) {
            let Some(sid) = r.sid() else { continue };
            let scfg = storage_enabled(st, sid, node)
                .and_then(|s| storage_enabled(st, sid, &req.target).map(|_| s))
                .map_err(ApiError::Server)?;
            if !scfg.content.iter().any(|c| c == r.content()) {
                return Err(ApiError::Server(format!(
                    "{}: content type '{}' is not available on storage '{sid}'",
                    r.volid,
                    r.content()
                )));
            }
        }
    }
    let id = vmid.to_string();
    if !req.ha_env && st.ha.is_managed(vmid) {
        let target = req.target.clone();
        let upid = spawn_locked(
            shared,
            st,
            NewTask {
                node,
                ttype: "hamigrate",
                id: &id,
                user: &req.user,
                duration_secs: HAMIGRATE_SECS,
                log: vec![format!(
                    "Requesting HA migration for VM {vmid} to node {target}"
                )],
            },
            move |st, injected| {
                if let Some(error) = injected {
                    return Outcome::Err {
                        log: Vec::new(),
                        error,
                    };
                }
                st.ha.queue(format!("migrate vm:{vmid} {target}"));
                Outcome::Ok {
                    log: Vec::new(),
                    warnings: 0,
                }
            },
        );
        return Ok(upid);
    }
    Ok(run(shared, st, &req, map.as_ref()))
}

/// Registers the `qmigrate` task and drives it: log lines as the simulated clock reaches
/// them, the lock at phase 1, the move (or the failure) at the end.
fn run(shared: &Arc<Shared>, st: &mut State, req: &Request, map: Option<&StorageMap>) -> String {
    let vmid = req.vmid;
    let source = req.node.clone();
    let start_time = crate::sim::state::now();
    // a second migration of the same guest waits for `guest_migration_lock` (10 s) and fails
    let busy = st
        .tasks
        .tasks
        .iter()
        .any(|t| t.running() && t.ttype == "qmigrate" && t.id == vmid.to_string());
    let plan = if busy {
        let mut s = Script::new(start_time);
        s.wait(10.0);
        let e = format!("can't lock file '/var/lock/pve-manager/pve-migrate-{vmid}' - got timeout");
        Plan {
            end_at: s.t,
            end: End::Fail {
                lines: Vec::new(),
                error: e,
            },
            script: s,
        }
    } else {
        plan(st, req, map, start_time)
    };
    let factor = st.faults.factor(&source);
    let Plan {
        script,
        end_at,
        end,
    } = plan;
    let mut events = script.events.into_iter().peekable();
    let mut first = Vec::new();
    let mut lock_now = false;
    while let Some(e) = events.next_if(|e| e.at <= 0.0) {
        first.extend(e.lines);
        lock_now |= e.lock;
    }
    let rest: Vec<Event> = events.collect();
    let id = vmid.to_string();
    let (upid, injected, _) = register(
        shared,
        st,
        NewTask {
            node: &source,
            ttype: "qmigrate",
            id: &id,
            user: &req.user,
            duration_secs: end_at,
            log: first,
        },
    );
    if lock_now {
        set_lock(st, vmid);
    }
    let shared2 = Arc::clone(shared);
    let upid2 = upid.clone();
    let scaled = move |at: f64| shared2.scaled(at * factor);
    let shared3 = Arc::clone(shared);
    tokio::spawn(async move {
        let t0 = Instant::now();
        for e in rest {
            sleep_until(t0 + scaled(e.at)).await;
            let mut st = shared3.lock();
            if !append_log(&mut st, &upid2, e.lines) {
                return;
            }
            if e.lock {
                set_lock(&mut st, vmid);
            }
        }
        sleep_until(t0 + scaled(end_at)).await;
        let mut st = shared3.lock();
        if !st.tasks.find(&upid2).is_some_and(|t| t.running()) {
            return;
        }
        let outcome = complete(&mut st, vmid, &source, end, injected);
        finish(&mut st, &upid2, outcome);
    });
    upid
}

async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        tokio::time::sleep(t - now).await;
    } else {
        tokio::task::yield_now().await;
    }
}

fn set_lock(st: &mut State, vmid: u32) {
    if let Some(vm) = st.vms.get_mut(&vmid)
        && vm.get("lock").is_none()
    {
        vm.config.insert("lock".into(), "migrate".into());
    }
}

fn clear_lock(st: &mut State, vmid: u32) {
    if let Some(vm) = st.vms.get_mut(&vmid)
        && vm.get("lock") == Some("migrate")
    {
        vm.config.remove("lock");
    }
}

/// The worker's end: the move, or the failure (planned or injected).
fn complete(
    st: &mut State,
    vmid: u32,
    source: &str,
    end: End,
    injected: Option<String>,
) -> Outcome {
    match end {
        End::Fail { lines, error } => {
            clear_lock(st, vmid);
            Outcome::Err { log: lines, error }
        }
        End::Move {
            target,
            running,
            volmap,
            ok_lines,
            abort_prefix,
        } => {
            clear_lock(st, vmid);
            if let Some(error) = injected {
                return Outcome::Err {
                    log: vec![format!("{abort_prefix}{error}")],
                    error,
                };
            }
            let Some(vm) = st.vms.get_mut(&vmid).filter(|v| v.node == source) else {
                let e = format!(
                    "Configuration file 'nodes/{source}/qemu-server/{vmid}.conf' does not exist"
                );
                return Outcome::Err {
                    log: vec![format!("{abort_prefix}{e}")],
                    error: "migration aborted".into(),
                };
            };
            for (key, old, new) in &volmap {
                if let Some(v) = vm.config.get_mut(key) {
                    let mut d = DriveValue::parse(v);
                    if d.vol == *old {
                        d.vol = new.clone();
                        *v = d.render();
                    }
                }
            }
            vm.node = target.clone();
            if running && vm.running {
                vm.pid =
                    3000 + (vmid.wrapping_mul(7919) ^ crate::sim::state::now() as u32) % 60_000;
            }
            for (_, old, new) in &volmap {
                for img in st
                    .images
                    .iter_mut()
                    .filter(|i| i.volid == *old && i.node.as_deref() == Some(source))
                {
                    img.volid = new.clone();
                    img.storage = new.split(':').next().unwrap_or("").to_string();
                    img.node = Some(target.clone());
                }
            }
            Outcome::Ok {
                log: ok_lines,
                warnings: 0,
            }
        }
    }
}

/// `GET /nodes/{node}/qemu/{vmid}/migrate` (`migrate_vm_precondition`).
pub fn precondition(c: &Ctx) -> ApiResult {
    c.require(&format!("/vms/{}", c.args.vmid), &["VM.Migrate"], false)?;
    c.validate()?;
    check_quorum(c.st)?;
    let node = &c.args.node;
    let vm = crate::sim::api::qemu::read::lookup(c, node, &c.args.vmid)?;
    if let Some(l) = vm.get("lock") {
        return Err(ApiError::Server(format!("VM is locked ({l})")));
    }
    let running = vm.running;
    let (loc, mapped) = local_resources(vm, running);
    let vols = volumes(vm);
    let mut allowed = Vec::new();
    let mut not_allowed = Map::new();
    // every cluster member but this one, offline ones included (`get_nodelist`)
    for n in c.st.nodes.iter().filter(|n| n.name != *node) {
        let mut info = Map::new();
        let mut unavailable: Vec<String> = vols
            .iter()
            .filter(|r| !r.unused)
            .filter_map(|r| r.sid())
            .filter(|sid| {
                c.st.storage(sid).is_some_and(|s| {
                    s.props.get("disable").is_some_and(|d| d == "1")
                        || s.props
                            .get("nodes")
                            .is_some_and(|l| !l.split([',', ' ', ';']).any(|x| x == n.name))
                })
            })
            .map(str::to_string)
            .collect();
        unavailable.sort();
        unavailable.dedup();
        if !unavailable.is_empty() {
            info.insert("unavailable_storages".into(), json!(unavailable));
        }
        if !mapped.is_empty() {
            info.insert(
                "unavailable-resources".into(),
                json!(mapped.keys().collect::<Vec<_>>()),
            );
        }
        if info.is_empty() {
            allowed.push(n.name.clone());
        }
        not_allowed.insert(n.name.clone(), Value::Object(info));
    }
    let local_disks: Vec<Value> = vols
        .iter()
        .filter(|r| r.volid != "none")
        .filter(|r| {
            r.sid()
                .is_none_or(|sid| c.st.storage(sid).is_none_or(|s| !s.shared))
        })
        .map(|r| {
            let mut m = json!({
                "volid": r.volid, "cdrom": u8::from(r.cdrom), "is_cloudinit": u8::from(r.cloudinit),
                "is_unused": u8::from(r.unused), "is_attached": u8::from(!r.unused),
                "is_vmstate": 0, "is_tpmstate": u8::from(r.tpm), "replicate": 1, "shared": 0,
            });
            if let Some(sz) = r.size {
                m["size"] = json!(sz);
            }
            if is_drive_key(&r.key) {
                m["drivename"] = json!(r.key);
            }
            m
        })
        .collect();
    let info: Map<String, Value> = mapped
        .iter()
        .map(|(k, name)| (k.clone(), json!({ "name": name })))
        .collect();
    let mut res = json!({
        "running": u8::from(running),
        "allowed_nodes": allowed,
        "not_allowed_nodes": not_allowed,
        "local_disks": local_disks,
        "local_resources": loc,
        "mapped-resources": mapped.keys().collect::<Vec<_>>(),
        "mapped-resource-info": info,
        "has-dbus-vmstate": 1,
    });
    if c.st.ha.is_managed(vm.vmid) {
        res["dependent-ha-resources"] = json!([]);
    }
    Ok(Reply::data(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_pve() {
        assert_eq!(render_bytes(0.0), "0.0 B");
        assert_eq!(render_bytes(4.0 * GIB as f64), "4.0 GiB");
        assert_eq!(render_bytes(1536.0 * MIB as f64), "1.5 GiB");
        assert_eq!(render_bytes(112.4 * MIB as f64), "112.4 MiB");
        assert_eq!(render_duration(0.0), "0s");
        assert_eq!(render_duration(62.0), "1m 2s");
        assert_eq!(render_duration(3723.0), "1h 2m 3s");
        assert_eq!(hms(43.7), "00:00:43");
        assert_eq!(fmt_g(275.18412), "275.184");
        assert_eq!(fmt_g(128.0), "128");
        assert_eq!(fmt_g(0.05), "0.05");
        assert_eq!(hms(3725.0), "01:02:05");
        assert_eq!(stamp(0), "1970-01-01 00:00:00");
        assert_eq!(stamp(1_795_140_003), "2026-11-20 02:00:03");
        assert_eq!(dd_human(1_073_741_824.0, false), "1.1 GB");
        assert_eq!(dd_human(1_073_741_824.0, true), "1.0 GiB");
        assert_eq!(dd_human(34_359_738_368.0, false), "34 GB");
    }

    #[test]
    fn storage_maps_parse_like_parse_idmap() {
        let m = StorageMap::parse("local-lvm:nfs-shared").expect("map");
        assert_eq!(StorageMap::map(Some(&m), "local-lvm"), "nfs-shared");
        assert_eq!(StorageMap::map(Some(&m), "other"), "other");
        let m = StorageMap::parse("nfs-shared").expect("default");
        assert_eq!(StorageMap::map(Some(&m), "local-lvm"), "nfs-shared");
        assert!(StorageMap::parse("1").is_ok_and(|m| m.identity));
        assert_eq!(
            StorageMap::parse("1,a").err().as_deref(),
            Some("identity mapping cannot be combined with other mappings")
        );
        assert_eq!(
            StorageMap::parse("a,b").err().as_deref(),
            Some("default target ID can only be provided once")
        );
        assert_eq!(
            StorageMap::parse("a:b,a:c").err().as_deref(),
            Some("duplicate mapping for source 'a'")
        );
    }
}
