//! `/nodes/{node}/qemu/...`: reads, create, clone, config writes, power, snapshots.
//!
//! ## Where a lock stops a request (qemu-server `src/PVE/API2/Qemu.pm`, 2026-08 master)
//!
//! A guest's config `lock` (`check_lock`: "VM is locked (backup)") and the config flock
//! (`lock_config`: "can't lock file '/var/lock/qemu-server/lock-N.conf' - got timeout") are
//! met either before the API forks its worker — an HTTP 500 — or inside the worker — the
//! request returns a UPID and the task ends `stopped` with that exit status and a
//! `TASK ERROR:` log line:
//!
//! | endpoint | lock | flock |
//! |---|---|---|
//! | `PUT`/`POST config` (`update_vm_api`, `$updatefn` under `lock_config` before the fork) | 500 | 500 |
//! | `POST qemu` (create: `create_and_lock_config`) | 500 (newid exists) | 500 |
//! | `POST clone` (`$load_and_check` runs before the fork, again under the flocks) | 500 | task |
//! | `POST template` (`$load_and_check` before the fork) | 500 | task |
//! | `PUT resize` (`$updatefn` runs only in `$worker`) | task | task |
//! | `DELETE` (`$early_checks`: protection, running; `destroy_vm` in the worker; a `suspended` lock is allowed) | task | task |
//! | `status/start` (`vm_start`; a running guest under `backup` is resumed, a `suspended` lock is allowed) | task | task |
//! | `status/stop`, `status/shutdown` (`_do_vm_stop` returns for a stopped guest before `check_lock`) | task | task |
//! | `status/reboot` (`vm_reboot` -> `_do_vm_stop`; "not running" is checked before the fork) | task | task |
//! | `status/suspend` (`RunState::vm_suspend`: `backup` allows a pause; to disk: "cannot suspend to disk during backup") | task | task |
//! | `status/resume` (`RunState::vm_resume`: `backup` allowed) | task | task |
//! | `POST migrate` (`check_lock` before the fork, again in `prepare`; see `migrate.rs`) | 500 | — |
//! | `POST snapshot` (`__snapshot_prepare` runs in the worker; see `snapshot.rs`) | task | task |
//! | `PUT snapshot/{s}/config` (`$updatefn` under `lock_config`, no fork) | 500 | 500 |
//! | `POST snapshot/{s}/rollback` (`snapshot_rollback` in the worker; it stops a running guest) | task | task |
//! | `DELETE snapshot/{s}` (`snapshot_delete`'s `set_lock` in the worker) | task | task |
//! | `POST /nodes/{node}/vzdump` (`set_lock` per guest in the worker: that guest fails, the job ends `job errors`; see `api::backup::vzdump`) | task | task |
//! | `POST qemu` with `archive` + `force` (restore: `create_and_lock_config`; see `api::backup::restore`) | 500 | 500 |
//!
//! `skiplock` (root only) skips `check_lock` wherever it is accepted. A backup that holds the
//! lock for a while: [`crate::sim::SimHandle::hold_backup`] or the scenario's `lock_secs`.

pub(crate) mod clone;
pub(crate) mod create;
pub(crate) mod migrate;
pub(crate) mod power;
pub(crate) mod read;
pub(crate) mod sdn;
pub(crate) mod snapshot;
pub(crate) mod write;
pub(crate) mod write_spec;

use serde_json::json;

use crate::sim::api::WCtx;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::tasks::{NewTask, Outcome, spawn_locked};

/// How long a worker takes to die on a check it makes first (its lock, its flock).
pub const FAIL_FAST_SECS: f64 = 0.2;

/// The message a worker's `die` leaves as the task's exit status.
pub fn worker_error(e: ApiError) -> String {
    match e {
        ApiError::Server(m) | ApiError::Forbidden(m) | ApiError::NotImplemented(m) => m,
        ApiError::Param(errors) => errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        ApiError::NoRoute => "No route to host".into(),
    }
}

/// PVE forked the worker (the request returns its UPID) and the worker died on a check it
/// makes under the config lock: `check_lock`'s "VM is locked (backup)" or the flock's "can't
/// lock file ... - got timeout". The task ends at once with that error and changes nothing.
pub fn failed_worker(c: &mut WCtx, ttype: &str, error: String) -> ApiResult {
    let id = c.args.vmid.clone();
    let user = c.authid().to_string();
    let node = c.args.node.clone();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype,
            id: &id,
            user: &user,
            duration_secs: FAIL_FAST_SECS,
            log: Vec::new(),
        },
        move |_, _| Outcome::Err {
            log: Vec::new(),
            error,
        },
    );
    Ok(Reply::data(json!(upid)))
}
