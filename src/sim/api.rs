//! Routing: maps `METHOD /path` to a handler, applies the order PVE uses — route lookup (501
//! when absent), node proxying for `/nodes/{node}/...` (unknown node: 500 hostname lookup;
//! offline: 595), permission check, then parameter validation — and runs the handler under the
//! state lock.

use std::sync::Arc;

use super::http::{ApiError, ApiResult, Req};
use super::params::{self, Param, Ty, opt, req};
use super::state::{Shared, State};
use super::{api_cluster, api_index, api_nodes, api_qemu, api_storage, api_tasks};

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
    pub fn can(&self, path: &str, privs: &[&str]) -> bool {
        self.st.access.check(&self.req.authid, path, privs, true)
    }
}

type Handler = fn(&Ctx) -> ApiResult;

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
    let r = |handler: Handler, spec: &'static [Param], proxied: bool| {
        Some(Route {
            handler,
            spec,
            proxied,
        })
    };
    if method != "GET" {
        return None;
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
        }
        _ => None,
    }
}

fn node_route(rest: &[&str], args: &mut PathArgs) -> Option<Route> {
    let r = |handler: Handler, spec: &'static [Param]| {
        Some(Route {
            handler,
            spec,
            proxied: true,
        })
    };
    match rest {
        [] => r(api_index::node, spec![NODE]),
        ["status"] => r(api_nodes::status, spec![NODE]),
        ["version"] => r(api_nodes::version, spec![NODE]),
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

/// Routes and runs one request.
pub async fn dispatch(shared: &Arc<Shared>, mut r: Req) -> ApiResult {
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
    let st = shared.lock();
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
    // path parameters take part in validation, overriding same-named query/body ones
    for (k, v) in [
        ("node", &args.node),
        ("vmid", &args.vmid),
        ("storage", &args.storage),
        ("upid", &args.upid),
    ] {
        if !v.is_empty() {
            r.params.insert(k.to_string(), v.clone());
        }
    }
    let ctx = Ctx {
        st: &st,
        req: &r,
        args: &args,
        spec: route.spec,
    };
    (route.handler)(&ctx)
}
