//! Routing: maps `METHOD /path` to a handler, applies the order PVE uses — route lookup (501
//! when absent), node proxying for `/nodes/{node}/...` (unknown node: 500 hostname lookup;
//! offline: 595), permission check, then parameter validation — and runs the handler under the
//! state lock.

pub(crate) mod access;
pub(crate) mod backup;
pub(crate) mod cluster;
pub(crate) mod cluster_info;
mod generic;
pub(crate) mod ha;
pub(crate) mod index;
pub(crate) mod listing;
pub(crate) mod lxc;
pub(crate) mod node_info;
pub(crate) mod nodes;
pub(crate) mod qemu;
mod reads;
pub(crate) mod rrd;
pub(crate) mod storage;
pub(crate) mod tasks;

use std::sync::Arc;

use crate::sim::http::{ApiError, ApiResult, Req};
use crate::sim::params::{self, Param, Ty, opt, req};
use crate::sim::state::{Shared, State};
use cluster as api_cluster;
use index as api_index;
use nodes as api_nodes;
use qemu::{
    clone as api_clone, create as api_create, migrate as api_migrate, power as api_power,
    read as api_qemu, write as api_qemu_write, write_spec as api_write_spec,
};
use storage::{
    content as api_storage, download as api_download, upload as api_upload, volume as api_volume,
};
use tasks as api_tasks;

macro_rules! spec {
    ($($p:expr),* $(,)?) => {{
        const S: &[Param] = &[$($p),*];
        S
    }};
}

/// Path parameters captured from the URL.
#[derive(Default)]
pub struct PathArgs {
    pub node: String,
    pub vmid: String,
    pub storage: String,
    pub upid: String,
    /// `{volume}`: the rest of the path, so unencoded `/` in volume ids work too.
    pub volume: String,
    /// Other path parameters (`{service}`, `{userid}`, `{roleid}`, `{poolid}`, `{sid}`,
    /// `{rule}`, `{group}`).
    pub extra: Vec<(&'static str, String)>,
}

/// What a handler gets: the locked state, the request, path arguments and its parameter spec.
pub struct Ctx<'a> {
    pub st: &'a State,
    pub req: &'a Req,
    pub args: &'a PathArgs,
    spec: &'static [Param],
}

impl Ctx<'_> {
    /// Validates parameters; handlers call it right after their permission check, as PVE
    /// checks permissions before it verifies parameters.
    pub fn validate(&self) -> Result<(), ApiError> {
        params::validate(self.spec, &self.req.params).map_err(ApiError::Param)
    }
    pub fn param(&self, k: &str) -> Option<&str> {
        self.req.params.get(k).map(String::as_str)
    }
    pub fn flag(&self, k: &str) -> bool {
        self.param(k).and_then(params::parse_bool).unwrap_or(false)
    }
    pub fn authid(&self) -> &str {
        &self.req.authid
    }
    /// Privilege check; `Err(403)` naming the path and the privileges.
    pub fn require(&self, path: &str, privs: &[&str], any: bool) -> Result<(), ApiError> {
        if any {
            return match self.st.access.check(&self.req.authid, path, privs, true) {
                true => Ok(()),
                false => Err(ApiError::perm(path, &privs.join("|"))),
            };
        }
        let have = self.st.access.privileges(&self.req.authid, path);
        match privs.iter().find(|p| !have.contains_key(**p)) {
            Some(missing) => Err(ApiError::perm(path, missing)),
            None => Ok(()),
        }
    }
    /// Whether the endpoint declares parameter `name`.
    pub fn spec_has(&self, name: &str) -> bool {
        self.spec.iter().any(|p| p.name == name)
    }
    pub fn can(&self, path: &str, privs: &[&str]) -> bool {
        self.st.access.check(&self.req.authid, path, privs, true)
    }
}

/// `VM.Audit` on many guests' `/vms/N` at once (listings): a guest without an ACL entry of its
/// own has the privileges the entries above pass down, the same for all of them, so the check
/// runs once for those and once for each guest with an entry.
pub struct GuestAudit<'c, 'a> {
    c: &'c Ctx<'a>,
    /// The guests whose path `/vms/{vmid}` carries an ACL entry.
    own_acl: std::collections::BTreeSet<u32>,
    inherited: Option<bool>,
}

