//! vzdump of a container (pve-manager `PVE/VZDump/LXC.pm`): `lock: backup` while it runs, a
//! storage snapshot `vzdump` in snapshot mode (suspend mode where a volume has no snapshot
//! support; stop mode stops and restarts a running container), bind and device mount points
//! left out, and a `vzdump-lxc-<vmid>-<YYYY_MM_DD-HH_MM_SS>.tar[.zst|.gz|.lzo]` archive holding
//! the container's config (for restore).

use crate::sim::api::qemu::migrate::stamp;
use crate::sim::backup::script::{
    Act, Ev, GuestCtx, GuestRun, NewArchive, archive_stamp, archived_config, compressor, err, info,
    vzdump_size,
};
use crate::sim::lxc::{MountPoint, MpType, is_volume_key};
use crate::sim::snapshot::snapshot_supported;
use crate::sim::state::{Vm, Volume};

/// Data read speed (bytes/s).
const SPEED: f64 = 300.0 * 1024.0 * 1024.0;

struct Plan {
    t: f64,
    events: Vec<Ev>,
}

impl Plan {
    fn push(&mut self, line: String) {
        self.events.push(Ev {
            at: self.t,
            lines: vec![line],
            act: Act::None,
        });
    }
    fn act(&mut self, act: Act) {
        self.events.push(Ev {
            at: self.t,
            lines: Vec::new(),
            act,
        });
    }
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

fn failed(mut p: Plan, vmid: u32, start: i64, error: &str, unlock: bool) -> GuestRun {
    if unlock {
        p.act(Act::Unlock);
    }
    p.push(err(&format!("Backup of VM {vmid} failed - {error}")));
    p.push(info(&format!("Failed at {}", stamp(start + p.t as i64))));
    GuestRun {
        end: p.t,
        events: p.events,
        ok: false,
        archive: None,
        pruned: Vec::new(),
    }
}

/// Plans the backup of container `vm` (`exec_backup_task` with the LXC plugin).
pub fn plan_ct(g: &GuestCtx, vm: &Vm) -> GuestRun {
    let mut p = Plan {
        t: 0.0,
        events: Vec::new(),
    };
    let vmid = g.vmid;
    let o = g.opts;
    let (ext, ratio) = compressor(o.compress.as_deref());
    let name = format!("vzdump-lxc-{vmid}-{}.tar{ext}", archive_stamp(g.start));
    let volid = format!("{}:backup/{name}", o.storage);
    let path =
        crate::sim::api::storage::volume::path_of(g.st, &o.storage, &format!("backup/{name}"));
    p.push(info(&format!("Starting Backup of VM {vmid} (lxc)")));
    p.push(info(&format!("Backup started at {}", stamp(g.start))));
    let running = vm.running;
    p.push(info(&format!(
        "status = {}",
        if running { "running" } else { "stopped" }
    )));
    if let Some(l) = vm.get("lock") {
        return failed(p, vmid, g.start, &format!("CT is locked ({l})"), false);
    }
    p.act(Act::Lock);
    p.push(info(&format!("CT Name: {}", vm.name())));
    let mut keys: Vec<&String> = vm.config.keys().filter(|k| is_volume_key(k)).collect();
    keys.sort_by_key(|k| {
        (
            k.as_str() != "rootfs",
            k.trim_start_matches("mp").parse::<u32>().unwrap_or(0),
        )
    });
    let mut data = 0u64;
    let mut snapshot_ok = true;
    let mut lvs = Vec::new();
    for k in keys {
        let Ok(m) = MountPoint::parse(vm.get(k).unwrap_or("")) else {
            continue;
        };
        let mp = if k == "rootfs" {
            "/".to_string()
        } else {
            m.opt("mp").unwrap_or("").to_string()
        };
        match m.kind() {
            MpType::Volume if k == "rootfs" || m.opt("backup") == Some("1") => {
                p.push(info(&format!(
                    "including mount point {k} ('{mp}') in backup"
                )));
                let size = m
                    .opt("size")
                    .and_then(crate::sim::state::parse_size)
                    .unwrap_or(0);
                data += size / 3;
                let (sid, vname) = m.volume.split_once(':').unwrap_or(("", ""));
                let stype = g.st.storage(sid).map(|s| s.stype.as_str()).unwrap_or("");
                snapshot_ok &= snapshot_supported(stype, vname);
                lvs.push(vname.rsplit('/').next().unwrap_or(vname).to_string());
            }
            MpType::Volume => p.push(info(&format!(
                "excluding volume mount point {k} ('{mp}') from backup (disabled)"
            ))),
            MpType::Bind => p.push(info(&format!(
                "excluding bind mount point {k} ('{mp}') from backup (not a volume)"
            ))),
            MpType::Device => p.push(info(&format!(
                "excluding device mount point {k} ('{mp}') from backup (not a volume)"
            ))),
        }
    }
    let mut mode = if running {
        o.mode.clone()
    } else {
        "stop".into()
    };
    if mode == "snapshot" && !snapshot_ok {
        p.push(info("mode failure - some volumes do not support snapshots"));
        p.push(info("trying 'suspend' mode instead"));
        mode = "suspend".into();
    }
    p.push(info(&format!("backup mode: {mode}")));
    p.push(info(&format!("ionice priority: {}", o.ionice)));
    let secs = (data as f64 / SPEED).max(2.0);
    match mode.as_str() {
        "snapshot" => {
            p.push(info("create storage snapshot 'vzdump'"));
            for lv in &lvs {
                p.push(format!("  Logical volume \"snap_{lv}_vzdump\" created."));
            }
        }
        "suspend" => {
            p.push(info(
                "starting first sync /proc/0/root/ to /var/tmp/vzdumptmp",
            ));
            p.t += secs;
            p.push(info("first sync finished"));
            p.push(info("suspending guest"));
            p.push(info(
                "starting final sync /proc/0/root/ to /var/tmp/vzdumptmp",
            ));
            p.t += 1.0;
            p.push(info("final sync finished"));
            p.push(info("resuming guest"));
        }
        _ if running => {
            p.push(info("stopping virtual guest"));
            p.t += 3.0;
            p.act(Act::Running(false));
        }
        _ => {}
    }
    if let Some(f) = &g.fail {
        p.t += secs * crate::sim::backup::script::FAIL_AT;
        return failed(p, vmid, g.start, f, true);
    }
    p.push(info(&format!("creating vzdump archive '{path}'")));
    p.t += secs;
    p.push(info(&format!(
        "Total bytes written: {data} ({:.1}GiB, {:.0}MiB/s)",
        data as f64 / (1u64 << 30) as f64,
        data as f64 / secs / (1u64 << 20) as f64
    )));
    if mode == "stop" && running {
        p.push(info("restarting vm"));
        p.act(Act::Running(true));
    }
    let size = (data as f64 * ratio) as u64 + 10_240 + u64::from(vmid % 997) * 512;
    p.push(info(&format!("archive file size: {}", vzdump_size(size))));
    if mode == "snapshot" {
        p.push(info("cleanup temporary 'vzdump' snapshot"));
        for lv in &lvs {
            p.push(format!(
                "  Logical volume \"snap_{lv}_vzdump\" successfully removed."
            ));
        }
    }
    let notes = o
        .notes_template
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| {
            p.push(info("adding notes to backup"));
            crate::sim::backup::script::generate_notes(t, &g.st.cluster, &vm.name(), g.node, vmid)
        });
    if o.protected {
        p.push(info("marking backup as protected"));
    }
    p.act(Act::Unlock);
    p.push(info(&format!(
        "Finished Backup of VM {vmid} ({})",
        hms(p.t)
    )));
    p.push(info(&format!(
        "Backup finished at {}",
        stamp(g.start + p.t as i64)
    )));
    let shared = g.st.storage(&o.storage).is_some_and(|s| s.shared);
    let volume = Volume {
        volid,
        storage: o.storage.clone(),
        node: (!shared).then(|| g.node.to_string()),
        content: "backup".into(),
        format: format!("tar{ext}"),
        size,
        virtual_size: None,
        vmid: Some(vmid),
        ctime: g.start,
        notes: notes.map(|n| n.lines().next().unwrap_or("").to_string()),
        protected: o.protected,
        body: None,
    };
    let mut config = archived_config(&vm.config);
    config.remove("lock");
    GuestRun {
        end: p.t,
        events: p.events,
        ok: true,
        archive: Some(NewArchive { volume, config }),
        pruned: Vec::new(),
    }
}
