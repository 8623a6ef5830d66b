//! Power (`status/start|stop|shutdown|reboot|suspend|resume`), `DELETE .../{vmid}` and the
//! guest agent's `network-get-interfaces`.
//!
//! Where qemu-server checks inside the worker (`vm_start`: template, lock, already running;
//! `vm_stop`: lock), the task fails quickly; where the API handler checks before forking
//! (reboot/suspend/resume of a stopped guest, destroy's protection and running checks), the
//! request fails with a 500.

use std::time::Instant;

use serde_json::json;

use crate::sim::api::WCtx;
use crate::sim::api::qemu::write::apply_pending;
use crate::sim::guest::{check_lock, skiplock, vm_mut};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{State, now};
use crate::sim::tasks::{NewTask, Outcome, spawn_locked};

/// Task durations at time scale 1, in seconds.
const START_SECS: f64 = 3.0;
const STOP_SECS: f64 = 1.0;
const SHUTDOWN_SECS: f64 = 6.0;
const REBOOT_SECS: f64 = 8.0;
/// How long a task takes to fail on a check the worker makes first.
const FAIL_FAST_SECS: f64 = super::FAIL_FAST_SECS;
/// Default `timeout` of shutdown (and of the shutdown half of reboot).
const SHUTDOWN_TIMEOUT: f64 = 180.0;
/// Time from start until the guest agent answers.
pub(crate) const AGENT_DELAY_SECS: f64 = 15.0;

fn err(error: impl Into<String>) -> Outcome {
    Outcome::Err {
        log: Vec::new(),
        error: error.into(),
    }
}

fn ok(log: Vec<String>) -> Outcome {
    Outcome::Ok { log, warnings: 0 }
}

pub(crate) fn power_on(st: &mut State, vmid: u32) {
    if let Some(vm) = st.vms.get_mut(&vmid) {
        vm.running = true;
        vm.paused = false;
        // a guest that never ran in the scenario gets plausible usage figures
        vm.mem_usage = if vm.mem_usage > 0.0 {
            vm.mem_usage
        } else {
            0.3
        };
        vm.cpu_usage = if vm.cpu_usage > 0.0 {
            vm.cpu_usage
        } else {
            0.04
        };
        vm.started_at = now();
        vm.started_instant = Some(Instant::now());
        if vm.get("lock") == Some("suspended") {
            vm.config.remove("lock");
        }
        apply_pending(vm, true);
    }
}

fn power_off(st: &mut State, vmid: u32) {
    if let Some(vm) = st.vms.get_mut(&vmid) {
        vm.running = false;
        vm.paused = false;
        vm.started_instant = None;
        apply_pending(vm, true);
    }
}

/// The flock error a worker meets first when a `flock_timeout` window is open.
fn flock_failure(c: &WCtx) -> Option<String> {
    c.st.faults
        .check_flock(c.vmid())
        .err()
        .map(super::worker_error)
}

