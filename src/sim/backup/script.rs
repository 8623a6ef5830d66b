//! One guest's backup as vzdump runs it (pve-manager `PVE/VZDump.pm` `exec_backup_task`,
//! qemu-server `PVE/VZDump/QemuServer.pm` `prepare`/`assemble`/`archive_vma`): the log lines it
//! prints (prefixed `INFO:`/`ERROR:` by `debugmsg`), when it locks, stops, starts, suspends and
//! resumes the guest, how long it takes, and the archive it leaves — planned against the state
//! when the guest's turn comes, then replayed by the `vzdump` worker (and by the scenario's
//! seeded job runs, which replay it at once).
//!
//! Model: a disk holds as much data as the storage usage model says (`State::storage_used`:
//! a third of an lvmthin volume, half of a file volume, a twentieth of a linked clone); data is
//! read at 300 MiB/s (or `bwlimit`), zero blocks at 2 GiB/s; the archive is the data times the
//! compressor's ratio (zstd 0.42, gzip 0.47, lzo 0.55, none 1.0). Progress lines come as
//! `query_backup_status_loop` prints them: when the percentage changed and more than two
//! seconds passed, at most about a hundred per guest.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::sim::api::qemu::migrate::{render_duration, stamp};
use crate::sim::guest::{DriveValue, drive_order};
use crate::sim::state::{GIB, MIB, State, Volume, is_drive_key, parse_size};

/// Data read speed without `bwlimit` (bytes/s).
pub const DATA_SPEED: f64 = 300.0 * MIB as f64;
/// Speed over zero blocks (bytes/s).
pub const ZERO_SPEED: f64 = 2.0 * GIB as f64;
/// A clean shutdown in stop mode (simulated seconds).
const SHUTDOWN_SECS: f64 = 8.0;
/// Starting the (paused) QEMU for the backup.
const KVM_START_SECS: f64 = 2.0;
/// Where vzdump's per-guest failure injected with `fail_backup_of` strikes (fraction done).
pub const FAIL_AT: f64 = 0.37;

/// The effective vzdump options of one job.
#[derive(Clone, Debug)]
pub struct Options {
    pub storage: String,
    /// `snapshot` (default), `suspend` or `stop`.
    pub mode: String,
    /// `0`, `1`, `gzip`, `lzo`, `zstd`; `None` = `0`.
    pub compress: Option<String>,
    pub notes_template: Option<String>,
    pub protected: bool,
    /// KiB/s.
    pub bwlimit: Option<u64>,
    pub ionice: u32,
    /// Minutes.
    pub stopwait: u64,
    /// `remove` (default 1).
    pub remove: bool,
    /// `prune-backups` of the job, else the storage's (`keep-all=1` in the simulator).
    pub prune: BTreeMap<String, u64>,
    /// `vzdump 100 --storage local ...` as `command_line` prints it.
    pub cmdline: String,
    /// The caller may allocate on the storage (unlimited protected backups).
    pub may_allocate: bool,
}

impl Options {
    /// Whether a retention applies (`keep-all` or nothing positive means keep everything).
    pub fn retention(&self) -> bool {
        self.prune.get("keep-all").copied().unwrap_or(0) == 0
            && self.prune.iter().any(|(k, v)| k != "keep-all" && *v > 0)
    }
}

/// What a moment of the run does besides logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    /// `lock: backup` on the config.
    Lock,
    /// The lock goes (`unlock_vm`).
    Unlock,
    /// QEMU process up (`true`) or gone.
    Running(bool),
    /// Paused (`suspend`, prelaunch) or resumed.
    Paused(bool),
}

#[derive(Clone, Debug)]
pub struct Ev {
    /// Simulated seconds from the guest's turn.
    pub at: f64,
    pub lines: Vec<String>,
    pub act: Act,
}

/// A new archive: the volume and the guest config it holds.
#[derive(Clone)]
pub struct NewArchive {
    pub volume: Volume,
    pub config: BTreeMap<String, String>,
}

/// One guest's planned run.
pub struct GuestRun {
    pub events: Vec<Ev>,
    /// Simulated seconds until the guest is done.
    pub end: f64,
    pub ok: bool,
    pub archive: Option<NewArchive>,
    /// Backups pruned at the end.
    pub pruned: Vec<String>,
}

