//! `/nodes/{node}/lxc...` and `/nodes/{node}/aplinfo` as pve-container's `API2/LXC.pm`,
//! `LXC/Config.pm`, `LXC/Status.pm`, `LXC/Snapshot.pm` and pve-manager's `API2/Nodes.pm`
//! (aplinfo) answer them. The model is `crate::sim::lxc`: containers are guests of kind `Lxc`.
//!
//! ## Early errors (HTTP) and task errors
//!
//! | endpoint | before the fork | in the worker |
//! |---|---|---|
//! | `POST lxc` (create) | 400 params; 403 `Sys.Modify` on `/` for a privileged CT, `VM.Allocate`, per-key `VM.Config.*`, `SDN.Use`, `Datastore.AllocateSpace`; 403 "mount point type bind is only allowed for root@pam"; 400 `storage`: "storage 'x' does not support container directories"; 500 "CT N already exists on node 'x'" | "unable to create CT N - volume 'x' does not exist" (config removed) |
//! | `POST lxc` (restore=1) | as create; `force` on an existing CT: "can't overwrite running container", "unable to restore CT N - protection mode enabled" | "unable to restore CT N - ..." |
//! | `PUT config` | "no options specified"; 400 `delete`/`revert`; "CT is locked (x)"; digest; "unable to modify read-only option: 'unprivileged'"; "unable to delete required option 'x'"; "can't update CT N drive 'mpX' - protection mode enabled" | — (synchronous, returns null) |
//! | `PUT resize` | "CT is locked (x)"; "unable to shrink disk size"; "disk is already at specified size" | — |
//! | `POST status/start` | "CT N already running" | "you can't start a CT if it's a template"; "CT is locked (x)" |
//! | `POST status/stop`, `shutdown`, `reboot` | "CT N not running" (reboot: "VM N not running") | "CT is locked (x)"; shutdown without `forceStop` past `timeout`: "container did not stop" |
//! | `POST status/suspend`, `resume` (CRIU `lxc-checkpoint`, experimental in PVE) | "CT N not running" / "CT N already running" | suspend: "CT is locked (x)"; resume without a checkpoint: "command 'lxc-checkpoint -n N -r --foreground -D /var/lib/vz/dump' failed: exit code 1" |
//! | `POST template` | "CT is locked (x)"; "you can't convert a template to a template"; "you can't convert a CT to template if the CT is running"; "unable to create template, because CT contains snapshots" | — (returns null, a `vztemplate` task runs) |
//! | `POST migrate` | 400 `target`: "target is local node."; "no such cluster node 'x'"; "can't migrate running container without --online or --restart" | "migration aborted" after `ERROR: migration aborted (duration ..): <reason>`: "lxc live migration is currently not implemented", "cannot migrate local bind mount point 'mpX'", "CT is locked (x)" |
//! | `DELETE lxc/N` | "can't remove CT N - protection mode enabled"; "CT is locked (x)"; "unable to destroy CT N - container is running" | — |

pub(crate) mod backup;
mod life;
mod read;
mod write;

use serde_json::json;

use super::{Ctx, Handler, PathArgs, Route, WCtx};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::params::{self, Param, Ty, idx, opt, req};
use crate::sim::state::{State, Vm};
use crate::sim::tasks::{NewTask, Outcome, spawn_locked};

macro_rules! spec {
    ($($p:expr),* $(,)?) => {{
        const S: &[Param] = &[$($p),*];
        S
    }};
}

const NODE: Param = req("node", Ty::Node);
const VMID: Param = req("vmid", params::VMID);
const STR: Ty = Ty::Str { max_len: None };
const SNAPNAME: Param = req("snapname", Ty::ConfigId);
const SKIPLOCK: Param = opt("skiplock", Ty::Bool);
const DIGEST: Param = opt("digest", Ty::Str { max_len: Some(40) });
const MEMORY: Ty = Ty::Int {
    min: Some(16),
    max: None,
};
const CORES: Ty = Ty::Int {
    min: Some(1),
    max: Some(8192),
};

/// The `volume_keys` `resize` accepts.
pub const VOLUME_KEYS: &[&str] = &[
    "rootfs", "mp0", "mp1", "mp2", "mp3", "mp4", "mp5", "mp6", "mp7", "mp8", "mp9",
];