impl<'c, 'a> GuestAudit<'c, 'a> {
    pub fn new(c: &'c Ctx<'a>) -> GuestAudit<'c, 'a> {
        let own_acl =
            c.st.access
                .acl_paths()
                .into_iter()
                .filter_map(|p| {
                    let vmid: u32 = p.strip_prefix("/vms/")?.parse().ok()?;
                    // exactly the path a listing asks about (not `/vms/0100`)
                    (format!("/vms/{vmid}") == p).then_some(vmid)
                })
                .collect();
        GuestAudit {
            c,
            own_acl,
            inherited: None,
        }
    }
    /// `c.can("/vms/{vmid}", ["VM.Audit"])`.
    pub fn visible(&mut self, vmid: u32) -> bool {
        let path = || format!("/vms/{vmid}");
        if self.own_acl.contains(&vmid) {
            return self.c.can(&path(), &["VM.Audit"]);
        }
        let c = self.c;
        *self
            .inherited
            .get_or_insert_with(|| c.can(&path(), &["VM.Audit"]))
    }
}

/// What a write handler gets: the state locked for writing and the shared handle (to spawn
/// tasks with [`crate::sim::tasks::spawn_locked`]).
pub struct WCtx<'a> {
    pub st: &'a mut State,
    pub shared: &'a Arc<Shared>,
    pub req: &'a Req,
    pub args: &'a PathArgs,
    spec: &'static [Param],
}

impl WCtx<'_> {
    /// A read view for permission checks and validation.
    pub fn ro(&self) -> Ctx<'_> {
        Ctx {
            st: self.st,
            req: self.req,
            args: self.args,
            spec: self.spec,
        }
    }
    pub fn param(&self, k: &str) -> Option<&str> {
        self.req.params.get(k).map(String::as_str)
    }
    pub fn flag(&self, k: &str) -> bool {
        self.param(k).and_then(params::parse_bool).unwrap_or(false)
    }
    pub fn authid(&self) -> &str {
        &self.req.authid
    }
    /// The path vmid (validated before handlers use it).
    pub fn vmid(&self) -> u32 {
        self.args.vmid.parse().unwrap_or(0)
    }
}

#[derive(Clone, Copy)]
enum Handler {
    Read(fn(&Ctx) -> ApiResult),
    Write(fn(&mut WCtx) -> ApiResult),
}

struct Route {
    handler: Handler,
    spec: &'static [Param],
    /// Whether the endpoint is proxied to `{node}` (`proxyto=node`).
    proxied: bool,
}

const NODE: Param = req("node", Ty::Node);
const VMID: Param = req("vmid", params::VMID);
const STORAGE: Param = req("storage", Ty::StorageId);
const UPID: Param = req("upid", Ty::Str { max_len: None });

