//! Node reads beyond status: `dns`, `time`, `services` (list, per-service index and state),
//! `disks` (index, `list`), `subscription`, `apt` (index, `versions`), `hardware` (index,
//! `pci`, `usb`), `storage/{storage}` (index, `status`) (containers are
//! `api/lxc`). Values follow the schema's return shapes and the scenario's node.

use serde_json::{Value, json};

use crate::sim::api::Ctx;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::GIB;

fn audit(c: &Ctx) -> Result<(), ApiError> {
    c.require(&format!("/nodes/{}", c.args.node), &["Sys.Audit"], false)?;
    c.validate()
}

fn names(key: &str, names: &[&str]) -> Reply {
    Reply::data(Value::Array(
        names.iter().map(|n| json!({ key: n })).collect(),
    ))
}

pub fn dns(c: &Ctx) -> ApiResult {
    audit(c)?;
    // the node's gateway (`.1` of its address) resolves, then a public resolver
    let ip =
        c.st.node(&c.args.node)
            .map(|n| n.ip.clone())
            .unwrap_or_default();
    let gateway = match ip.rsplit_once('.') {
        Some((net, _)) => format!("{net}.1"),
        None => "127.0.0.1".into(),
    };
    Ok(Reply::data(
        json!({ "search": "sim.lan", "dns1": gateway, "dns2": "1.1.1.1" }),
    ))
}

pub fn time(c: &Ctx) -> ApiResult {
    audit(c)?;
    let now = crate::sim::state::now();
    Ok(Reply::data(
        json!({ "timezone": "UTC", "time": now, "localtime": now }),
    ))
}

/// The services PVE's `services` lists (`PVE::API2::Services`), all running on a healthy node.
const SERVICES: &[(&str, &str)] = &[
    ("chrony", "Chrony NTP daemon"),
    ("corosync", "Corosync Cluster Engine"),
    ("cron", "Regular background program processing daemon"),
    ("ksmtuned", "Kernel Samepage Merging (KSM) Tuning Daemon"),
    ("postfix", "Postfix Mail Transport Agent"),
    ("pve-cluster", "The Proxmox VE cluster filesystem"),
    ("pve-firewall", "Proxmox VE firewall"),
    ("pve-ha-crm", "PVE Cluster HA Resource Manager Daemon"),
    ("pve-ha-lrm", "PVE Local HA Resource Manager Daemon"),
    ("pvedaemon", "PVE API Daemon"),
    ("pvefw-logger", "Proxmox VE firewall logger"),
    ("pveproxy", "PVE API Proxy Server"),
    ("pvescheduler", "Proxmox VE scheduler"),
    ("pvestatd", "PVE Status Daemon"),
    ("qmeventd", "PVE Qemu Event Daemon"),
    ("spiceproxy", "PVE SPICE Proxy Server"),
    ("sshd", "OpenBSD Secure Shell server"),
    ("syslog", "System Logging Service"),
    ("systemd-journald", "Journal Service"),
    ("systemd-timesyncd", "Network Time Synchronization"),
];

fn service_row(name: &str, desc: &str) -> Value {
    // chrony replaces timesyncd on PVE 7+
    let (state, unit) = if name == "systemd-timesyncd" {
        ("dead", "masked")
    } else {
        ("running", "enabled")
    };
    let active = if state == "running" {
        "active"
    } else {
        "inactive"
    };
    json!({ "service": name, "name": name, "desc": desc, "state": state,
        "active-state": active, "unit-state": unit })
}

fn service<'a>(c: &'a Ctx) -> Result<(&'a str, &'static str), ApiError> {
    let want = c.param("service").unwrap_or("");
    SERVICES
        .iter()
        .find(|(n, _)| *n == want)
        .map(|(n, d)| (*n, *d))
        .ok_or_else(|| {
            ApiError::param(
                "service",
                format!("value '{want}' does not have a value in the enumeration"),
            )
        })
}

pub fn services(c: &Ctx) -> ApiResult {
    audit(c)?;
    Ok(Reply::data(Value::Array(
        SERVICES.iter().map(|(n, d)| service_row(n, d)).collect(),
    )))
}