pub const LOCKS: &[&str] = &[
    "backup",
    "create",
    "destroyed",
    "disk",
    "fstrim",
    "migrate",
    "mounted",
    "rollback",
    "snapshot",
    "snapshot-delete",
];

/// pct's config options (`json_config_properties`), shared by create and config writes.
macro_rules! ct_spec {
    ($($extra:expr),* $(,)?) => {
        spec![
            NODE,
            VMID,
            opt("arch", Ty::Enum(&["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"])),
            opt("cmode", Ty::Enum(&["shell", "console", "tty"])),
            opt("console", Ty::Bool),
            opt("cores", CORES),
            opt("cpulimit", STR),
            opt("cpuunits", Ty::Int { min: Some(0), max: Some(500_000) }),
            opt("debug", Ty::Bool),
            opt("description", Ty::Str { max_len: Some(8192) }),
            idx("dev[n]", 255, STR),
            opt("entrypoint", STR),
            opt("env", STR),
            opt("features", STR),
            opt("hookscript", STR),
            opt("hostname", Ty::DnsName),
            opt("lock", Ty::Enum(LOCKS)),
            opt("memory", MEMORY),
            idx("mp[n]", 255, STR),
            opt("nameserver", STR),
            idx("net[n]", 31, STR),
            opt("onboot", Ty::Bool),
            opt("ostype", Ty::Enum(&[
                "debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux",
                "alpine", "gentoo", "nixos", "unmanaged",
            ])),
            opt("protection", Ty::Bool),
            opt("rootfs", STR),
            opt("searchdomain", STR),
            opt("startup", STR),
            opt("swap", params::UINT),
            opt("tags", Ty::TagList),
            opt("template", Ty::Bool),
            opt("timezone", STR),
            opt("tty", Ty::Int { min: Some(0), max: Some(6) }),
            opt("unprivileged", Ty::Bool),
            idx("unused[n]", 255, STR),
            $($extra),*
        ]
    };
}

const CREATE: &[Param] = ct_spec![
    req("ostemplate", Ty::Str { max_len: Some(255) }),
    opt("bwlimit", STR),
    opt("force", Ty::Bool),
    opt("ha-managed", Ty::Bool),
    opt("ignore-unpack-errors", Ty::Bool),
    opt("password", STR),
    opt("pool", STR),
    opt("restore", Ty::Bool),
    opt("ssh-public-keys", STR),
    opt("start", Ty::Bool),
    opt("storage", Ty::StorageId),
    opt("unique", Ty::Bool),
];
const CONFIG_PUT: &[Param] = ct_spec![
    opt(
        "delete",
        Ty::Str {
            max_len: Some(8192)
        }
    ),
    DIGEST,
    opt("revert", STR),
];