fn find(method: &str, segs: &[&str], args: &mut PathArgs) -> Option<Route> {
    let r = |handler: fn(&Ctx) -> ApiResult, spec: &'static [Param], proxied: bool| {
        Some(Route {
            handler: Handler::Read(handler),
            spec,
            proxied,
        })
    };
    if method != "GET" {
        return match segs {
            ["nodes", n, rest @ ..] => {
                args.node = n.to_string();
                write_route(method, rest, args)
            }
            ["cluster", "ha", "resources", sid, "migrate"] if method == "POST" => {
                args.extra.push(("sid", sid.to_string()));
                Some(Route {
                    handler: Handler::Write(ha::migrate),
                    spec: spec![req("sid", Ty::Str { max_len: None }), req("node", Ty::Node)],
                    proxied: false,
                })
            }
            _ => backup::route(method, segs, args),
        };
    }
    match segs {
        [] => r(api_index::root, &[], false),
        ["cluster"] => r(api_index::cluster, &[], false),
        ["version"] => r(api_cluster::version, &[], false),
        ["cluster", "status"] => r(api_cluster::status, &[], false),
        ["cluster", "resources"] => r(
            api_cluster::resources,
            spec![opt("type", Ty::Enum(&["vm", "storage", "node", "sdn"]))],
            false,
        ),
        ["cluster", "nextid"] => r(api_cluster::nextid, spec![opt("vmid", params::VMID)], false),
        ["storage"] => r(
            api_storage::storage_index,
            spec![opt(
                "type",
                Ty::Enum(&[
                    "btrfs",
                    "cephfs",
                    "cifs",
                    "dir",
                    "esxi",
                    "iscsi",
                    "iscsidirect",
                    "lvm",
                    "lvmthin",
                    "nfs",
                    "pbs",
                    "rbd",
                    "zfs",
                    "zfspool",
                ]),
            )],
            false,
        ),
        ["access", "permissions"] => r(
            api_cluster::permissions,
            spec![
                opt("path", Ty::Str { max_len: None }),
                opt("userid", Ty::UserId)
            ],
            false,
        ),
        ["nodes"] => r(api_nodes::index, &[], false),
        ["nodes", n, rest @ ..] => {
            args.node = n.to_string();
            node_route(rest, args)
                .or_else(|| lxc::read_route(rest, args))
                .or_else(|| reads::node_route(rest, args))
                .or_else(|| backup::node_route("GET", rest))
                .or_else(|| generic::route(segs, args))
        }
        _ => reads::route(segs, args)
            .or_else(|| backup::route("GET", segs, args))
            .or_else(|| generic::route(segs, args)),
    }
}

fn node_route(rest: &[&str], args: &mut PathArgs) -> Option<Route> {
    let r = |handler: fn(&Ctx) -> ApiResult, spec: &'static [Param]| {
        Some(Route {
            handler: Handler::Read(handler),
            spec,
            proxied: true,
        })
    };
    match rest {
        [] => r(api_index::node, spec![NODE]),
        ["status"] => r(api_nodes::status, spec![NODE]),
        ["version"] => r(api_nodes::version, spec![NODE]),
        ["network"] => r(
            api_nodes::network,
            spec![
                NODE,
                opt(
                    "type",
                    Ty::Enum(&[
                        "bridge",
                        "bond",
                        "eth",
                        "alias",
                        "vlan",
                        "fabric",
                        "OVSBridge",
                        "OVSBond",
                        "OVSPort",
                        "OVSIntPort",
                        "vnet",
                        "any_bridge",
                        "any_local_bridge",
                        "include_sdn",
                    ]),
                )
            ],
        ),
        ["qemu"] => r(api_qemu::list, spec![NODE, opt("full", Ty::Bool)]),
        ["qemu", v, tail @ ..] => {
            args.vmid = v.to_string();
            match tail {
                ["config"] => r(
                    api_qemu::config,
                    spec![
                        NODE,
                        VMID,
                        opt("current", Ty::Bool),
                        opt("snapshot", Ty::ConfigId)
                    ],
                ),
                [] => r(api_index::vm, spec![NODE, VMID]),
                ["status"] => r(api_index::vm_status, spec![NODE, VMID]),
                ["status", "current"] => r(api_qemu::status_current, spec![NODE, VMID]),
                ["pending"] => r(api_qemu_write::pending, spec![NODE, VMID]),
                ["migrate"] => r(
                    api_migrate::precondition,
                    spec![NODE, VMID, opt("target", Ty::Node)],
                ),
                ["snapshot", rest @ ..] => qemu::snapshot::read_route(rest, args),
                // a read, but it needs the time scale: routed like the writes
                ["agent", "network-get-interfaces"] => Some(Route {
                    handler: Handler::Write(api_power::agent_interfaces),
                    spec: spec![NODE, VMID],
                    proxied: true,
                }),
                _ => None,
            }
        }
        ["storage"] => r(
            api_storage::node_storage,
            spec![
                NODE,
                opt("content", Ty::StorageContentList),
                opt("enabled", Ty::Bool),
                opt("format", Ty::Bool),
                opt("storage", Ty::StorageId),
                opt("target", Ty::Node),
            ],
        ),
        ["storage", s, "content"] => {
            args.storage = s.to_string();
            r(
                api_storage::content,
                spec![
                    NODE,
                    STORAGE,
                    opt("content", Ty::StorageContent),
                    opt("vmid", params::VMID)
                ],
            )
        }
        ["storage", s, "content", vol @ ..] if !vol.is_empty() => {
            args.storage = s.to_string();
            args.volume = vol.join("/");
            r(api_volume::info, api_write_spec::VOLUME_INFO)
        }
        ["tasks"] => r(
            api_tasks::list,
            spec![
                NODE,
                opt("errors", Ty::Bool),
                opt("limit", params::UINT),
                opt("since", params::INT),
                opt("source", Ty::Enum(&["archive", "active", "all"])),
                opt("start", params::UINT),
                opt("statusfilter", Ty::Str { max_len: None }),
                opt("typefilter", Ty::Str { max_len: None }),
                opt("until", params::INT),
                opt("userfilter", Ty::Str { max_len: None }),
                opt("vmid", params::VMID),
            ],
        ),
        ["tasks", u] => {
            args.upid = u.to_string();
            r(api_index::task, spec![NODE, UPID])
        }
        ["tasks", u, "status"] => {
            args.upid = u.to_string();
            r(api_tasks::status, spec![NODE, UPID])
        }
        ["tasks", u, "log"] => {
            args.upid = u.to_string();
            r(
                api_tasks::log,
                spec![
                    NODE,
                    UPID,
                    opt("download", Ty::Bool),
                    opt("limit", params::UINT),
                    opt("start", params::UINT)
                ],
            )
        }
        _ => None,
    }
}