/// A guest volume as `get_backup_volumes` sees it.
#[derive(Clone, Debug)]
pub struct BackupVolume {
    pub key: String,
    pub volid: String,
    pub size: u64,
    pub included: bool,
    pub reason: String,
}

/// qemu-server `get_backup_volumes`: every non-cdrom drive, included unless `backup=0`, an
/// EFI disk only with OVMF; in `foreach_volume` order.
pub fn backup_volumes(config: &BTreeMap<String, String>) -> Vec<BackupVolume> {
    let mut keys: Vec<&String> = config.keys().filter(|k| is_drive_key(k)).collect();
    keys.sort_by_key(|k| drive_order(k));
    let mut out = Vec::new();
    for k in keys {
        let d = DriveValue::parse(&config[k]);
        if d.is_cdrom() {
            continue;
        }
        let backup = d.opt("backup");
        let mut included = backup.is_none_or(|b| b != "0" && b != "no");
        // qemu-server writes "backup=no" for any explicit `backup` option
        let mut reason = if backup.is_some() {
            "backup=no".to_string()
        } else {
            "backup=yes".to_string()
        };
        if k.starts_with("efidisk") && config.get("bios").map(String::as_str) != Some("ovmf") {
            included = false;
            reason = "efidisk but no OVMF BIOS".into();
        }
        out.push(BackupVolume {
            key: k.clone(),
            volid: d.vol.clone(),
            size: d.opt("size").and_then(parse_size).unwrap_or(0),
            included,
            reason,
        });
    }
    out
}

/// Bytes a guest has written to a volume (the storage usage model).
pub fn used_bytes(st: &State, volid: &str, size: u64) -> u64 {
    let Some((sid, volname)) = volid.split_once(':') else {
        return size / 2;
    };
    if volname.contains("base-") && volname.contains("/vm-") {
        size / 20
    } else if st.storage(sid).is_some_and(|s| s.stype == "lvmthin") {
        size / 3
    } else {
        size / 2
    }
}

/// `checked_volume_format`: qcow2/vmdk by extension, raw otherwise.
pub fn volume_format(volid: &str) -> &'static str {
    if volid.ends_with(".qcow2") {
        "qcow2"
    } else if volid.ends_with(".vmdk") {
        "vmdk"
    } else {
        "raw"
    }
}

/// The archive extension and compression ratio of a `compress` value.
pub fn compressor(compress: Option<&str>) -> (&'static str, f64) {
    match compress {
        Some("1" | "lzo") => (".lzo", 0.55),
        Some("gzip") => (".gz", 0.47),
        Some("zstd") => (".zst", 0.42),
        _ => ("", 1.0),
    }
}

/// pve-common `render_bytes($v, $precision)` (precision 2 when not given).
pub fn render_bytes(v: f64, precision: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    if v > 1023.0 {
        unit = ((v.ln() / 1024f64.ln()) as usize).min(units.len() - 1);
        v /= 1024f64.powi(unit as i32);
    }
    format!("{v:.precision$} {}", units[unit])
}

/// `PVE::VZDump::format_size`: `812KB`, `640MB`, `3.12GB`.
pub fn vzdump_size(size: u64) -> String {
    let kb = size as f64 / 1024.0;
    if kb < 1024.0 {
        return format!("{}KB", kb as u64);
    }
    let mb = kb / 1024.0;
    if mb < 1024.0 {
        return format!("{}MB", mb as u64);
    }
    let gb = mb / 1024.0;
    if gb < 1024.0 {
        return format!("{gb:.2}GB");
    }
    format!("{:.2}TB", gb / 1024.0)
}

/// `PVE::VZDump::format_time`: `HH:MM:SS`.
pub fn hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// `strftime("-%Y_%m_%d-%H_%M_%S")` of an archive name (UTC in the simulator).
pub fn archive_stamp(t: i64) -> String {
    stamp(t)
        .replace('-', "_")
        .replace(' ', "-")
        .replace(':', "_")
}

/// `debugmsg('info', ...)` as the task log shows it.
pub fn info(msg: &str) -> String {
    format!("INFO: {msg}")
}

/// `debugmsg('err', ...)`.
pub fn err(msg: &str) -> String {
    format!("ERROR: {msg}")
}