/// GET routes below `/nodes/{node}` this module serves.
pub(super) fn read_route(rest: &[&str], args: &mut PathArgs) -> Option<Route> {
    let r = |handler: fn(&Ctx) -> ApiResult, spec: &'static [Param], proxied: bool| {
        Some(Route {
            handler: Handler::Read(handler),
            spec,
            proxied,
        })
    };
    match rest {
        ["aplinfo"] => r(read::aplinfo, spec![NODE], true),
        ["lxc"] => r(read::list, spec![NODE], true),
        ["lxc", v, tail @ ..] => {
            args.vmid = v.to_string();
            match tail {
                [] => r(read::index, spec![NODE, VMID], true),
                ["config"] => r(
                    read::config,
                    spec![
                        NODE,
                        VMID,
                        opt("current", Ty::Bool),
                        opt("snapshot", Ty::ConfigId)
                    ],
                    true,
                ),
                ["pending"] => r(read::pending, spec![NODE, VMID], true),
                ["interfaces"] => r(read::interfaces, spec![NODE, VMID], true),
                ["status"] => r(read::status_index, spec![NODE, VMID], true),
                ["status", "current"] => r(read::status_current, spec![NODE, VMID], true),
                ["snapshot"] => r(read::snapshots, spec![NODE, VMID], true),
                ["snapshot", s] => {
                    args.extra.push(("snapname", s.to_string()));
                    r(read::snapshot_index, spec![NODE, VMID, SNAPNAME], false)
                }
                ["snapshot", s, "config"] => {
                    args.extra.push(("snapname", s.to_string()));
                    r(read::snapshot_config, spec![NODE, VMID, SNAPNAME], true)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// POST/PUT/DELETE routes below `/nodes/{node}`.
pub(super) fn write_route(method: &str, rest: &[&str], args: &mut PathArgs) -> Option<Route> {
    let w = |handler: fn(&mut WCtx) -> ApiResult, spec: &'static [Param]| {
        Some(Route {
            handler: Handler::Write(handler),
            spec,
            proxied: true,
        })
    };
    match (method, rest) {
        ("POST", ["aplinfo"]) => {
            return w(
                life::apl_download,
                spec![
                    NODE,
                    req("storage", Ty::StorageId),
                    req("template", Ty::Str { max_len: Some(255) })
                ],
            );
        }
        ("POST", ["lxc"]) => return w(life::create, CREATE),
        _ => {}
    }
    let ["lxc", v, tail @ ..] = rest else {
        return None;
    };
    args.vmid = v.to_string();
    match (method, tail) {
        ("DELETE", []) => w(
            write::destroy,
            spec![
                NODE,
                VMID,
                opt("destroy-unreferenced-disks", Ty::Bool),
                opt("force", Ty::Bool),
                opt("purge", Ty::Bool)
            ],
        ),
        ("PUT", ["config"]) => w(write::config_put, CONFIG_PUT),
        ("PUT", ["resize"]) => w(
            write::resize,
            spec![
                NODE,
                VMID,
                req("disk", Ty::Enum(VOLUME_KEYS)),
                req(
                    "size",
                    Ty::Pattern(&crate::sim::api::qemu::write_spec::SIZE_RE)
                ),
                DIGEST
            ],
        ),
        ("POST", ["template"]) => w(write::template, spec![NODE, VMID]),
        ("POST", ["clone"]) => w(
            life::clone,
            spec![
                NODE,
                VMID,
                req("newid", params::VMID),
                opt("bwlimit", STR),
                opt("description", STR),
                opt("full", Ty::Bool),
                opt("hostname", Ty::DnsName),
                opt("pool", STR),
                opt("snapname", Ty::ConfigId),
                opt("storage", Ty::StorageId),
                opt("target", Ty::Node)
            ],
        ),
        ("POST", ["migrate"]) => w(
            life::migrate,
            spec![
                NODE,
                VMID,
                req("target", Ty::Node),
                opt("bwlimit", STR),
                opt("online", Ty::Bool),
                opt("restart", Ty::Bool),
                opt("target-storage", Ty::StoragePairList),
                opt("timeout", params::INT)
            ],
        ),
        ("POST", ["status", "start"]) => w(
            life::start,
            spec![NODE, VMID, opt("debug", Ty::Bool), SKIPLOCK],
        ),
        ("POST", ["status", "stop"]) => w(
            life::stop,
            spec![NODE, VMID, opt("overrule-shutdown", Ty::Bool), SKIPLOCK],
        ),
        ("POST", ["status", "shutdown"]) => w(
            life::shutdown,
            spec![
                NODE,
                VMID,
                opt("forceStop", Ty::Bool),
                opt("timeout", params::UINT)
            ],
        ),
        ("POST", ["status", "reboot"]) => w(
            life::reboot,
            spec![NODE, VMID, opt("timeout", params::UINT)],
        ),
        ("POST", ["status", "suspend"]) => w(life::suspend, spec![NODE, VMID]),
        ("POST", ["status", "resume"]) => w(life::resume, spec![NODE, VMID]),
        ("POST", ["snapshot"]) => w(
            write::snapshot,
            spec![NODE, VMID, SNAPNAME, opt("description", STR)],
        ),
        ("DELETE", ["snapshot", s]) => {
            args.extra.push(("snapname", s.to_string()));
            w(
                write::delsnapshot,
                spec![NODE, VMID, SNAPNAME, opt("force", Ty::Bool)],
            )
        }
        ("POST", ["snapshot", s, "rollback"]) => {
            args.extra.push(("snapname", s.to_string()));
            w(
                write::rollback,
                spec![NODE, VMID, SNAPNAME, opt("start", Ty::Bool)],
            )
        }
        ("PUT", ["snapshot", s, "config"]) => {
            args.extra.push(("snapname", s.to_string()));
            w(
                write::snapshot_config_put,
                spec![NODE, VMID, SNAPNAME, opt("description", STR)],
            )
        }
        _ => None,
    }
}

/// Every `METHOD /path` this module serves.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/nodes/{node}/aplinfo"),
    ("POST", "/nodes/{node}/aplinfo"),
    ("POST", "/nodes/{node}/lxc"),
    ("GET", "/nodes/{node}/lxc/{vmid}"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
    ("GET", "/nodes/{node}/lxc/{vmid}/pending"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/start"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/suspend"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/resume"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/resize"),
    ("POST", "/nodes/{node}/lxc/{vmid}/template"),
    ("POST", "/nodes/{node}/lxc/{vmid}/clone"),
    ("POST", "/nodes/{node}/lxc/{vmid}/migrate"),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/lxc/{vmid}/snapshot"),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"),
    (
        "POST",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    ),
];

/// `/nodes/{node}/qemu/{vmid}/...` for a container: qemu-server finds no config file.
pub fn qemu_guard(st: &State, segs: &[&str]) -> Result<(), ApiError> {
    if let ["nodes", node, "qemu", v, ..] = segs
        && let Ok(id) = v.parse::<u32>()
        && st.vms.get(&id).is_some_and(Vm::is_ct)
    {
        return Err(crate::sim::guest::missing(node, id));
    }
    Ok(())
}

/// The container `vmid` on `node`, or pct's missing-config error.
pub fn ct<'a>(st: &'a State, node: &str, vmid: &str) -> Result<&'a Vm, ApiError> {
    vmid.parse::<u32>()
        .ok()
        .and_then(|id| st.vms.get(&id))
        .filter(|v| v.node == node && v.is_ct())
        .ok_or_else(|| crate::sim::lxc::missing(node, vmid))
}

