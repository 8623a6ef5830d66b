//! Fault injection through [`SimHandle`]: config locks held from outside, flock timeouts,
//! failing the next task of a type, slow nodes and guests that ignore ACPI shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::http::ApiError;
use super::{SimError, SimHandle};

/// Injected faults, kept in the state.
#[derive(Default)]
pub struct Faults {
    /// vmid -> until when taking its config flock times out.
    pub flock_until: BTreeMap<u32, Instant>,
    /// (node, task type) -> errors for the next tasks, oldest first.
    pub fail_next: BTreeMap<(String, String), Vec<String>>,
    /// node -> task duration factor.
    pub slow: BTreeMap<String, f64>,
    pub ignores_acpi: BTreeSet<u32>,
}

impl Faults {
    /// PVE's flock timeout error while a `flock_timeout` window is open for `vmid`.
    pub fn check_flock(&self, vmid: u32) -> Result<(), ApiError> {
        match self.flock_until.get(&vmid) {
            Some(until) if Instant::now() < *until => Err(ApiError::Server(format!(
                "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
            ))),
            _ => Ok(()),
        }
    }
    /// Takes the injected error for the next task of `ttype` on `node`, if any.
    pub fn take_failure(&mut self, node: &str, ttype: &str) -> Option<String> {
        let key = (node.to_string(), ttype.to_string());
        let list = self.fail_next.get_mut(&key)?;
        let e = (!list.is_empty()).then(|| list.remove(0));
        if list.is_empty() {
            self.fail_next.remove(&key);
        }
        e
    }
    pub fn factor(&self, node: &str) -> f64 {
        self.slow.get(node).copied().unwrap_or(1.0)
    }
}

impl SimHandle {
    /// Fault injection: sets the config `lock` of `vmid` (as a backup or migration running
    /// elsewhere would) until [`SimHandle::release_lock`].
    ///
    /// # Errors
    /// [`SimError::UnknownVm`] if there is no such guest.
    pub fn hold_lock(&self, vmid: u32, lock: &str) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        let vm = st.vms.get_mut(&vmid).ok_or(SimError::UnknownVm(vmid))?;
        vm.config.insert("lock".into(), lock.to_string());
        Ok(())
    }

    /// Clears the config `lock` of `vmid`, whatever set it.
    ///
    /// # Errors
    /// [`SimError::UnknownVm`] if there is no such guest.
    pub fn release_lock(&self, vmid: u32) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        let vm = st.vms.get_mut(&vmid).ok_or(SimError::UnknownVm(vmid))?;
        vm.config.remove("lock");
        Ok(())
    }

    /// Like [`SimHandle::hold_lock`], released by itself after `dur` of real time (unless the
    /// lock changed meanwhile). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`SimError::UnknownVm`] if there is no such guest, [`SimError::NoRuntime`] outside a
    /// tokio runtime.
    pub fn hold_lock_for(&self, vmid: u32, lock: &str, dur: Duration) -> Result<(), SimError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| SimError::NoRuntime)?;
        self.hold_lock(vmid, lock)?;
        let shared = std::sync::Arc::clone(&self.shared);
        let lock = lock.to_string();
        rt.spawn(async move {
            tokio::time::sleep(dur).await;
            let mut st = shared.lock();
            if let Some(vm) = st.vms.get_mut(&vmid)
                && vm.get("lock") == Some(lock.as_str())
            {
                vm.config.remove("lock");
            }
        });
        Ok(())
    }

    /// A backup of `vmid` running for `secs` simulated seconds (× time scale): the guest gets
    /// `lock: backup` and a `vzdump` task runs on its node; when the task ends (OK, with
    /// vzdump's log lines) the lock goes, unless something else changed it meanwhile.
    ///
    /// # Errors
    /// [`SimError::UnknownVm`] if there is no such guest, [`SimError::NoRuntime`] outside a
    /// tokio runtime.
    pub fn hold_backup(&self, vmid: u32, secs: f64) -> Result<String, SimError> {
        tokio::runtime::Handle::try_current().map_err(|_| SimError::NoRuntime)?;
        let mut st = self.shared.lock();
        if !st.vms.contains_key(&vmid) {
            return Err(SimError::UnknownVm(vmid));
        }
        Ok(start_backup(&self.shared, &mut st, vmid, secs))
    }

    /// For `dur` of real time, taking the config flock of `vmid` times out with "can't lock
    /// file '/var/lock/qemu-server/lock-N.conf' - got timeout": as a 500 where PVE takes it
    /// before forking (config writes, create), as the task's error where the worker takes it
    /// (clone, template, resize, destroy, power actions).
    pub fn flock_timeout(&self, vmid: u32, dur: Duration) {
        let mut st = self.shared.lock();
        st.faults.flock_until.insert(vmid, Instant::now() + dur);
    }

    /// The next task of `task_type` (`qmclone`, `qmstart`, ...) started on `node` ends with
    /// `TASK ERROR: <error>` after its usual duration and log lines, undoing what PVE undoes
    /// (a failed clone removes the half-created guest). Calls queue up.
    pub fn fail_next_task(&self, node: &str, task_type: &str, error: &str) {
        let mut st = self.shared.lock();
        st.faults
            .fail_next
            .entry((node.to_string(), task_type.to_string()))
            .or_default()
            .push(error.to_string());
    }

    /// Multiplies the duration of tasks started on `node` from now on (1.0 = normal).
    pub fn slow_node(&self, node: &str, factor: f64) {
        let mut st = self.shared.lock();
        let f = if factor.is_finite() && factor >= 0.0 {
            factor
        } else {
            1.0
        };
        st.faults.slow.insert(node.to_string(), f);
    }

    /// Whether the guest ignores ACPI shutdown requests (the scenario's `ignores_acpi`).
    pub fn set_guest_ignores_acpi(&self, vmid: u32, ignores: bool) {
        let mut st = self.shared.lock();
        if ignores {
            st.faults.ignores_acpi.insert(vmid);
        } else {
            st.faults.ignores_acpi.remove(&vmid);
        }
    }
}

/// Puts `lock: backup` on `vmid` and runs the `vzdump` task that clears it after `secs`
/// (× time scale). Returns the task's UPID.
pub(crate) fn start_backup(
    shared: &std::sync::Arc<super::state::Shared>,
    st: &mut super::state::State,
    vmid: u32,
    secs: f64,
) -> String {
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return String::new();
    };
    vm.config.insert("lock".into(), "backup".into());
    let node = vm.node.clone();
    let id = vmid.to_string();
    super::tasks::spawn_locked(
        shared,
        st,
        super::tasks::NewTask {
            node: &node,
            ttype: "vzdump",
            id: &id,
            user: "root@pam",
            duration_secs: secs,
            log: vec![
                format!("INFO: starting new backup job: vzdump {vmid} --mode snapshot"),
                format!("INFO: Starting Backup of VM {vmid} (qemu)"),
            ],
        },
        move |st, injected| {
            if let Some(vm) = st.vms.get_mut(&vmid)
                && vm.get("lock") == Some("backup")
            {
                vm.config.remove("lock");
            }
            match injected {
                Some(error) => super::tasks::Outcome::Err {
                    log: Vec::new(),
                    error,
                },
                None => super::tasks::Outcome::Ok {
                    log: vec![
                        format!("INFO: Finished Backup of VM {vmid}"),
                        "INFO: Backup job finished successfully".into(),
                    ],
                    warnings: 0,
                },
            }
        },
    )
}