pub fn service_index(c: &Ctx) -> ApiResult {
    c.require(&format!("/nodes/{}", c.args.node), &["Sys.Audit"], false)?;
    service(c)?;
    Ok(names(
        "subdir",
        &["state", "start", "stop", "restart", "reload"],
    ))
}

pub fn service_state(c: &Ctx) -> ApiResult {
    c.require(&format!("/nodes/{}", c.args.node), &["Sys.Audit"], false)?;
    let (n, d) = service(c)?;
    Ok(Reply::data(service_row(n, d)))
}

pub fn disks_index(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(names(
        "name",
        &["directory", "list", "lvm", "lvmthin", "smart", "zfs"],
    ))
}

/// One NVMe system disk (LVM: root, swap, the `local-lvm` thin pool) per node.
pub fn disks_list(c: &Ctx) -> ApiResult {
    let node = &c.args.node;
    if !c.can("/", &["Sys.Audit"]) {
        c.require(&format!("/nodes/{node}"), &["Sys.Audit"], false)?;
    }
    c.validate()?;
    let n = c.st.node(node).map(|n| n.nodeid).unwrap_or(1);
    let lvm = c.st.storages.iter().find(|s| s.stype == "lvmthin");
    let size = lvm.map(|s| s.total).unwrap_or(0) + 128 * GIB;
    let wanted = c.param("type");
    let mut out = vec![json!({
        "devpath": "/dev/nvme0n1", "type": "nvme", "size": size, "model": "SAMSUNG MZQL21T9HCJR-00A07",
        "serial": format!("S64GNE0R{n:06}"), "vendor": "unknown", "wwn": format!("eui.36344730526{n:05}"),
        "health": "PASSED", "wearout": 99, "gpt": 1, "rpm": 0, "used": "LVM", "by_id_link": format!("/dev/disk/by-id/nvme-sim-{n}"),
        "osdid": -1, "osdid-list": null,
    })];
    if wanted == Some("unused") || wanted == Some("journal_disks") {
        out.clear();
    }
    if c.flag("include-partitions") {
        for (i, (used, sz)) in [
            ("BIOS boot", 1 << 20),
            ("EFI", GIB),
            ("LVM", size - GIB - (1 << 20)),
        ]
        .into_iter()
        .enumerate()
        {
            out.push(json!({ "devpath": format!("/dev/nvme0n1p{}", i + 1), "parent": "/dev/nvme0n1",
                "type": "partition", "size": sz, "used": used, "health": "UNKNOWN", "gpt": 1,
                "osdid": -1, "osdid-list": null, "mounted": i == 1, "wearout": "N/A", "vendor": "unknown",
                "model": "", "serial": "", "wwn": "unknown", "rpm": 0 }));
        }
    }
    Ok(Reply::data(Value::Array(out)))
}

/// No subscription: what a node without a key answers.
pub fn subscription(c: &Ctx) -> ApiResult {
    c.validate()?;
    let node = &c.args.node;
    let sockets = c.st.node(node).map(|n| n.sockets).unwrap_or(1);
    Ok(Reply::data(json!({
        "status": "notfound", "message": "There is no subscription key",
        "url": "https://www.proxmox.com/en/proxmox-virtual-environment/pricing",
        "sockets": sockets, "serverid": server_id(node),
    })))
}

