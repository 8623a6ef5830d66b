//! Table-driven reads for the parts of the API the scenario has nothing in: directory indexes,
//! empty collections (firewall, SDN, mappings, notifications, replication, ...),
//! their item paths (500 "no such ..."), containers (the scenario has none: every
//! `/nodes/{node}/lxc/{vmid}/...` read is PVE's "Configuration file ... does not exist") and
//! Ceph (not set up: "pveceph configuration not initialized"). Each entry carries the
//! permission the schema states for the path; extra query parameters are not validated here.

use serde_json::{Value, json};

use super::{Ctx, Handler, PathArgs, Route};
use crate::sim::http::{ApiError, ApiResult, Reply};

#[derive(Clone, Copy)]
enum Perm {
    /// `user => 'all'`.
    All,
    /// `perm` on a path (`{node}`, `{vmid}`, `{storage}` filled in); `true` = any of.
    On(&'static str, &'static [&'static str], bool),
}

#[derive(Clone, Copy)]
enum Kind {
    Index(&'static str, &'static [&'static str]),
    Empty,
    Obj(fn(&Ctx) -> Value),
    /// 500 naming the missing item (the last path segment).
    NoSuch(&'static str),
    Fail(&'static str),
    NoContainer,
    /// A guest-agent read: needs a running guest with the agent enabled.
    Agent,
}

use Kind::*;
use Perm::*;

const AUDIT_ROOT: Perm = On("/", &["Sys.Audit"], false);
const AUDIT_NODE: Perm = On("/nodes/{node}", &["Sys.Audit"], false);
const VM_AUDIT: Perm = On("/vms/{vmid}", &["VM.Audit"], false);
const NOTIFY: Perm = On(
    "/mapping/notifications",
    &["Mapping.Modify", "Mapping.Audit", "Mapping.Use"],
    true,
);
const CEPH: Perm = On("/", &["Sys.Audit", "Datastore.Audit"], true);
const NO_CEPH: &str = "pveceph configuration not initialized";
const FW: &[&str] = &["aliases", "ipset", "log", "options", "refs", "rules"];

#[rustfmt::skip]
const TABLE: &[(&[&str], Perm, Kind)] = &[
    (&["cluster", "backup-info"], AUDIT_ROOT, Index("subdir", &["not-backed-up"])),
    (&["cluster", "replication"], All, Empty),
    (&["cluster", "replication", "*"], All, NoSuch("replication job")),
    (&["cluster", "firewall"], All, Index("name", &["aliases", "groups", "ipset", "macros", "options", "refs", "rules"])),
    (&["cluster", "firewall", "rules"], AUDIT_ROOT, Empty),
    (&["cluster", "firewall", "rules", "*"], AUDIT_ROOT, NoSuch("firewall rule")),
    (&["cluster", "firewall", "aliases"], AUDIT_ROOT, Empty),
    (&["cluster", "firewall", "aliases", "*"], AUDIT_ROOT, NoSuch("alias")),
    (&["cluster", "firewall", "ipset"], AUDIT_ROOT, Empty),
    (&["cluster", "firewall", "ipset", "**"], AUDIT_ROOT, NoSuch("IPSet")),
    (&["cluster", "firewall", "groups"], All, Empty),
    (&["cluster", "firewall", "groups", "**"], All, NoSuch("security group")),
    (&["cluster", "firewall", "options"], AUDIT_ROOT, Obj(|_| json!({ "enable": 0 }))),
    (&["cluster", "firewall", "refs"], AUDIT_ROOT, Empty),
    (&["cluster", "firewall", "macros"], All, Empty),
    (&["cluster", "sdn"], All, Index("id", &["controllers", "dns", "fabrics", "ipams", "vnets", "zones"])),
    (&["cluster", "sdn", "zones"], All, Empty),
    (&["cluster", "sdn", "vnets"], All, Empty),
    (&["cluster", "sdn", "controllers"], All, Empty),
    (&["cluster", "sdn", "dns"], All, Empty),
    (&["cluster", "sdn", "ipams"], All, Obj(|_| json!([{ "ipam": "pve", "type": "pve" }]))),
    (&["cluster", "sdn", "fabrics"], All, Index("subdir", &["all", "fabric", "node"])),
    (&["cluster", "sdn", "fabrics", "all"], All, Obj(|_| json!({ "fabrics": [], "nodes": [] }))),
    (&["cluster", "sdn", "fabrics", "fabric"], All, Empty),
    (&["cluster", "sdn", "fabrics", "node"], All, Empty),
    (&["cluster", "sdn", "**"], All, NoSuch("SDN object")),
    (&["cluster", "mapping"], All, Index("name", &["dir", "pci", "usb"])),
    (&["cluster", "mapping", "*"], All, Empty),
    (&["cluster", "mapping", "*", "*"], All, NoSuch("mapping")),
    (&["cluster", "metrics"], All, Index("name", &["export", "server"])),
    (&["cluster", "metrics", "server"], AUDIT_ROOT, Empty),
    (&["cluster", "metrics", "server", "*"], AUDIT_ROOT, NoSuch("metric server")),
    (&["cluster", "notifications"], All, Index("name", &["endpoints", "matcher-field-values", "matcher-fields", "matchers", "targets"])),
    (&["cluster", "notifications", "endpoints"], NOTIFY, Index("name", &["gotify", "sendmail", "smtp", "webhook"])),
    (&["cluster", "notifications", "endpoints", "*"], NOTIFY, Empty),
    (&["cluster", "notifications", "endpoints", "*", "*"], NOTIFY, NoSuch("notification endpoint")),
    (&["cluster", "notifications", "matchers"], NOTIFY, Empty),
    (&["cluster", "notifications", "matchers", "*"], NOTIFY, NoSuch("matcher")),
    (&["cluster", "notifications", "targets"], NOTIFY, Empty),
    (&["cluster", "notifications", "matcher-fields"], NOTIFY, Obj(|_| json!([{ "name": "type" }, { "name": "hostname" }]))),
    (&["cluster", "notifications", "matcher-field-values"], NOTIFY, Empty),
    (&["cluster", "acme"], All, Index("name", &["account", "challenge-schema", "directories", "meta", "plugins", "tos"])),
    (&["cluster", "acme", "account"], All, Empty),
    (&["cluster", "acme", "account", "*"], All, NoSuch("ACME account")),
    (&["cluster", "acme", "plugins"], On("/", &["Sys.Modify"], false), Empty),
    (&["cluster", "acme", "plugins", "*"], On("/", &["Sys.Modify"], false), NoSuch("ACME plugin")),
    (&["cluster", "jobs"], All, Index("subdir", &["realm-sync", "schedule-analyze"])),
    (&["cluster", "jobs", "realm-sync"], AUDIT_ROOT, Empty),
    (&["cluster", "jobs", "realm-sync", "*"], AUDIT_ROOT, NoSuch("realm sync job")),
    (&["cluster", "config"], All, Index("name", &["apiversion", "join", "nodes", "qdevice", "totem"])),
    (&["cluster", "config", "nodes"], AUDIT_ROOT, Obj(config_nodes)),
    (&["cluster", "config", "totem"], AUDIT_ROOT, Obj(|c| json!({ "cluster_name": c.st.cluster, "config_version": "3", "ip_version": "ipv4-6", "secauth": "on", "version": "2" }))),
    (&["cluster", "config", "apiversion"], All, Obj(|_| json!(6))),
    (&["cluster", "ceph"], All, Index("name", &["flags", "metadata", "status"])),
    (&["cluster", "ceph", "**"], CEPH, Fail(NO_CEPH)),
    (&["nodes", "*", "ceph", "**"], CEPH, Fail(NO_CEPH)),
    (&["nodes", "*", "lxc", "*", "**"], VM_AUDIT, NoContainer),
    (&["nodes", "*", "replication"], All, Empty),
    (&["nodes", "*", "replication", "**"], All, NoSuch("replication job")),
    (&["nodes", "*", "firewall"], All, Index("name", &["log", "options", "rules"])),
    (&["nodes", "*", "firewall", "rules"], AUDIT_NODE, Empty),
    (&["nodes", "*", "firewall", "rules", "*"], AUDIT_NODE, NoSuch("firewall rule")),
    (&["nodes", "*", "firewall", "options"], AUDIT_NODE, Obj(|_| json!({ "enable": 1 }))),
    (&["nodes", "*", "firewall", "log"], On("/nodes/{node}", &["Sys.Syslog"], false), Empty),
    (&["nodes", "*", "qemu", "*", "firewall"], All, Index("name", FW)),
    (&["nodes", "*", "qemu", "*", "firewall", "options"], VM_AUDIT, Obj(|_| json!({ "enable": 0 }))),
    (&["nodes", "*", "qemu", "*", "firewall", "*"], VM_AUDIT, Empty),
    (&["nodes", "*", "qemu", "*", "firewall", "**"], VM_AUDIT, NoSuch("firewall object")),
    (&["nodes", "*", "qemu", "*", "cloudinit"], VM_AUDIT, Empty),
    (&["nodes", "*", "qemu", "*", "agent"], All, Index("name", &["exec", "exec-status", "file-read", "file-write", "get-fsinfo", "get-host-name", "get-memory-block-info", "get-memory-blocks", "get-osinfo", "get-time", "get-timezone", "get-users", "get-vcpus", "info", "network-get-interfaces", "ping", "shutdown"])),
    (&["nodes", "*", "capabilities"], All, Index("name", &["qemu"])),
    (&["nodes", "*", "capabilities", "qemu"], All, Index("name", &["cpu", "cpu-flags", "machines", "migration"])),
    (&["nodes", "*", "capabilities", "qemu", "machines"], All, Obj(|_| json!([{ "id": "pc-q35-9.2+pve1", "type": "q35", "version": "9.2.0" }, { "id": "pc-i440fx-9.2+pve1", "type": "i440fx", "version": "9.2.0" }]))),
    (&["nodes", "*", "capabilities", "qemu", "cpu"], All, Obj(|_| json!([{ "name": "host", "custom": 0, "vendor": "native" }, { "name": "x86-64-v2-AES", "custom": 0, "vendor": "default" }, { "name": "x86-64-v3", "custom": 0, "vendor": "default" }]))),
    (&["nodes", "*", "certificates"], All, Index("name", &["acme", "custom", "info"])),
    (&["nodes", "*", "certificates", "acme"], All, Index("name", &["certificate"])),
    (&["nodes", "*", "scan"], All, Index("method", &["cifs", "iscsi", "lvm", "lvmthin", "nfs", "pbs", "zfs"])),
    (&["nodes", "*", "sdn"], All, Index("subdir", &["fabrics", "vnets", "zones"])),
    (&["nodes", "*", "sdn", "zones"], All, Obj(|_| json!([{ "zone": "localnetwork", "status": "available" }]))),
    (&["nodes", "*", "netstat"], AUDIT_NODE, Empty),
    (&["nodes", "*", "aplinfo"], All, Empty),
    (&["nodes", "*", "config"], AUDIT_ROOT, Obj(|_| json!({}))),
    (&["nodes", "*", "disks", "lvmthin"], AUDIT_ROOT, Obj(|_| json!([{ "lv": "data", "vg": "pve", "lv_type": "t" }]))),
    (&["nodes", "*", "disks", "zfs"], AUDIT_ROOT, Empty),
    (&["nodes", "*", "disks", "directory"], AUDIT_ROOT, Empty),
    (&["nodes", "*", "journal"], On("/nodes/{node}", &["Sys.Syslog"], false), Empty),
    (&["nodes", "*", "syslog"], On("/nodes/{node}", &["Sys.Syslog"], false), Obj(|_| json!([{ "n": 1, "t": "-- No entries --" }]))),
    (&["storage", "*"], On("/storage/{storage}", &["Datastore.Allocate"], false), Obj(storage_config)),
    (&["nodes", "*", "hosts"], AUDIT_ROOT, Obj(hosts)),
    (&["nodes", "*", "report"], AUDIT_NODE, Obj(|c| json!(format!("==== general system info ====\n\n# hostname\n{}\n", c.args.node)))),
    (&["nodes", "*", "vzdump", "defaults"], All, Obj(|_| json!({ "mode": "snapshot", "compress": "zstd", "storage": "local", "notes-template": "{{guestname}}" }))),
    (&["nodes", "*", "disks", "lvm"], AUDIT_ROOT, Obj(lvm_tree)),
    (&["nodes", "*", "qemu", "*", "agent", "*"], On("/vms/{vmid}", &["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"], true), Agent),
    (&["nodes", "*", "capabilities", "qemu", "cpu-flags"], All, Obj(|_| json!([{ "name": "md-clear", "description": "Required to let the guest OS know if MDS is mitigated correctly" }, { "name": "pcid", "description": "Meltdown fix cost reduction on Westmere, Sandy-, and IvyBridge Intel CPUs" }, { "name": "aes", "description": "Activate AES instruction set for HW acceleration." }]))),
    (&["nodes", "*", "capabilities", "qemu", "migration"], AUDIT_NODE, Obj(|_| json!({ "has-dbus-vmstate": 1 }))),
    (&["nodes", "*", "apt", "repositories"], AUDIT_NODE, Obj(|_| json!({ "files": [], "errors": [], "infos": [], "standard-repos": [], "digest": "0000000000000000000000000000000000000000000000000000000000000000" }))),
    (&["nodes", "*", "apt", "update"], On("/nodes/{node}", &["Sys.Modify"], false), Empty),
    (&["cluster", "acme", "directories"], All, Obj(|_| json!([{ "name": "Let's Encrypt V2", "url": "https://acme-v02.api.letsencrypt.org/directory" }, { "name": "Let's Encrypt V2 Staging", "url": "https://acme-staging-v02.api.letsencrypt.org/directory" }]))),
    (&["cluster", "acme", "challenge-schema"], All, Empty),
    (&["cluster", "metrics", "export"], AUDIT_ROOT, Obj(|_| json!({ "data": [] }))),
    (&["access", "tfa"], All, Empty),
    (&["access", "openid"], All, Index("subdir", &["auth-url", "login"])),
    (&["access", "groups", "*"], On("/access/groups", &["Sys.Audit", "Group.Allocate"], true), NoSuch("group")),
    (&["nodes", "*", "storage", "*", "prunebackups"], On("/storage/{storage}", &["Datastore.Audit", "Datastore.AllocateSpace"], true), Empty),
];

fn matches(pattern: &[&str], segs: &[&str]) -> bool {
    match (pattern.first(), segs.first()) {
        (Some(&"**"), _) => true,
        (None, None) => true,
        (Some(p), Some(s)) => (*p == "*" || p == s) && matches(&pattern[1..], &segs[1..]),
        _ => false,
    }
}

fn entry(segs: &[&str]) -> Option<&'static (&'static [&'static str], Perm, Kind)> {
    TABLE.iter().find(|(p, _, _)| matches(p, segs))
}

/// A route for `segs` when the table has one; fills the node, vmid and storage arguments.
pub(super) fn route(segs: &[&str], args: &mut PathArgs) -> Option<Route> {
    entry(segs)?;
    let proxied = segs.first() == Some(&"nodes");
    if proxied {
        args.node = segs.get(1).map(|s| s.to_string()).unwrap_or_default();
        match segs.get(2) {
            Some(&"qemu") | Some(&"lxc") => {
                args.vmid = segs.get(3).map(|s| s.to_string()).unwrap_or_default()
            }
            Some(&"storage") => {
                args.storage = segs.get(3).map(|s| s.to_string()).unwrap_or_default()
            }
            _ => {}
        }
    }
    if segs.first() == Some(&"storage") {
        args.storage = segs.get(1).map(|s| s.to_string()).unwrap_or_default();
    }
    Some(Route {
        handler: Handler::Read(generic),
        spec: &[],
        proxied,
    })
}

fn generic(c: &Ctx) -> ApiResult {
    let segs: Vec<&str> = c.req.path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((_, perm, kind)) = entry(&segs) else {
        return Err(ApiError::NotImplemented(format!(
            "Method 'GET {}' not implemented",
            c.req.path
        )));
    };
    if let On(path, privs, any) = perm {
        let path = path
            .replace("{node}", &c.args.node)
            .replace("{vmid}", &c.args.vmid)
            .replace("{storage}", &c.args.storage);
        c.require(&path, privs, *any)?;
    }
    let last = segs.last().copied().unwrap_or("");
    match kind {
        Index(key, names) => Ok(Reply::data(Value::Array(
            names.iter().map(|n| json!({ *key: n })).collect(),
        ))),
        Empty => Ok(Reply::data(json!([]))),
        Obj(f) => Ok(Reply::data(f(c))),
        NoSuch(what) => Err(ApiError::Server(format!("no such {what} '{last}'"))),
        Fail(m) => Err(ApiError::Server(m.to_string())),
        Agent => agent(c, last),
        NoContainer => Err(ApiError::Server(format!(
            "Configuration file 'nodes/{}/lxc/{}.conf' does not exist",
            c.args.node, c.args.vmid
        ))),
    }
}

fn config_nodes(c: &Ctx) -> Value {
    Value::Array(
        c.st.nodes
            .iter()
            .map(|n| json!({ "node": n.name, "name": n.name, "nodeid": n.nodeid.to_string(), "quorum_votes": "1", "ring0_addr": n.ip }))
            .collect(),
    )
}

fn agent(c: &Ctx, cmd: &str) -> ApiResult {
    let vm = crate::sim::api::qemu::read::lookup(c, &c.args.node, &c.args.vmid)?;
    if !vm.running {
        return Err(ApiError::Server(format!("VM {} is not running", vm.vmid)));
    }
    let enabled = vm
        .get("agent")
        .is_some_and(|a| a.starts_with('1') || a.contains("enabled=1"));
    if !enabled {
        return Err(ApiError::Server("No QEMU guest agent configured".into()));
    }
    let name = vm.get("name").unwrap_or("guest");
    let now = crate::sim::state::now();
    let result = match cmd {
        "get-host-name" => json!({ "host-name": name }),
        "get-osinfo" => {
            json!({ "id": "ubuntu", "name": "Ubuntu", "pretty-name": "Ubuntu 24.04.3 LTS",
            "version": "24.04.3 LTS (Noble Numbat)", "version-id": "24.04", "kernel-release": "6.8.0-87-generic",
            "machine": "x86_64" })
        }
        "get-time" => json!(now * 1_000_000_000),
        "get-timezone" => json!({ "zone": "UTC", "offset": 0 }),
        "get-vcpus" => Value::Array(
            (0..vm.cpus())
                .map(|i| json!({ "logical-id": i, "online": true, "can-offline": i > 0 }))
                .collect(),
        ),
        "info" => json!({ "version": "8.2.2", "supported_commands": [] }),
        "exec-status" | "file-read" => {
            return Err(ApiError::Server(format!(
                "Agent error: {cmd} needs a pid or file the guest knows"
            )));
        }
        _ => json!([]),
    };
    Ok(Reply::data(json!({ "result": result })))
}

fn storage_config(c: &Ctx) -> Value {
    let Some(s) = c.st.storage(&c.args.storage) else {
        return Value::Null;
    };
    let mut m = json!({ "storage": s.id, "type": s.stype, "content": s.content.join(","),
        "digest": "0000000000000000000000000000000000000000" });
    if s.shared {
        m["shared"] = json!(1);
    }
    for (k, v) in &s.props {
        m[k.as_str()] = json!(v);
    }
    m
}

fn hosts(c: &Ctx) -> Value {
    let mut data = String::from("127.0.0.1 localhost.localdomain localhost\n");
    for n in &c.st.nodes {
        data.push_str(&format!("{} {}.sim.lan {}\n", n.ip, n.name, n.name));
    }
    json!({ "data": data, "digest": "0000000000000000000000000000000000000000" })
}

fn lvm_tree(c: &Ctx) -> Value {
    let size =
        c.st.storages
            .iter()
            .find(|s| s.stype == "lvmthin")
            .map(|s| s.total)
            .unwrap_or(0)
            + 100 * crate::sim::state::GIB;
    let free = 16 * crate::sim::state::GIB;
    json!({ "leaf": 0, "children": [{ "name": "pve", "size": size, "free": free, "leaf": 0,
        "children": [{ "name": "/dev/nvme0n1p3", "size": size, "free": free, "leaf": 1 }] }] })
}
