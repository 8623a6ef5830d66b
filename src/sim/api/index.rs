//! Directory indexes PVE answers for intermediate paths (`/`, `/cluster`, `/nodes/{node}`,
//! `/nodes/{node}/qemu/{vmid}`, its `status`, `/nodes/{node}/tasks/{upid}`), so clients walking
//! the tree see the same shapes as on a real node.

use serde_json::{Value, json};

use crate::sim::api::Ctx;
use crate::sim::api::qemu::read::lookup;
use crate::sim::http::{ApiResult, Reply};

fn list(key: &str, names: &[&str]) -> Reply {
    Reply::data(Value::Array(
        names.iter().map(|n| json!({ key: n })).collect(),
    ))
}

pub fn root(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(list(
        "subdir",
        &["version", "cluster", "nodes", "storage", "access", "pools"],
    ))
}

pub fn cluster(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(list(
        "name",
        &[
            "log",
            "options",
            "resources",
            "replication",
            "tasks",
            "backup",
            "ha",
            "status",
            "nextid",
            "firewall",
            "config",
            "acme",
            "ceph",
            "jobs",
            "mapping",
            "metrics",
            "notifications",
            "sdn",
        ],
    ))
}

pub fn node(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(list(
        "name",
        &[
            "aplinfo",
            "apt",
            "capabilities",
            "ceph",
            "certificates",
            "config",
            "disks",
            "dns",
            "firewall",
            "hardware",
            "hosts",
            "journal",
            "lxc",
            "netstat",
            "network",
            "qemu",
            "query-url-metadata",
            "replication",
            "report",
            "rrd",
            "rrddata",
            "scan",
            "sdn",
            "services",
            "spiceshell",
            "status",
            "storage",
            "subscription",
            "syslog",
            "tasks",
            "termproxy",
            "time",
            "version",
            "vncshell",
            "vzdump",
            "wakeonlan",
        ],
    ))
}

pub fn vm(c: &Ctx) -> ApiResult {
    c.validate()?;
    lookup(c, &c.args.node, &c.args.vmid)?;
    Ok(list(
        "subdir",
        &[
            "config",
            "pending",
            "status",
            "unlink",
            "vncproxy",
            "termproxy",
            "migrate",
            "resize",
            "move",
            "rrd",
            "rrddata",
            "monitor",
            "agent",
            "snapshot",
            "spiceproxy",
            "sendkey",
            "firewall",
            "mtunnel",
            "remote_migrate",
        ],
    ))
}

pub fn vm_status(c: &Ctx) -> ApiResult {
    c.require(&format!("/vms/{}", c.args.vmid), &["VM.Audit"], false)?;
    c.validate()?;
    lookup(c, &c.args.node, &c.args.vmid)?;
    Ok(list(
        "subcmd",
        &[
            "current", "start", "stop", "reset", "shutdown", "suspend", "reboot",
        ],
    ))
}

pub fn task(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(list("name", &["log", "status"]))
}
