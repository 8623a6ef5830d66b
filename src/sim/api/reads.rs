//! Routes of the read-only endpoints beyond the guest lifecycle: node information
//! ([`super::node_info`]), RRD series ([`super::rrd`]), `/access` ([`super::access`]) and
//! cluster-wide reads ([`super::cluster_info`]). [`super::find`] falls back to these tables.

use super::{Ctx, Handler, NODE, PathArgs, Route, STORAGE, VMID};
use crate::sim::api::{access, cluster_info as cl, ha, node_info as ni, rrd};
use crate::sim::http::ApiResult;
use crate::sim::params::{self, Param, Ty, opt, req};

macro_rules! spec {
    ($($p:expr),* $(,)?) => {{
        const S: &[Param] = &[$($p),*];
        S
    }};
}

const STR: Ty = Ty::Str { max_len: None };
const SERVICE: Param = req("service", STR);
const TIMEFRAME: Param = req("timeframe", rrd::TIMEFRAME);
const NODE_TIMEFRAME: Param = req("timeframe", rrd::NODE_TIMEFRAME);

fn read(handler: fn(&Ctx) -> ApiResult, spec: &'static [Param], proxied: bool) -> Option<Route> {
    Some(Route {
        handler: Handler::Read(handler),
        spec,
        proxied,
    })
}

/// GET routes outside `/nodes/{node}`.
pub(super) fn route(segs: &[&str], args: &mut PathArgs) -> Option<Route> {
    let r = |h, s| read(h, s, false);
    match segs {
        ["cluster", "tasks"] => r(cl::tasks, &[]),
        ["cluster", "log"] => r(cl::log, spec![opt("max", params::UINT)]),
        ["cluster", "options"] => r(cl::options, &[]),
        ["cluster", "ha"] => r(ha::index, &[]),
        ["cluster", "ha", "resources"] => {
            r(ha::resources, spec![opt("type", Ty::Enum(&["ct", "vm"]))])
        }
        ["cluster", "ha", "resources", sid] => {
            args.extra.push(("sid", sid.to_string()));
            r(ha::resource, spec![req("sid", STR)])
        }
        ["cluster", "ha", "groups"] => r(ha::groups, &[]),
        ["cluster", "ha", "groups", g] => {
            args.extra.push(("group", g.to_string()));
            r(ha::group, spec![req("group", Ty::ConfigId)])
        }
        ["cluster", "ha", "rules"] => r(
            ha::rules,
            spec![
                opt("resource", STR),
                opt("type", Ty::Enum(&["node-affinity", "resource-affinity"]))
            ],
        ),
        ["cluster", "ha", "rules", id] => {
            args.extra.push(("rule", id.to_string()));
            r(ha::rule, spec![req("rule", Ty::ConfigId)])
        }
        ["cluster", "ha", "status"] => r(ha::status_index, &[]),
        ["cluster", "ha", "status", "current"] => r(ha::status_current, &[]),
        ["cluster", "ha", "status", "manager_status"] => r(ha::manager_status, &[]),
        ["pools"] => r(
            cl::pools,
            spec![
                opt("poolid", STR),
                opt("type", Ty::Enum(&["qemu", "lxc", "storage"]))
            ],
        ),
        ["pools", p] => {
            args.extra.push(("poolid", p.to_string()));
            r(
                cl::pool,
                spec![
                    req("poolid", STR),
                    opt("type", Ty::Enum(&["qemu", "lxc", "storage"]))
                ],
            )
        }
        ["access"] => r(access::index, &[]),
        ["access", "ticket"] => r(access::ticket, &[]),
        ["access", "users"] => r(
            access::users,
            spec![opt("enabled", Ty::Bool), opt("full", Ty::Bool)],
        ),
        ["access", "users", u] => {
            args.extra.push(("userid", u.to_string()));
            r(access::user, spec![req("userid", Ty::UserId)])
        }
        ["access", "groups"] => r(access::groups, &[]),
        ["access", "roles"] => r(access::roles, &[]),
        ["access", "roles", id] => {
            args.extra.push(("roleid", id.to_string()));
            r(access::role, spec![req("roleid", STR)])
        }
        ["access", "acl"] => r(access::acl, &[]),
        ["access", "domains"] => r(access::domains, &[]),
        _ => None,
    }
}