pub fn ct_mut<'a>(st: &'a mut State, node: &str, vmid: u32) -> Result<&'a mut Vm, ApiError> {
    st.vms
        .get_mut(&vmid)
        .filter(|v| v.node == node && v.is_ct())
        .ok_or_else(|| crate::sim::lxc::missing(node, vmid))
}

/// `check_lock`: "CT is locked (x)".
pub fn check_lock(vm: &Vm) -> Result<(), ApiError> {
    match vm.get("lock") {
        Some(l) => Err(ApiError::Server(format!("CT is locked ({l})"))),
        None => Ok(()),
    }
}

/// `check_protection`.
pub fn check_protection(vm: &Vm, what: &str) -> Result<(), ApiError> {
    if vm.get("protection") == Some("1") {
        return Err(ApiError::Server(format!(
            "{what} - protection mode enabled"
        )));
    }
    Ok(())
}

/// Forks a worker of `ttype` for the path's guest; `work` runs after `secs` (scaled) and
/// decides the outcome. An error injected with `fail_next_task` wins.
pub fn task<F>(c: &mut WCtx, ttype: &str, id: &str, secs: f64, work: F) -> ApiResult
where
    F: FnOnce(&mut State) -> Outcome + Send + 'static,
{
    let node = c.args.node.clone();
    let user = c.authid().to_string();
    let upid = spawn_locked(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype,
            id,
            user: &user,
            duration_secs: secs,
            log: Vec::new(),
        },
        move |st, injected| match injected {
            Some(e) => Outcome::Err {
                log: Vec::new(),
                error: e,
            },
            None => work(st),
        },
    );
    Ok(Reply::data(json!(upid)))
}

pub fn ok(log: Vec<String>) -> Outcome {
    Outcome::Ok { log, warnings: 0 }
}

pub fn fail(log: Vec<String>, error: impl Into<String>) -> Outcome {
    Outcome::Err {
        log,
        error: error.into(),
    }
}

/// `raise_perm_exc(what)`.
pub fn perm_exc(what: &str) -> ApiError {
    ApiError::Forbidden(format!("Permission check failed ({what})"))
}
