//! Backup endpoints: `POST /nodes/{node}/vzdump` ([`vzdump`]), restore through
//! `POST /nodes/{node}/qemu` with `archive` ([`restore`]), `GET /nodes/{node}/vzdump/extractconfig`,
//! the backup jobs of `/cluster/backup` and `/cluster/backup-info/not-backed-up`, and
//! `/cluster/jobs/schedule-analyze` ([`jobs`]). The model behind them is `crate::sim::backup`.

pub(crate) mod jobs;
pub(crate) mod restore;
pub(crate) mod vzdump;

use super::{Ctx, Handler, NODE, PathArgs, Route, WCtx};
use crate::sim::http::ApiResult;
use crate::sim::params::{self, Param, Ty, opt, req};

macro_rules! spec {
    ($($p:expr),* $(,)?) => {{
        const S: &[Param] = &[$($p),*];
        S
    }};
}

const STR: Ty = Ty::Str { max_len: None };
const JOBID: Param = req("id", Ty::Str { max_len: Some(50) });

/// The vzdump options (`PVE::VZDump::Common::json_config_properties`), shared by
/// `POST /nodes/{node}/vzdump` and the job endpoints.
macro_rules! vzdump_spec {
    ($($extra:expr),* $(,)?) => {
        spec![
            opt("all", Ty::Bool),
            opt("bwlimit", params::UINT),
            opt("compress", Ty::Enum(&["0", "1", "gzip", "lzo", "zstd"])),
            opt("dumpdir", STR),
            opt("exclude", STR),
            opt("exclude-path", STR),
            opt("fleecing", STR),
            opt("ionice", Ty::Int { min: Some(0), max: Some(8) }),
            opt("lockwait", params::UINT),
            opt("mailnotification", Ty::Enum(&["always", "failure"])),
            opt("mailto", STR),
            opt("maxfiles", Ty::Int { min: Some(1), max: None }),
            opt("mode", Ty::Enum(&["snapshot", "suspend", "stop"])),
            opt("node", Ty::Node),
            opt("notes-template", Ty::Str { max_len: Some(1024) }),
            opt("notification-mode", Ty::Enum(&["auto", "legacy-sendmail", "notification-system"])),
            opt("pbs-change-detection-mode", Ty::Enum(&["legacy", "data", "metadata"])),
            opt("performance", STR),
            opt("pigz", params::INT),
            opt("pool", STR),
            opt("protected", Ty::Bool),
            opt("prune-backups", STR),
            opt("quiet", Ty::Bool),
            opt("remove", Ty::Bool),
            opt("script", STR),
            opt("stdexcludes", Ty::Bool),
            opt("stop", Ty::Bool),
            opt("stopwait", params::UINT),
            opt("storage", Ty::StorageId),
            opt("tmpdir", STR),
            opt("vmid", STR),
            opt("zstd", params::INT),
            $($extra),*
        ]
    };
}

const VZDUMP: &[Param] = vzdump_spec![
    opt("job-id", Ty::Str { max_len: Some(50) }),
    opt("stdout", Ty::Bool),
];
const JOB_CREATE: &[Param] = vzdump_spec![
    opt("id", STR),
    opt("schedule", Ty::Str { max_len: Some(128) }),
    opt("starttime", STR),
    opt("dow", STR),
    opt("enabled", Ty::Bool),
    opt("repeat-missed", Ty::Bool),
    opt("comment", Ty::Str { max_len: Some(512) }),
];
const JOB_UPDATE: &[Param] = vzdump_spec![
    JOBID,
    opt("schedule", Ty::Str { max_len: Some(128) }),
    opt("starttime", STR),
    opt("dow", STR),
    opt("delete", STR),
    opt("enabled", Ty::Bool),
    opt("repeat-missed", Ty::Bool),
    opt("comment", Ty::Str { max_len: Some(512) }),
];

/// GET routes outside `/nodes` (`/cluster/backup...`, `/cluster/jobs/schedule-analyze`).
pub(super) fn route(method: &str, segs: &[&str], args: &mut PathArgs) -> Option<Route> {
    let read = |handler: fn(&Ctx) -> ApiResult, spec: &'static [Param]| {
        Some(Route {
            handler: Handler::Read(handler),
            spec,
            proxied: false,
        })
    };
    let write = |handler: fn(&mut WCtx) -> ApiResult, spec: &'static [Param]| {
        Some(Route {
            handler: Handler::Write(handler),
            spec,
            proxied: false,
        })
    };
    let mut id = |s: &str| args.extra.push(("id", s.to_string()));
    match (method, segs) {
        ("GET", ["cluster", "backup"]) => read(jobs::index, &[]),
        ("POST", ["cluster", "backup"]) => write(jobs::create, JOB_CREATE),
        ("GET", ["cluster", "backup", i]) => {
            id(i);
            read(jobs::read, spec![JOBID])
        }
        ("PUT", ["cluster", "backup", i]) => {
            id(i);
            write(jobs::update, JOB_UPDATE)
        }
        ("DELETE", ["cluster", "backup", i]) => {
            id(i);
            write(jobs::delete, spec![JOBID])
        }
        ("GET", ["cluster", "backup", i, "included_volumes"]) => {
            id(i);
            read(jobs::included_volumes, spec![JOBID])
        }
        ("GET", ["cluster", "backup-info", "not-backed-up"]) => read(jobs::not_backed_up, &[]),
        ("GET", ["cluster", "jobs", "schedule-analyze"]) => read(
            jobs::schedule_analyze,
            spec![
                req("schedule", Ty::Str { max_len: Some(128) }),
                opt(
                    "iterations",
                    Ty::Int {
                        min: Some(1),
                        max: Some(100)
                    }
                ),
                opt("starttime", params::INT),
            ],
        ),
        _ => None,
    }
}

/// Routes below `/nodes/{node}` (proxied to the node).
pub(super) fn node_route(method: &str, rest: &[&str]) -> Option<Route> {
    match (method, rest) {
        ("POST", ["vzdump"]) => Some(Route {
            handler: Handler::Write(vzdump::vzdump),
            spec: VZDUMP_NODE,
            proxied: true,
        }),
        ("GET", ["vzdump", "extractconfig"]) => Some(Route {
            handler: Handler::Read(restore::extractconfig),
            spec: spec![NODE, req("volume", STR)],
            proxied: true,
        }),
        _ => None,
    }
}

/// `node` is the path's there (the same name as the option).
const VZDUMP_NODE: &[Param] = VZDUMP;

/// The endpoints this module serves.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/nodes/{node}/vzdump"),
    ("GET", "/nodes/{node}/vzdump/extractconfig"),
    ("GET", "/cluster/backup"),
    ("POST", "/cluster/backup"),
    ("GET", "/cluster/backup/{id}"),
    ("PUT", "/cluster/backup/{id}"),
    ("DELETE", "/cluster/backup/{id}"),
    ("GET", "/cluster/backup/{id}/included_volumes"),
    ("GET", "/cluster/backup-info/not-backed-up"),
    ("GET", "/cluster/jobs/schedule-analyze"),
];