static ESCAPE_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\\(.)").ok());
static VAR_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\{\{([^\s{}]+)\}\}").ok());

/// `$verify_notes_template`: only `\n`, `\\` and the variables `{{cluster}}`,
/// `{{guestname}}`, `{{node}}`, `{{vmid}}`; the error is the 400's text (positions as PVE
/// computes them: the escape's backslash, the match's end minus the variable's length).
pub fn verify_notes_template(t: &str) -> Result<(), String> {
    if t.contains('\n') {
        return Err("contains a line feed\n".into());
    }
    let chars = |byte: usize| t[..byte].chars().count();
    let mut problems = Vec::new();
    if let Some(re) = ESCAPE_RE.as_ref() {
        for c in re.captures_iter(t) {
            let (Some(all), Some(ch)) = (c.get(0), c.get(1)) else {
                continue;
            };
            if !matches!(ch.as_str(), "n" | "\\") {
                problems.push(format!(
                    "escape sequence '\\{}' at char {}",
                    ch.as_str(),
                    chars(all.start())
                ));
            }
        }
    }
    if let Some(re) = VAR_RE.as_ref() {
        for c in re.captures_iter(t) {
            let (Some(all), Some(var)) = (c.get(0), c.get(1)) else {
                continue;
            };
            let var = var.as_str();
            if !matches!(var, "cluster" | "guestname" | "node" | "vmid") {
                let at = chars(all.end()) - var.chars().count();
                problems.push(format!("variable '{var}' at char {at}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("found unknown: {}\n", problems.join(", ")))
    }
}

/// `$generate_notes`: the template with its variables and escapes resolved.
pub fn generate_notes(t: &str, cluster: &str, guestname: &str, node: &str, vmid: u32) -> String {
    let mut out = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out.replace("{{cluster}}", cluster)
        .replace("{{guestname}}", guestname)
        .replace("{{node}}", node)
        .replace("{{vmid}}", &vmid.to_string())
}

/// The archived config: the guest's, without `lock`, `parent`, `unused*` (pending changes and
/// snapshots are not part of it either).
pub fn archived_config(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "lock" | "parent") && !k.starts_with("unused"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The `qemu-server.conf` inside an archive as `extractconfig` returns it: the description as
/// `#` lines, the keys sorted, then one `#qmdump#map:` line per included disk.
pub fn render_archive_config(config: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    if let Some(d) = config.get("description") {
        for l in d.lines() {
            out.push_str(&format!("#{l}\n"));
        }
    }
    for (k, v) in config.iter().filter(|(k, _)| *k != "description") {
        out.push_str(&format!("{k}: {v}\n"));
    }
    let mut disks: Vec<BackupVolume> = backup_volumes(config)
        .into_iter()
        .filter(|b| b.included)
        .collect();
    disks.sort_by(|a, b| a.key.cmp(&b.key));
    for b in disks {
        let sid = b.volid.split_once(':').map(|x| x.0).unwrap_or("");
        out.push_str(&format!(
            "#qmdump#map:{0}:drive-{0}:{sid}:{1}:\n",
            b.key,
            volume_format(&b.volid)
        ));
    }
    out
}

/// vmid and creation time of a standard archive name (`vzdump-qemu-N-Y_M_D-H_M_S.vma[.ext]`).
pub fn parse_archive_name(name: &str) -> Option<(u32, i64)> {
    let rest = name.strip_prefix("vzdump-qemu-")?;
    let (vmid, rest) = rest.split_once('-')?;
    let vmid = vmid.parse().ok()?;
    let (date, rest) = rest.split_once('-')?;
    let time = rest.get(..8)?;
    let tail = rest.get(8..)?;
    if !matches!(tail, ".vma" | ".vma.zst" | ".vma.gz" | ".vma.lzo") {
        return None;
    }
    let d: Vec<i64> = date.split('_').filter_map(|x| x.parse().ok()).collect();
    let t: Vec<i64> = time.split('_').filter_map(|x| x.parse().ok()).collect();
    let ([y, m, dd], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    Some((
        vmid,
        days_from_civil(*y, *m, *dd) * 86_400 + hh * 3600 + mm * 60 + ss,
    ))
}

pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The bucket of a backup time for one `keep-*` option (`prune_mark_backup_group`).
fn bucket(opt: &str, t: i64) -> String {
    let days = t.div_euclid(86_400);
    let (y, m, d) = super::schedule::civil_from_days(days);
    match opt {
        "keep-last" => t.to_string(),
        "keep-hourly" => format!("{}/{d}/{m}/{y}", t.rem_euclid(86_400) / 3600),
        "keep-daily" => format!("{d}/{m}/{y}"),
        "keep-weekly" => {
            // ISO 8601 week and week-year: the week's Thursday decides
            let monday_based = (days + 3).rem_euclid(7);
            let thursday = days - monday_based + 3;
            let (wy, _, _) = super::schedule::civil_from_days(thursday);
            let week = (thursday - days_from_civil(wy, 1, 1)) / 7 + 1;
            format!("{week}/{wy}")
        }
        "keep-monthly" => format!("{m}/{y}"),
        _ => y.to_string(),
    }
}

/// A backup as pruning sees it.
pub struct PruneEntry {
    pub volid: String,
    pub ctime: i64,
    pub protected: bool,
}

/// `prune_mark_backup_group`: the volids to remove, newest first kept per option.
pub fn prune_marks(entries: &[PruneEntry], keep: &BTreeMap<String, u64>) -> Vec<String> {
    let mut list: Vec<(&PruneEntry, Option<&str>)> = entries
        .iter()
        .map(|e| (e, e.protected.then_some("protected")))
        .collect();
    list.sort_by_key(|e| std::cmp::Reverse(e.0.ctime));
    for opt in [
        "keep-last",
        "keep-hourly",
        "keep-daily",
        "keep-weekly",
        "keep-monthly",
        "keep-yearly",
    ] {
        let count = keep.get(opt).copied().unwrap_or(0) as usize;
        if count == 0 {
            continue;
        }
        let already: std::collections::BTreeSet<String> = list
            .iter()
            .filter(|(_, m)| *m == Some("keep"))
            .map(|(e, _)| bucket(opt, e.ctime))
            .collect();
        let mut newly = std::collections::BTreeSet::new();
        for item in list.iter_mut() {
            let id = bucket(opt, item.0.ctime);
            if item.1.is_some() || already.contains(&id) {
                continue;
            }
            if !newly.contains(&id) {
                if newly.len() >= count {
                    break;
                }
                newly.insert(id);
                item.1 = Some("keep");
            } else {
                item.1 = Some("remove");
            }
        }
    }
    list.into_iter()
        .filter(|(_, m)| m.is_none() || *m == Some("remove"))
        .map(|(e, _)| e.volid.clone())
        .collect()
}

/// The standard-named backups of `vmid` on `sid` as `node` sees them.
pub fn existing_backups(st: &State, node: &str, sid: &str, vmid: u32) -> Vec<PruneEntry> {
    let shared = st.storage(sid).is_some_and(|s| s.shared);
    st.files
        .iter()
        .filter(|f| f.storage == sid && f.content == "backup" && f.vmid == Some(vmid))
        .filter(|f| shared || f.node.as_deref() == Some(node))
        .filter_map(|f| {
            let name = f.volid.rsplit('/').next()?;
            let (_, ctime) = parse_archive_name(name)?;
            Some(PruneEntry {
                volid: f.volid.clone(),
                ctime,
                protected: f.protected,
            })
        })
        .collect()
}

/// What a guest's turn needs to know.
pub struct GuestCtx<'a> {
    pub st: &'a State,
    pub node: &'a str,
    pub vmid: u32,
    pub opts: &'a Options,
    /// Simulated Unix time the guest's turn starts.
    pub start: i64,
    /// The failure injected with `fail_backup_of`.
    pub fail: Option<String>,
    /// The id of QEMU's backup job (`started backup task '<uuid>'`).
    pub uuid: String,
}

/// The script of one run, written against a simulated clock.
struct Plan {
    t: f64,
    events: Vec<Ev>,
}

impl Plan {
    fn push(&mut self, line: String) {
        self.push_act(vec![line], Act::None);
    }
    fn push_act(&mut self, lines: Vec<String>, act: Act) {
        match self.events.last_mut() {
            Some(e) if (e.at - self.t).abs() < 1e-9 && e.act == Act::None && act == Act::None => {
                e.lines.extend(lines)
            }
            _ => self.events.push(Ev {
                at: self.t,
                lines,
                act,
            }),
        }
    }
    fn act(&mut self, act: Act) {
        self.push_act(Vec::new(), act);
    }
    fn wait(&mut self, secs: f64) {
        self.t += secs.max(0.0);
    }
    fn ts(&self, start: i64) -> String {
        stamp(start + self.t as i64)
    }
}

fn failed(mut p: Plan, g: &GuestCtx, error: &str, unlock: bool) -> GuestRun {
    if unlock {
        p.act(Act::Unlock);
    }
    let ts = p.ts(g.start);
    p.push(err(&format!(
        "Backup of VM {} failed - {}",
        g.vmid,
        error.trim_end()
    )));
    p.push(info(&format!("Failed at {ts}")));
    GuestRun {
        end: p.t,
        events: p.events,
        ok: false,
        archive: None,
        pruned: Vec::new(),
    }
}

/// Plans the backup of one guest (`exec_backup_task`).
pub fn plan_guest(g: &GuestCtx) -> GuestRun {
    let mut p = Plan {
        t: 0.0,
        events: Vec::new(),
    };
    let vmid = g.vmid;
    let o = g.opts;
    let Some(vm) = g.st.vms.get(&vmid).filter(|v| v.node == g.node) else {
        return failed(p, g, &format!("unable to find VM '{vmid}'"), false);
    };
    if vm.is_ct() {
        return crate::sim::api::lxc::backup::plan_ct(g, vm);
    }
    if o.mode == "stop" && g.st.ha.request_state(vmid) == Some("started") {
        return failed(
            p,
            g,
            "Cannot execute a backup with stop mode on a HA managed and enabled Service. Use snapshot mode or disable the Service.",
            false,
        );
    }
    let existing = existing_backups(g.st, g.node, &o.storage, vmid);
    let limit: u64 = if o.retention() {
        o.prune
            .iter()
            .filter(|(k, _)| *k != "keep-all")
            .map(|(_, v)| v)
            .sum()
    } else {
        0
    };
    if (limit > 0 && !o.remove) || o.protected {
        let protected = existing.iter().filter(|e| e.protected).count() as u64;
        let count = existing.len() as u64 - protected;
        if o.protected {
            let max =
                g.st.storage(&o.storage)
                    .and_then(|s| s.props.get("max-protected-backups"))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(if o.may_allocate { -1 } else { 5 });
            if max > -1 && protected as i64 >= max {
                return failed(
                    p,
                    g,
                    &format!(
                        "The number of protected backups per guest is limited to {max} on storage '{}'",
                        o.storage
                    ),
                    false,
                );
            }
        } else if count >= limit {
            return failed(
                p,
                g,
                &format!(
                    "There is a max backup limit of {limit} enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups."
                ),
                false,
            );
        }
    }
    let (ext, ratio) = compressor(o.compress.as_deref());
    let name = format!(
        "vzdump-qemu-{vmid}-{}.vma{ext}",
        archive_stamp(g.start + p.t as i64)
    );
    let volid = format!("{}:backup/{name}", o.storage);
    let path =
        crate::sim::api::storage::volume::path_of(g.st, &o.storage, &format!("backup/{name}"));
    let ts = p.ts(g.start);
    p.push(info(&format!("Starting Backup of VM {vmid} (qemu)")));
    p.push(info(&format!("Backup started at {ts}")));
    let running = vm.running;
    let was_paused = vm.paused;
    p.push(info(&format!(
        "status = {}",
        if running { "running" } else { "stopped" }
    )));
    // lock_vm: set_lock under the config flock, check_lock first
    if let Err(e) = g.st.faults.check_flock(vmid) {
        return failed(p, g, &crate::sim::api::qemu::worker_error(e), false);
    }
    if let Some(l) = vm.get("lock") {
        return failed(p, g, &format!("VM is locked ({l})"), false);
    }
    p.act(Act::Lock);
    let mode = if running { o.mode.as_str() } else { "stop" };
    let vols = backup_volumes(&vm.config);
    let prepare = |p: &mut Plan| {
        if let Some(n) = vm.get("name") {
            p.push(info(&format!("VM Name: {n}")));
        }
        for b in &vols {
            if b.included {
                let size = if b.size > 0 {
                    format!(" {}", crate::sim::volumes::format_size(b.size))
                } else {
                    String::new()
                };
                p.push(info(&format!(
                    "include disk '{}' '{}'{size}",
                    b.key, b.volid
                )));
            } else {
                p.push(info(&format!(
                    "exclude disk '{}' '{}' ({})",
                    b.key, b.volid, b.reason
                )));
            }
        }
    };
    if mode == "snapshot" {
        prepare(&mut p);
    }
    p.push(info(&format!("backup mode: {mode}")));
    if let Some(bw) = o.bwlimit.filter(|b| *b > 0) {
        p.push(info(&format!("bandwidth limit: {bw} KiB/s")));
    }
    p.push(info(&format!("ionice priority: {}", o.ionice)));
    let mut stop_time: Option<f64> = None;
    let mut running_now = running;
    match mode {
        "stop" => {
            prepare(&mut p);
            if running {
                p.push(info("stopping virtual guest"));
                stop_time = Some(p.t);
                if g.st.faults.ignores_acpi.contains(&vmid) {
                    let wait = o.stopwait as f64 * 60.0;
                    p.wait(wait);
                    p.push(info("VM quit/powerdown failed"));
                    let e = format!(
                        "command 'qm shutdown {vmid} --skiplock --keepActive --timeout {}' failed: exit code 255",
                        o.stopwait * 60
                    );
                    return failed(p, g, &e, true);
                }
                p.wait(SHUTDOWN_SECS);
                p.act(Act::Running(false));
                running_now = false;
            }
        }
        "suspend" => {
            prepare(&mut p);
            p.push(info("suspending guest"));
            stop_time = Some(p.t);
            p.wait(0.5);
            p.act(Act::Paused(true));
        }
        _ => {}
    }
    for v in vm
        .config
        .iter()
        .filter(|(k, _)| k.starts_with("unused"))
        .map(|(_, v)| v)
    {
        let vol = v.split(',').next().unwrap_or(v);
        p.push(info(&format!(
            "skip unused drive '{vol}' (not included into backup)"
        )));
    }
    if !vm.pending.is_empty() || !vm.pending_delete.is_empty() {
        p.push(info(
            "pending configuration changes found (not included into backup)",
        ));
    }
    p.push(info(&format!("creating vzdump archive '{path}'")));
    let included: Vec<&BackupVolume> = vols.iter().filter(|b| b.included).collect();
    let target: u64 = included.iter().map(|b| b.size).sum();
    let data: u64 = included
        .iter()
        .map(|b| used_bytes(g.st, &b.volid, b.size))
        .sum();
    let zero = target.saturating_sub(data);
    let vm_was_running = running;
    let agent_on = vm
        .get("agent")
        .is_some_and(|a| a.starts_with('1') || a.contains("enabled=1"));
    if included.is_empty() {
        p.push(info("backup contains no disks"));
        p.push(info("starting diskless backup"));
        let out = match ext {
            "" => "exec:cat".to_string(),
            ".zst" => "exec:zstd --threads=1".to_string(),
            ".gz" => "exec:gzip --rsyncable".to_string(),
            _ => "exec:lzop".to_string(),
        };
        let dat = path.trim_end_matches(ext).replace(".vma", ".dat");
        p.push(info(&format!(
            "/usr/bin/vma create -v -c {}/{}.tmp/qemu-server.conf {out} > {dat}",
            path.rsplit_once('/').map(|x| x.0).unwrap_or(""),
            name.trim_end_matches(ext).trim_end_matches(".vma")
        )));
        p.wait(1.0);
    } else {
        if !running_now {
            p.push(info("starting kvm to execute backup task"));
            p.wait(KVM_START_SECS);
            p.act(Act::Running(true));
            p.act(Act::Paused(true));
        }
        let mut froze = false;
        if mode != "stop" && vm_was_running && !was_paused {
            if !agent_on {
                p.push(info(
                    "skipping guest filesystem freeze - disabled in VM options",
                ));
            } else if mode == "suspend" {
                p.push(info(
                    "skipping guest filesystem freeze - agent configured but not running?",
                ));
            } else {
                p.push(info("issuing guest-agent 'fs-freeze' command"));
                froze = true;
            }
        }
        p.push(info("starting backup via QMP command"));
        if froze {
            p.push(info("issuing guest-agent 'fs-thaw' command"));
        }
        p.push(info(&format!("started backup task '{}'", g.uuid)));
        let resume = |p: &mut Plan, stop_time: &mut Option<f64>| {
            if vm_was_running && !was_paused {
                match stop_time.take() {
                    Some(s) => p.push(info(&format!(
                        "resuming VM again after {} seconds",
                        (p.t - s).round() as i64
                    ))),
                    None => p.push(info("resuming VM again")),
                }
                p.act(Act::Paused(false));
            }
        };
        resume(&mut p, &mut stop_time);
        // the transfer
        let speed = match o.bwlimit.filter(|b| *b > 0) {
            Some(bw) => DATA_SPEED.min(bw as f64 * 1024.0),
            None => DATA_SPEED,
        };
        let dur = (data as f64 / speed + zero as f64 / ZERO_SPEED).max(0.5);
        let stop_at = if g.fail.is_some() { FAIL_AT } else { 1.0 };
        let step = (dur / 100.0).ceil().max(3.0);
        let t0 = p.t;
        let (mut last_pct, mut last_x, mut last_time) = (-1i64, 0.0f64, 0.0f64);
        let zero_frac = if target > 0 {
            zero as f64 / target as f64
        } else {
            0.0
        };
        let line_at = |p: &mut Plan, x: f64, elapsed: f64, last_x: f64, last_time: f64| {
            let transferred = target as f64 * x;
            let rbytes = transferred - target as f64 * last_x;
            let wbytes = rbytes * (1.0 - zero_frac);
            let dt = (elapsed - last_time).max(1.0);
            let mbps = |b: f64| {
                if b <= 0.0 {
                    "0 B/s".to_string()
                } else {
                    format!("{}/s", render_bytes((b / dt).floor(), 1))
                }
            };
            let pct = (x * 100.0).floor() as i64;
            p.push(info(&format!(
                "{pct:3}% ({} of {}) in {}, read: {}, write: {}",
                render_bytes(transferred, 1),
                render_bytes(target as f64, 1),
                render_duration(elapsed),
                mbps(rbytes),
                mbps(wbytes)
            )));
            pct
        };
        let mut e = step;
        while e < dur * stop_at {
            p.t = t0 + e;
            let x = e / dur;
            let pct = (x * 100.0).floor() as i64;
            if pct != last_pct {
                last_pct = line_at(&mut p, x, e, last_x, last_time);
                last_x = x;
                last_time = e;
            }
            e += step;
        }
        p.t = t0 + dur * stop_at;
        if let Some(reason) = &g.fail {
            p.push(err(reason));
            p.push(info("aborting backup job"));
            resume(&mut p, &mut None);
            if !vm_was_running {
                p.push(info("stopping kvm after backup task"));
                p.act(Act::Running(false));
            }
            // the cleanup after the error: unlock, then resume a suspended guest
            p.act(Act::Unlock);
            if mode == "suspend" {
                p.push(info("resume vm"));
            }
            return failed(p, g, reason, false);
        }
        if last_pct < 100 {
            line_at(&mut p, 1.0, dur, last_x, last_time);
        }
        if zero > 0 {
            p.push(info(&format!(
                "backup is sparse: {} ({}%) total zero data",
                render_bytes(zero as f64, 2),
                zero * 100 / target.max(1)
            )));
        }
        let secs = dur.floor() as u64;
        if secs > 0 {
            p.push(info(&format!(
                "transferred {} in {secs} seconds ({}/s)",
                render_bytes(target as f64, 2),
                render_bytes((target as f64 / secs as f64).floor(), 1)
            )));
        } else {
            p.push(info(&format!(
                "transferred {} in <1 seconds",
                render_bytes(target as f64, 2)
            )));
        }
        if !vm_was_running {
            p.push(info("stopping kvm after backup task"));
            p.act(Act::Running(false));
        }
    }
    p.wait(1.0);
    let size = (data as f64 * ratio) as u64 + 4096 + u64::from(vmid % 997) * 512;
    p.push(info(&format!("archive file size: {}", vzdump_size(size))));
    let guestname = vm
        .get("name")
        .map(str::to_string)
        .unwrap_or(format!("VM {vmid}"));
    let notes = match o.notes_template.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => {
            p.push(info("adding notes to backup"));
            Some(generate_notes(t, &g.st.cluster, &guestname, g.node, vmid))
        }
        None => None,
    };
    if o.protected {
        p.push(info("marking backup as protected"));
    }
    let ctime = parse_archive_name(&name).map(|x| x.1).unwrap_or(g.start);
    let shared = g.st.storage(&o.storage).is_some_and(|s| s.shared);
    let volume = Volume {
        volid: volid.clone(),
        storage: o.storage.clone(),
        node: (!shared).then(|| g.node.to_string()),
        content: "backup".into(),
        format: format!("vma{ext}"),
        size,
        virtual_size: None,
        vmid: Some(vmid),
        ctime,
        // a notes file holds its first line only (`file_read_firstline`)
        notes: notes.map(|n| n.lines().next().unwrap_or("").to_string()),
        protected: o.protected,
        body: None,
    };
    let mut pruned = Vec::new();
    if o.remove && o.retention() {
        let keepstr = o
            .prune
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        p.push(info(&format!(
            "prune older backups with retention: {keepstr}"
        )));
        let mut entries = existing;
        entries.retain(|e| e.volid != volid);
        entries.push(PruneEntry {
            volid: volid.clone(),
            ctime,
            protected: o.protected,
        });
        pruned = prune_marks(&entries, &o.prune);
        for v in &pruned {
            p.push(info(&format!("removing backup '{v}'")));
        }
        let extra = if pruned.is_empty() {
            ""
        } else {
            " not covered by keep-retention policy"
        };
        p.push(info(&format!("pruned {} backup(s){extra}", pruned.len())));
    }
    p.act(Act::Unlock);
    if mode == "suspend" {
        p.push(info("resume vm"));
    }
    let ts = p.ts(g.start);
    p.push(info(&format!(
        "Finished Backup of VM {vmid} ({})",
        hms(p.t)
    )));
    p.push(info(&format!("Backup finished at {ts}")));
    GuestRun {
        end: p.t,
        events: p.events,
        ok: true,
        archive: Some(NewArchive {
            volume,
            config: archived_config(&vm.config),
        }),
        pruned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_vzdump() {
        assert_eq!(vzdump_size(812 * 1024), "812KB");
        assert_eq!(vzdump_size(640 * MIB), "640MB");
        assert_eq!(vzdump_size(3 * GIB + GIB / 8), "3.12GB");
        assert_eq!(render_bytes(25.125 * GIB as f64, 2), "25.12 GiB");
        assert_eq!(render_bytes(715.0 * MIB as f64, 1), "715.0 MiB");
        assert_eq!(hms(3725.0), "01:02:05");
        assert_eq!(archive_stamp(1_795_140_003), "2026_11_20-02_00_03");
        assert_eq!(
            parse_archive_name("vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst"),
            Some((1000, 1_795_140_003))
        );
        assert_eq!(parse_archive_name("vzdump-qemu-1000-x.vma.zst"), None);
    }

    #[test]
    fn notes_templates_verify_and_expand() {
        assert!(verify_notes_template("{{guestname}} on {{node}}\\n{{vmid}}").is_ok());
        let e = verify_notes_template("{{guest}} \\t").expect_err("unknown");
        assert_eq!(
            e,
            "found unknown: escape sequence '\\t' at char 10, variable 'guest' at char 4\n"
        );
        assert_eq!(
            generate_notes(
                "{{guestname}} ({{cluster}}/{{node}}) \\\\ {{vmid}}",
                "c",
                "web",
                "pve01",
                100
            ),
            "web (c/pve01) \\ 100"
        );
    }

    #[test]
    fn pruning_keeps_the_newest_per_bucket() {
        let day = 86_400;
        let e = |n: i64, p: bool| PruneEntry {
            volid: format!("b{n}"),
            ctime: 1_800_000_000 + n * day,
            protected: p,
        };
        let entries = vec![e(0, false), e(1, true), e(2, false), e(3, false)];
        let keep = BTreeMap::from([("keep-last".to_string(), 2)]);
        assert_eq!(prune_marks(&entries, &keep), vec!["b0".to_string()]);
        let keep = BTreeMap::from([("keep-weekly".to_string(), 1)]);
        let gone = prune_marks(&entries, &keep);
        assert!(!gone.contains(&"b1".to_string()) && !gone.contains(&"b3".to_string()));
    }
}