/// POST/PUT/DELETE routes below `/nodes/{node}`.
fn write_route(method: &str, rest: &[&str], args: &mut PathArgs) -> Option<Route> {
    let w = |handler: fn(&mut WCtx) -> ApiResult, spec: &'static [Param]| {
        Some(Route {
            handler: Handler::Write(handler),
            spec,
            proxied: true,
        })
    };
    if let Some(r) = backup::node_route(method, rest) {
        return Some(r);
    }
    if let Some(r) = lxc::write_route(method, rest, args) {
        return Some(r);
    }
    match (method, rest) {
        ("POST", ["qemu"]) => return w(api_create::create, api_write_spec::CREATE),
        ("POST", ["storage", s, "download-url"]) => {
            args.storage = s.to_string();
            return w(api_download::download_url, api_write_spec::DOWNLOAD_URL);
        }
        ("POST", ["storage", s, "upload"]) => {
            args.storage = s.to_string();
            return w(api_upload::upload, api_write_spec::UPLOAD);
        }
        ("DELETE", ["storage", s, "content", vol @ ..]) if !vol.is_empty() => {
            args.storage = s.to_string();
            args.volume = vol.join("/");
            return w(api_volume::delete, api_write_spec::VOLUME_DELETE);
        }
        _ => {}
    }
    let ["qemu", v, tail @ ..] = rest else {
        return None;
    };
    args.vmid = v.to_string();
    use api_write_spec as s;
    match (method, tail) {
        ("DELETE", []) => w(api_power::destroy, s::DESTROY),
        ("POST", ["clone"]) => w(api_clone::clone, s::CLONE),
        ("POST", ["template"]) => w(api_clone::template, s::TEMPLATE),
        ("POST", ["migrate"]) => w(api_migrate::migrate, s::MIGRATE),
        ("POST", ["config"]) => w(api_qemu_write::config_post, s::CONFIG_POST),
        ("PUT", ["config"]) => w(api_qemu_write::config_put, s::CONFIG_PUT),
        ("PUT", ["resize"]) => w(api_qemu_write::resize, s::RESIZE),
        ("POST", ["status", "start"]) => w(api_power::start, s::START),
        ("POST", ["status", "stop"]) => w(api_power::stop, s::STOP),
        ("POST", ["status", "shutdown"]) => w(api_power::shutdown, s::SHUTDOWN),
        ("POST", ["status", "reboot"]) => w(api_power::reboot, s::REBOOT),
        ("POST", ["status", "suspend"]) => w(api_power::suspend, s::SUSPEND),
        ("POST", ["status", "resume"]) => w(api_power::resume, s::RESUME),
        (m, ["snapshot", rest @ ..]) => qemu::snapshot::write_route(m, rest, args),
        _ => None,
    }
}