/// Spawns a power task on the path's node for the path's guest.
fn power_task<F>(c: &mut WCtx, ttype: &str, secs: f64, log: Vec<String>, work: F) -> ApiResult
where
    F: FnOnce(&mut State, u32) -> Outcome + Send + 'static,
{
    let vmid = c.vmid();
    let node = c.args.node.clone();
    let id = vmid.to_string();
    let user = c.authid().to_string();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype,
            id: &id,
            user: &user,
            duration_secs: secs,
            log,
        },
        move |st, injected| match injected {
            Some(e) => err(e),
            None => work(st, vmid),
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// Permission, validation, skiplock and lookup common to the power endpoints.
fn prepare(c: &mut WCtx) -> Result<bool, ApiError> {
    c.ro()
        .require(&format!("/vms/{}", c.args.vmid), &["VM.PowerMgmt"], false)?;
    c.ro().validate()?;
    let skip = if c.ro().spec_has("skiplock") {
        skiplock(c)?
    } else {
        false
    };
    let node = c.args.node.clone();
    vm_mut(c.st, &node, c.vmid())?;
    Ok(skip)
}

pub fn start(c: &mut WCtx) -> ApiResult {
    let skip = prepare(c)?;
    let vmid = c.vmid();
    if let Some(e) = flock_failure(c) {
        return super::failed_worker(c, "qmstart", e);
    }
    let vm = vm_mut(c.st, &c.args.node.clone(), vmid)?;
    // `vm_start` on a running guest that a backup holds resumes it instead (the backup keeps
    // its QEMU instance running)
    let under_backup = vm.running && vm.get("lock") == Some("backup");
    let early = if vm.is_template() {
        Some("you can't start a vm if it's a template".to_string())
    } else if under_backup {
        None
    } else if let Some(l) = vm.get("lock").filter(|l| !skip && *l != "suspended") {
        Some(format!("VM is locked ({l})"))
    } else if vm.running {
        Some(format!("VM {vmid} already running"))
    } else {
        None
    };
    let cloudinit = vm.config.values().any(|v| v.contains("cloudinit"));
    // a disk removed from its storage while the config names it (`activate_volumes`)
    let early = early.or_else(|| {
        c.st.vms
            .get(&vmid)
            .and_then(|v| crate::sim::snapshot::missing_disk_error(c.st, v))
    });
    let secs = if early.is_some() {
        FAIL_FAST_SECS
    } else {
        START_SECS
    };
    power_task(c, "qmstart", secs, Vec::new(), move |st, vmid| {
        if let Some(e) = early {
            return err(e);
        }
        if under_backup {
            if let Some(vm) = st.vms.get_mut(&vmid) {
                vm.paused = false;
            }
            return ok(Vec::new());
        }
        if st.vms.get(&vmid).is_some_and(|v| v.running) {
            return err(format!("VM {vmid} already running"));
        }
        power_on(st, vmid);
        let log = if cloudinit {
            vec!["generating cloud-init ISO".to_string()]
        } else {
            Vec::new()
        };
        ok(log)
    })
}

pub fn stop(c: &mut WCtx) -> ApiResult {
    let skip = prepare(c)?;
    let vmid = c.vmid();
    let node = c.args.node.clone();
    if c.flag("overrule-shutdown") {
        let ids: Vec<String> =
            c.st.tasks
                .tasks
                .iter()
                .filter(|t| t.running() && t.ttype == "qmshutdown" && t.id == vmid.to_string())
                .filter(|t| t.node == node)
                .map(|t| t.upid.clone())
                .collect();
        for u in ids {
            crate::sim::tasks::finish(c.st, &u, err("interrupted by signal"));
        }
    }
    if let Some(e) = flock_failure(c) {
        return super::failed_worker(c, "qmstop", e);
    }
    let vm = vm_mut(c.st, &node, vmid)?;
    // `_do_vm_stop` returns quietly for a stopped guest before it looks at the lock
    let locked = vm
        .get("lock")
        .filter(|_| !skip && vm.running)
        .map(|l| format!("VM is locked ({l})"));
    let secs = if locked.is_some() {
        FAIL_FAST_SECS
    } else {
        STOP_SECS
    };
    power_task(c, "qmstop", secs, Vec::new(), move |st, vmid| {
        if let Some(e) = locked {
            return err(e);
        }
        // vm_stop returns quietly when the guest is not running
        power_off(st, vmid);
        ok(Vec::new())
    })
}

pub fn shutdown(c: &mut WCtx) -> ApiResult {
    let skip = prepare(c)?;
    let vmid = c.vmid();
    let force = c.flag("forceStop");
    let timeout: f64 = c
        .param("timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or(SHUTDOWN_TIMEOUT);
    let ignores = c.st.faults.ignores_acpi.contains(&vmid);
    let vm = vm_mut(c.st, &c.args.node.clone(), vmid)?;
    let mut stop_instead = false;
    if vm.paused {
        if !force {
            return Err(ApiError::Server("VM is paused - cannot shutdown".into()));
        }
        stop_instead = true;
    }
    let locked = vm
        .get("lock")
        .filter(|_| !skip && vm.running)
        .map(|l| format!("VM is locked ({l})"));
    let running = vm.running;
    if let Some(e) = flock_failure(c) {
        return super::failed_worker(c, "qmshutdown", e);
    }
    let hangs = running && ignores && !stop_instead;
    let secs = match (&locked, running, hangs) {
        (Some(_), _, _) | (None, false, _) => FAIL_FAST_SECS,
        (None, true, true) => timeout,
        (None, true, false) => SHUTDOWN_SECS,
    };
    let log = if stop_instead {
        vec!["VM is paused - stop instead of shutdown".to_string()]
    } else {
        Vec::new()
    };
    power_task(c, "qmshutdown", secs, log, move |st, vmid| {
        if let Some(e) = locked {
            return err(e);
        }
        if hangs && !force {
            return err("VM quit/powerdown failed - got timeout");
        }
        power_off(st, vmid);
        if hangs {
            ok(vec![
                "VM still running - terminating now with SIGTERM".to_string(),
            ])
        } else {
            ok(Vec::new())
        }
    })
}

pub fn reboot(c: &mut WCtx) -> ApiResult {
    prepare(c)?;
    let vmid = c.vmid();
    let ignores = c.st.faults.ignores_acpi.contains(&vmid);
    let timeout: f64 = c
        .param("timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or(SHUTDOWN_TIMEOUT);
    let vm = vm_mut(c.st, &c.args.node.clone(), vmid)?;
    if vm.paused {
        return Err(ApiError::Server("VM is paused - cannot shutdown".into()));
    }
    if !vm.running {
        return Err(ApiError::Server(format!("VM {vmid} not running")));
    }
    let locked = vm.get("lock").map(|l| format!("VM is locked ({l})"));
    if let Some(e) = flock_failure(c) {
        return super::failed_worker(c, "qmreboot", e);
    }
    let secs = match (&locked, ignores) {
        (Some(_), _) => FAIL_FAST_SECS,
        (None, true) => timeout,
        (None, false) => REBOOT_SECS,
    };
    power_task(c, "qmreboot", secs, Vec::new(), move |st, vmid| {
        if let Some(e) = locked {
            return err(e);
        }
        if ignores {
            return err("VM quit/powerdown failed - got timeout");
        }
        power_off(st, vmid);
        power_on(st, vmid);
        ok(Vec::new())
    })
}

pub fn suspend(c: &mut WCtx) -> ApiResult {
    let skip = prepare(c)?;
    let vmid = c.vmid();
    let todisk = c.flag("todisk");
    if todisk {
        c.ro()
            .require(&format!("/vms/{}", c.args.vmid), &["VM.Config.Disk"], false)?;
    }
    if c.param("statestorage").is_some() && !todisk {
        return Err(ApiError::param(
            "statestorage",
            "missing property - 'todisk' is required by 'statestorage'",
        ));
    }
    let vm = vm_mut(c.st, &c.args.node.clone(), vmid)?;
    if !vm.running {
        return Err(ApiError::Server(format!("VM {vmid} not running")));
    }
    // `RunState::vm_suspend`, in the worker: a backup's lock allows a pause, not hibernation
    let backup = vm.get("lock") == Some("backup");
    let in_worker = if backup && todisk {
        Err(ApiError::Server(
            "cannot suspend to disk during backup".into(),
        ))
    } else {
        check_lock(vm, skip || backup)
    };
    // the task is `qmpause` unless it hibernates (`Qemu.pm` `vm_suspend`)
    let ttype = if todisk { "qmsuspend" } else { "qmpause" };
    if let Some(e) = flock_failure(c).or(in_worker.err().map(super::worker_error)) {
        return super::failed_worker(c, ttype, e);
    }
    power_task(c, ttype, 1.0, Vec::new(), move |st, vmid| {
        if let Some(vm) = st.vms.get_mut(&vmid) {
            if todisk {
                vm.running = false;
                vm.paused = false;
                vm.started_instant = None;
                vm.config.insert("lock".into(), "suspended".into());
            } else {
                vm.paused = true;
            }
        }
        ok(Vec::new())
    })
}

pub fn resume(c: &mut WCtx) -> ApiResult {
    let skip = prepare(c)?;
    let vmid = c.vmid();
    let vm = vm_mut(c.st, &c.args.node.clone(), vmid)?;
    let hibernated = vm.get("lock") == Some("suspended");
    if !vm.running && !hibernated {
        return Err(ApiError::Server(format!("VM {vmid} not running")));
    }
    // `RunState::vm_resume`, in the worker: any lock but a backup's stops it
    let in_worker = if hibernated {
        Ok(())
    } else {
        check_lock(vm, skip || vm.get("lock") == Some("backup"))
    };
    if let Some(e) = flock_failure(c).or(in_worker.err().map(super::worker_error)) {
        return super::failed_worker(c, "qmresume", e);
    }
    let secs = if hibernated { START_SECS } else { 0.5 };
    power_task(c, "qmresume", secs, Vec::new(), move |st, vmid| {
        if hibernated {
            power_on(st, vmid);
        } else if let Some(vm) = st.vms.get_mut(&vmid) {
            vm.paused = false;
        }
        ok(Vec::new())
    })
}

pub fn destroy(c: &mut WCtx) -> ApiResult {
    let vmid = c.vmid();
    c.ro()
        .require(&format!("/vms/{}", c.args.vmid), &["VM.Allocate"], false)?;
    c.ro().validate()?;
    let skip = skiplock(c)?;
    let unreferenced = c.flag("destroy-unreferenced-disks");
    let node = c.args.node.clone();
    let vm = vm_mut(c.st, &node, vmid)?;
    // `$early_checks` before the fork: protection and running (`Qemu.pm` `destroy_vm`)
    if vm.get("protection") == Some("1") {
        return Err(ApiError::Server(format!(
            "can't remove VM {vmid} - protection mode enabled"
        )));
    }
    if vm.running {
        return Err(ApiError::Server(format!(
            "VM {vmid} is running - destroy failed"
        )));
    }
    // in the worker, under `lock_config`: the flock, then `check_lock` unless the guest is
    // hibernated (`PVE::QemuServer::destroy_vm`)
    let in_worker = c.st.faults.check_flock(vmid).and_then(|()| {
        let vm = vm_mut(c.st, &node, vmid)?;
        check_lock(vm, skip || vm.get("lock") == Some("suspended"))
    });
    if let Err(e) = in_worker {
        return super::failed_worker(c, "qmdestroy", super::worker_error(e));
    }
    let vm = vm_mut(c.st, &node, vmid)?;
    // destroy_vm marks the config before removing volumes
    vm.config.insert("lock".into(), "destroyed".into());
    let log = vm
        .disks()
        .iter()
        .map(|d| {
            format!(
                "Removing image: 100% complete...done. ({}:{})",
                d.storage, d.volname
            )
        })
        .collect::<Vec<_>>();
    power_task(c, "qmdestroy", 2.0, Vec::new(), move |st, vmid| {
        let gone = st.vms.remove(&vmid);
        // references to volumes freed earlier go with the config
        if let Some(v) = &gone {
            let named: Vec<&String> = v
                .config
                .values()
                .chain(v.snapshots.values().flat_map(|s| s.values()))
                .collect();
            st.freed_volumes.retain(|f| {
                !named
                    .iter()
                    .any(|x| x.split(',').next() == Some(f.as_str()))
            });
        }
        // unused disks go with the guest; other loose images of it only when asked
        let unused: Vec<String> = gone
            .iter()
            .flat_map(|v| v.config.iter())
            .filter(|(k, _)| k.starts_with("unused"))
            .map(|(_, v)| v.clone())
            .collect();
        st.images
            .retain(|f| f.vmid != Some(vmid) || !(unreferenced || unused.contains(&f.volid)));
        if unreferenced {
            let owned = |f: &crate::sim::state::Volume| {
                f.vmid == Some(vmid) && (f.content == "images" || f.content == "rootdir")
            };
            st.files.retain(|f| !owned(f));
        }
        let mut log = log;
        log.push(format!("purging VM {vmid} from related configurations.."));
        ok(log)
    })
}

/// Whether the guest agent of `vm` answers now: running, not paused, the agent enabled in its
/// config, and `delay` (the boot) passed since it started.
pub(crate) fn agent_answers(vm: &crate::sim::state::Vm, delay: std::time::Duration) -> bool {
    vm.running
        && !vm.paused
        && agent_enabled(vm.get("agent"))
        && vm.started_instant.is_none_or(|t| t.elapsed() >= delay)
}

/// Whether the config enables the agent (`agent: 1` or `enabled=1`).
fn agent_enabled(v: Option<&str>) -> bool {
    v.and_then(|a| a.split(',').next())
        .is_some_and(|x| x == "1" || x == "enabled=1")
}

/// The guest's IPv4 on net0: ipconfig0's static address, else a DHCP lease derived from the
/// vmid.
pub(crate) fn guest_ipv4(vmid: u32, ipconfig: Option<&str>) -> (String, u32) {
    let fixed = ipconfig.and_then(|c| {
        c.split(',')
            .find_map(|p| p.strip_prefix("ip="))
            .filter(|ip| *ip != "dhcp")
            .and_then(|ip| ip.split_once('/'))
            .map(|(a, p)| (a.to_string(), p.parse().unwrap_or(24)))
    });
    fixed.unwrap_or_else(|| {
        (
            format!("10.20.{}.{}", (vmid / 250) % 250, vmid % 250 + 2),
            24,
        )
    })
}

/// EUI-64 link-local address from a MAC.
pub(crate) fn link_local(mac: &str) -> String {
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|x| u8::from_str_radix(x, 16).ok())
        .collect();
    if b.len() != 6 {
        return "fe80::1".into();
    }
    format!(
        "fe80::{:x}:{:x}:{:x}:{:x}",
        u16::from(b[0] ^ 2) << 8 | u16::from(b[1]),
        u16::from(b[2]) << 8 | 0xff,
        0xfe00 | u16::from(b[3]),
        u16::from(b[4]) << 8 | u16::from(b[5])
    )
}

pub fn agent_interfaces(c: &mut WCtx) -> ApiResult {
    c.ro().require(
        &format!("/vms/{}", c.args.vmid),
        &["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"],
        true,
    )?;
    c.ro().validate()?;
    let vmid = c.vmid();
    let delay = c.shared.scaled(AGENT_DELAY_SECS);
    let vm = vm_mut(c.st, &c.args.node.clone(), vmid)?;
    if !vm.running {
        return Err(ApiError::Server(format!("VM {vmid} is not running")));
    }
    if !agent_enabled(vm.get("agent")) {
        return Err(ApiError::Server("No QEMU guest agent configured".into()));
    }
    let up = vm.started_instant.is_none_or(|t| t.elapsed() >= delay);
    if !up || vm.paused {
        return Err(ApiError::Server("QEMU guest agent is not running".into()));
    }
    let mac = vm
        .get("net0")
        .and_then(|n| n.split(',').next())
        .and_then(|m| m.split_once('='))
        .map(|(_, mac)| mac.to_lowercase())
        .unwrap_or_else(|| "bc:24:11:00:00:00".into());
    let (ip, prefix) = guest_ipv4(vmid, vm.get("ipconfig0"));
    let result = json!([
        {
            "name": "lo",
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [
                {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}
            ]
        },
        {
            "name": "eth0",
            "hardware-address": mac,
            "ip-addresses": [
                {"ip-address-type": "ipv4", "ip-address": ip, "prefix": prefix},
                {"ip-address-type": "ipv6", "ip-address": link_local(&mac), "prefix": 64}
            ]
        }
    ]);
    Ok(Reply::data(json!({ "result": result })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_addresses() {
        assert_eq!(
            guest_ipv4(1000, Some("ip=10.0.0.5/24,gw=10.0.0.1")),
            ("10.0.0.5".to_string(), 24)
        );
        assert_eq!(guest_ipv4(1000, Some("ip=dhcp")), guest_ipv4(1000, None));
        assert_eq!(link_local("bc:24:11:aa:bb:cc"), "fe80::be24:11ff:feaa:bbcc");
        assert!(agent_enabled(Some("enabled=1,fstrim_cloned_disks=1")));
        assert!(!agent_enabled(Some("0")));
    }
}