/// GET routes below `/nodes/{node}` (proxied to the node).
pub(super) fn node_route(rest: &[&str], args: &mut PathArgs) -> Option<Route> {
    let r = |h, s| read(h, s, true);
    match rest {
        ["dns"] => r(ni::dns, spec![NODE]),
        ["time"] => r(ni::time, spec![NODE]),
        ["services"] => r(ni::services, spec![NODE]),
        ["services", s, tail @ ..] => {
            args.extra.push(("service", s.to_string()));
            match tail {
                [] => r(ni::service_index, spec![NODE, SERVICE]),
                ["state"] => r(ni::service_state, spec![NODE, SERVICE]),
                _ => None,
            }
        }
        ["disks"] => r(ni::disks_index, spec![NODE]),
        ["disks", "list"] => r(
            ni::disks_list,
            spec![
                NODE,
                opt("include-partitions", Ty::Bool),
                opt("skipsmart", Ty::Bool),
                opt("type", Ty::Enum(&["unused", "journal_disks"])),
            ],
        ),
        ["subscription"] => r(ni::subscription, spec![NODE]),
        ["apt"] => r(ni::apt_index, spec![NODE]),
        ["apt", "versions"] => r(ni::apt_versions, spec![NODE]),
        ["hardware"] => r(ni::hardware_index, spec![NODE]),
        ["hardware", "pci"] => r(
            ni::hardware_pci,
            spec![
                NODE,
                opt("pci-class-blacklist", STR),
                opt("verbose", Ty::Bool)
            ],
        ),
        ["hardware", "usb"] => r(ni::hardware_usb, spec![NODE]),
        ["rrddata"] => r(rrd::node, spec![NODE, NODE_TIMEFRAME, rrd::CF]),
        ["qemu", v, "rrddata"] => {
            args.vmid = v.to_string();
            r(rrd::vm, spec![NODE, VMID, TIMEFRAME, rrd::CF])
        }
        ["storage", s, tail @ ..] => {
            args.storage = s.to_string();
            match tail {
                [] => r(ni::storage_index, spec![NODE, STORAGE]),
                ["status"] => r(ni::storage_status, spec![NODE, STORAGE]),
                ["rrddata"] => r(rrd::storage, spec![NODE, STORAGE, TIMEFRAME, rrd::CF]),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The paths [`route`] and [`node_route`] serve (all `GET`).
pub const ENDPOINTS: &[&str] = &[
    "/cluster/tasks",
    "/cluster/log",
    "/cluster/options",
    "/cluster/ha",
    "/cluster/ha/resources",
    "/cluster/ha/resources/{sid}",
    "/cluster/ha/groups",
    "/cluster/ha/groups/{group}",
    "/cluster/ha/rules",
    "/cluster/ha/rules/{rule}",
    "/cluster/ha/status",
    "/cluster/ha/status/current",
    "/cluster/ha/status/manager_status",
    "/pools",
    "/pools/{poolid}",
    "/access",
    "/access/ticket",
    "/access/users",
    "/access/users/{userid}",
    "/access/groups",
    "/access/roles",
    "/access/roles/{roleid}",
    "/access/acl",
    "/access/domains",
    "/nodes/{node}/dns",
    "/nodes/{node}/time",
    "/nodes/{node}/services",
    "/nodes/{node}/services/{service}",
    "/nodes/{node}/services/{service}/state",
    "/nodes/{node}/disks",
    "/nodes/{node}/disks/list",
    "/nodes/{node}/subscription",
    "/nodes/{node}/apt",
    "/nodes/{node}/apt/versions",
    "/nodes/{node}/hardware",
    "/nodes/{node}/hardware/pci",
    "/nodes/{node}/hardware/usb",
    "/nodes/{node}/rrddata",
    "/nodes/{node}/qemu/{vmid}/rrddata",
    "/nodes/{node}/storage/{storage}",
    "/nodes/{node}/storage/{storage}/status",
    "/nodes/{node}/storage/{storage}/rrddata",
];