/// Every `METHOD /path-template` the simulator serves. A unit test checks that each resolves
/// to a route, so this list and [`find`] cannot drift apart.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/cluster"),
    ("GET", "/version"),
    ("GET", "/cluster/status"),
    ("GET", "/cluster/resources"),
    ("GET", "/cluster/nextid"),
    ("GET", "/storage"),
    ("GET", "/access/permissions"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}"),
    ("GET", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/version"),
    ("GET", "/nodes/{node}/network"),
    ("GET", "/nodes/{node}/qemu"),
    ("GET", "/nodes/{node}/qemu/{vmid}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("GET", "/nodes/{node}/storage"),
    ("GET", "/nodes/{node}/storage/{storage}/content"),
    ("GET", "/nodes/{node}/tasks"),
    ("GET", "/nodes/{node}/tasks/{upid}"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending"),
    ("GET", "/nodes/{node}/qemu/{vmid}/migrate"),
    ("POST", "/nodes/{node}/qemu/{vmid}/migrate"),
    ("POST", "/cluster/ha/resources/{sid}/migrate"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
    ),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ("POST", "/nodes/{node}/qemu/{vmid}/template"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/suspend"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/resume"),
    ("POST", "/nodes/{node}/qemu"),
    ("POST", "/nodes/{node}/storage/{storage}/download-url"),
    ("POST", "/nodes/{node}/storage/{storage}/upload"),
    ("GET", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    ),
    (
        "PUT",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    ),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    ),
];

/// An endpoint the simulator serves and the parameters it accepts (path ones included).
#[derive(Debug, Clone)]
pub struct ServedEndpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// Parameter names; indexed families (`net[n]`) appear as their first member (`net0`).
    pub params: Vec<String>,
    /// Enumerated parameters and the values the simulator accepts.
    pub enums: Vec<(&'static str, &'static [&'static str])>,
}

/// [`ENDPOINTS`] with their parameter specs, read from the router itself.
pub fn served_endpoints() -> Vec<ServedEndpoint> {
    let reads = reads::ENDPOINTS.iter().map(|p| ("GET", *p));
    ENDPOINTS
        .iter()
        .copied()
        .chain(reads)
        .chain(backup::ENDPOINTS.iter().copied())
        .chain(lxc::ENDPOINTS.iter().copied())
        .filter_map(|(method, path)| {
            let concrete = path
                .replace("{service}", "pveproxy")
                .replace("{userid}", "root@pam")
                .replace("{roleid}", "PVEAuditor")
                .replace("{poolid}", "pool1")
                .replace("{sid}", "vm:100")
                .replace("{rule}", "rule1")
                .replace("{group}", "group1")
                .replace("{id}", "job1")
                .replace("{node}", "pve01")
                .replace("{vmid}", "100")
                .replace("{storage}", "local")
                .replace("{upid}", "UPID")
                .replace("{volume}", "local:iso/x.iso")
                .replace("{snapname}", "snap1");
            let segs: Vec<&str> = concrete.split('/').filter(|s| !s.is_empty()).collect();
            let route = find(method, &segs, &mut PathArgs::default())?;
            Some(ServedEndpoint {
                method,
                path,
                params: route
                    .spec
                    .iter()
                    .map(|p| p.name.replace("[n]", "0"))
                    .collect(),
                enums: route
                    .spec
                    .iter()
                    .filter_map(|p| match p.ty {
                        Ty::Enum(values) => Some((p.name, values)),
                        _ => None,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Routes and runs one request.
pub async fn dispatch(shared: &Arc<Shared>, mut r: Req) -> ApiResult {
    shared.record(crate::sim::state::RecordedRequest {
        method: r.method.clone(),
        path: r.path.clone(),
        params: r.params.keys().cloned().collect(),
    });
    let segs: Vec<String> = r
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let seg_refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut args = PathArgs::default();
    let route = find(&r.method, &seg_refs, &mut args).ok_or_else(|| {
        ApiError::NotImplemented(format!("Method '{} {}' not implemented", r.method, r.path))
    })?;
    add_path_params(&mut r.params, &args);
    // reads share the state (a long listing blocks no other read), writes take it alone
    match route.handler {
        Handler::Read(h) => {
            let st = shared.read();
            proxy_check(&st, &route, &args)?;
            lxc::qemu_guard(&st, &seg_refs)?;
            h(&Ctx {
                st: &st,
                req: &r,
                args: &args,
                spec: route.spec,
            })
        }
        Handler::Write(_) => {
            let mut st = shared.lock();
            proxy_check(&st, &route, &args)?;
            lxc::qemu_guard(&st, &seg_refs)?;
            run(&route, &mut st, shared, &r, &args)
        }
    }
}

/// `/nodes/{node}/...` goes through the node: an unknown name fails its hostname lookup, an
/// offline node is unreachable (595).
fn proxy_check(st: &State, route: &Route, args: &PathArgs) -> Result<(), ApiError> {
    if route.proxied {
        match st.node(&args.node) {
            None => {
                let n = &args.node;
                return Err(ApiError::Server(format!(
                    "hostname lookup '{n}' failed - failed to get address info for: {n}: Name or service not known"
                )));
            }
            Some(n) if !n.online => return Err(ApiError::NoRoute),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Path parameters take part in validation, overriding same-named query/body ones.
fn add_path_params(params: &mut std::collections::BTreeMap<String, String>, args: &PathArgs) {
    for (k, v) in &args.extra {
        params.insert(k.to_string(), v.clone());
    }
    for (k, v) in [
        ("node", &args.node),
        ("vmid", &args.vmid),
        ("storage", &args.storage),
        ("upid", &args.upid),
        ("volume", &args.volume),
    ] {
        if !v.is_empty() {
            params.insert(k.to_string(), v.clone());
        }
    }
}

fn run(route: &Route, st: &mut State, shared: &Arc<Shared>, r: &Req, args: &PathArgs) -> ApiResult {
    match route.handler {
        Handler::Read(h) => h(&Ctx {
            st,
            req: r,
            args,
            spec: route.spec,
        }),
        Handler::Write(h) => h(&mut WCtx {
            st,
            shared,
            req: r,
            args,
            spec: route.spec,
        }),
    }
}

/// Runs the handler of `METHOD path` in-process as `root@pam` on the locked state: what the
/// node's CLI tools (`qm set`, `qm template`, `pvesm list`, run over SSH) do — the API's own
/// validation and logic, without HTTP, node proxying or the request journal.
pub fn run_as_root(
    shared: &Arc<Shared>,
    st: &mut State,
    method: &str,
    path: &str,
    mut params: std::collections::BTreeMap<String, String>,
) -> ApiResult {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut args = PathArgs::default();
    let route = find(method, &segs, &mut args).ok_or_else(|| {
        ApiError::NotImplemented(format!("Method '{method} {path}' not implemented"))
    })?;
    add_path_params(&mut params, &args);
    lxc::qemu_guard(st, &segs)?;
    let req = Req {
        method: method.to_string(),
        path: path.to_string(),
        params,
        authid: "root@pam".to_string(),
        upload: None,
    };
    let mut reply = run(&route, st, shared, &req, &args)?;
    // the CLI tools read `data`: a listing written straight to text is parsed back for them
    if let Some(raw) = reply.raw.take() {
        reply.data = serde_json::from_str(&raw)
            .map_err(|e| ApiError::Server(format!("cannot decode a listing: {e}")))?;
    }
    Ok(reply)
}

#[cfg(test)]
mod endpoint_tests {
    #[test]
    fn every_listed_endpoint_resolves() {
        assert_eq!(
            crate::sim::served_endpoints().len(),
            crate::sim::ENDPOINTS.len()
                + super::reads::ENDPOINTS.len()
                + super::backup::ENDPOINTS.len()
                + super::lxc::ENDPOINTS.len()
        );
    }
}