fn server_id(node: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("serverid-{node}").as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

pub fn apt_index(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(names(
        "id",
        &["changelog", "repositories", "update", "versions"],
    ))
}

pub fn apt_versions(c: &Ctx) -> ApiResult {
    audit(c)?;
    let st = c.st;
    let kernel = st
        .node(&c.args.node)
        .map(|n| n.kernel.clone())
        .unwrap_or_default();
    let (version, release, repoid) = &st.version;
    let pkg = |name: &str, version: &str, title: &str| {
        json!({ "Package": name, "Version": version, "OldVersion": version, "CurrentState": "Installed",
            "Title": title, "Description": title, "Section": "admin", "Priority": "optional",
            "Arch": "amd64", "Origin": "Proxmox" })
    };
    let mut top = pkg("proxmox-ve", release, "Proxmox Virtual Environment");
    top["RunningKernel"] = json!(kernel);
    top["ManagerVersion"] = json!(format!("{version}/{repoid}"));
    Ok(Reply::data(json!([
        top,
        pkg(
            "pve-manager",
            version,
            "Proxmox Virtual Environment Management Tools"
        ),
        pkg(
            &format!("proxmox-kernel-{kernel}-signed"),
            &kernel,
            "Proxmox Kernel Image (signed)"
        ),
        pkg("qemu-server", "9.0.23", "Qemu Server Tools"),
        pkg(
            "pve-qemu-kvm",
            "10.1.2-1",
            "Full virtualization on x86 hardware"
        ),
        pkg(
            "libpve-storage-perl",
            "9.0.14",
            "Proxmox VE storage management library"
        ),
        pkg(
            "pve-cluster",
            "9.0.6",
            "Cluster Infrastructure for Proxmox Virtual Environment"
        ),
        pkg(
            "libpve-access-control",
            "9.0.4",
            "Proxmox VE access control library"
        ),
    ])))
}

pub fn hardware_index(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(names("type", &["pci", "usb"]))
}

pub fn hardware_pci(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Audit", "Sys.Modify"], true)?;
    c.validate()?;
    let dev = |id: &str,
               class: &str,
               vendor: &str,
               vname: &str,
               device: &str,
               dname: &str,
               group: u32| {
        json!({ "id": id, "class": class, "vendor": vendor, "vendor_name": vname, "device": device,
            "device_name": dname, "subsystem_vendor": vendor, "subsystem_vendor_name": vname,
            "subsystem_device": "0000", "subsystem_device_name": "", "iommugroup": group })
    };
    Ok(Reply::data(json!([
        dev(
            "0000:00:00.0",
            "0x060000",
            "0x1022",
            "Advanced Micro Devices, Inc. [AMD]",
            "0x1480",
            "Starship/Matisse Root Complex",
            0
        ),
        dev(
            "0000:01:00.0",
            "0x010802",
            "0x144d",
            "Samsung Electronics Co Ltd",
            "0xa80a",
            "NVMe SSD Controller PM9A1/PM9A3/980PRO",
            14
        ),
        dev(
            "0000:02:00.0",
            "0x020000",
            "0x8086",
            "Intel Corporation",
            "0x1521",
            "I350 Gigabit Network Connection",
            15
        ),
        dev(
            "0000:02:00.1",
            "0x020000",
            "0x8086",
            "Intel Corporation",
            "0x1521",
            "I350 Gigabit Network Connection",
            16
        ),
    ])))
}

pub fn hardware_usb(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Modify"], false)?;
    c.validate()?;
    Ok(Reply::data(json!([{
        "busnum": 1, "devnum": 1, "port": 0, "level": 0, "class": 9, "vendid": "1d6b", "prodid": "0002",
        "manufacturer": "Linux 6.14.11-4-pve xhci-hcd", "product": "xHCI Host Controller", "speed": "480",
        "usbpath": "1",
    }])))
}

fn storage_visible(c: &Ctx) -> Result<(), ApiError> {
    c.require(
        &format!("/storage/{}", c.args.storage),
        &["Datastore.Audit", "Datastore.AllocateSpace"],
        true,
    )?;
    c.validate()?;
    if c.st.storage(&c.args.storage).is_none() {
        return Err(ApiError::Server(format!(
            "storage '{}' does not exist",
            c.args.storage
        )));
    }
    Ok(())
}

pub fn storage_index(c: &Ctx) -> ApiResult {
    storage_visible(c)?;
    Ok(names(
        "subdir",
        &[
            "content",
            "download-url",
            "file-restore",
            "import-metadata",
            "oci-registry-pull",
            "prunebackups",
            "rrd",
            "rrddata",
            "status",
            "upload",
        ],
    ))
}

pub fn storage_status(c: &Ctx) -> ApiResult {
    storage_visible(c)?;
    let Some(s) = c.st.storage(&c.args.storage) else {
        return Ok(Reply::data(Value::Null));
    };
    let used = c.st.storage_used(&s.id, Some(&c.args.node));
    Ok(Reply::data(json!({
        "type": s.stype, "content": s.content.join(","), "shared": u8::from(s.shared),
        "active": 1, "enabled": 1, "total": s.total, "used": used, "avail": s.total - used,
    })))
}
