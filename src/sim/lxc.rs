//! LXC containers in the simulated state. A container is a [`Vm`] of kind
//! [`GuestKind::Lxc`] whose config holds pct's keys (`hostname`, `rootfs`, `mpN`, `netN`,
//! `unprivileged`, `features`, ...); it shares the vmid space, the task engine and the usage
//! accounting with the QEMU guests. This file owns the scenario entry, its expansion into a
//! config, and pct's value formats (mount points, network interfaces); the endpoints are in
//! `api/lxc/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::http::ApiError;
use super::scenario::{Scenario, default_true, is_false, is_true, is_zero_f64, is_zero_u64};
use super::state::{GIB, GuestKind, State, Storage, Vm};

/// A container of the scenario; the simulator expands it into a pct config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CtSpec {
    pub vmid: u32,
    pub node: String,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub running: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub template: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protection: bool,
    /// `unprivileged: 1` (the default of `pct create`); `false` writes no key (privileged).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub unprivileged: bool,
    pub cores: u32,
    /// MiB.
    pub memory: u64,
    /// MiB (default 512, as `pct create` sets it).
    #[serde(default = "swap_default")]
    pub swap: u64,
    /// Storage of the root filesystem.
    pub storage: String,
    /// Root filesystem size in GiB.
    pub disk_gib: u64,
    /// `debian`, `ubuntu`, `alpine`, ... (default `debian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ostype: Option<String>,
    /// `ip=` of net0: `dhcp` (default) or a CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub uptime: u64,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub cpu_usage: f64,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub mem_usage: f64,
    /// Extra or overriding config keys, written exactly as in a pct config (`mp0`, `features`,
    /// `lock`, `description`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

fn swap_default() -> u64 {
    512
}

/// Adds the scenario's containers to `vms` (vmids must be free).
pub fn seed(
    s: &Scenario,
    storages: &[Storage],
    started: i64,
    vms: &mut BTreeMap<u32, Vm>,
) -> Result<(), String> {
    for (i, c) in s.cts.iter().enumerate() {
        if !s.nodes.iter().any(|n| n.name == c.node) {
            return Err(format!("ct {} is on unknown node '{}'", c.vmid, c.node));
        }
        let Some(st) = storages.iter().find(|x| x.id == c.storage) else {
            return Err(format!(
                "ct {} uses unknown storage '{}'",
                c.vmid, c.storage
            ));
        };
        let mut config = BTreeMap::new();
        let prefix = if c.template { "base" } else { "vm" };
        let vol = seed_volname(st, prefix, c.vmid, 0);
        config.insert("arch".into(), "amd64".into());
        config.insert("cores".into(), c.cores.to_string());
        config.insert("hostname".into(), c.hostname.clone());
        config.insert("memory".into(), c.memory.to_string());
        config.insert("swap".into(), c.swap.to_string());
        config.insert(
            "ostype".into(),
            c.ostype.clone().unwrap_or_else(|| "debian".into()),
        );
        config.insert(
            "rootfs".into(),
            format!(
                "{}:{vol},size={}",
                c.storage,
                super::volumes::format_size(c.disk_gib * GIB)
            ),
        );
        let mac = seed_mac(c.vmid);
        let mut net = format!(
            "name=eth0,bridge=vmbr0,firewall=1{}hwaddr={mac},ip={},type=veth",
            c.gw.as_deref()
                .map(|g| format!(",gw={g},"))
                .unwrap_or_else(|| ",".into()),
            c.ip.as_deref().unwrap_or("dhcp")
        );
        if c.ip.is_none() {
            net = net.replace(",type=veth", ",ip6=auto,type=veth");
        }
        config.insert("net0".into(), net);
        if c.unprivileged {
            config.insert("unprivileged".into(), "1".into());
            config.insert("features".into(), "nesting=1".into());
        }
        if let Some(t) = &c.tags {
            config.insert("tags".into(), t.clone());
        }
        if c.protection {
            config.insert("protection".into(), "1".into());
        }
        if c.template {
            config.insert("template".into(), "1".into());
        }
        for (k, v) in &c.config {
            if v.is_empty() {
                config.remove(k);
            } else {
                config.insert(k.clone(), v.clone());
            }
        }
        let vm = Vm {
            vmid: c.vmid,
            kind: GuestKind::Lxc,
            node: c.node.clone(),
            running: c.running && !c.template,
            started_at: started - c.uptime as i64,
            pid: 31_000 + 977 * i as u32,
            cpu_usage: c.cpu_usage,
            mem_usage: c.mem_usage,
            config,
            pending: BTreeMap::new(),
            pending_delete: Default::default(),
            snapshots: Default::default(),
            paused: false,
            started_instant: None,
        };
        if vms.insert(c.vmid, vm).is_some() {
            return Err(format!("vmid {} appears twice", c.vmid));
        }
    }
    Ok(())
}

fn seed_mac(vmid: u32) -> String {
    use sha2::{Digest, Sha256};
    let h: String = Sha256::digest(format!("ct-{vmid}-net0").as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("BC:24:11:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6])
}

/// A container volume's name on a storage of type `st` (PVE's plugins: `vm-N-disk-K` on
/// lvmthin/rbd, `subvol-N-disk-K` on zfspool, `N/vm-N-disk-K.raw` on file storages).
fn seed_volname(st: &Storage, prefix: &str, vmid: u32, k: u32) -> String {
    match st.stype.as_str() {
        "zfspool" | "zfs" => format!("subvol-{vmid}-disk-{k}"),
        t if super::volumes::is_file_storage(t) => format!("{vmid}/{prefix}-{vmid}-disk-{k}.raw"),
        _ => format!("{prefix}-{vmid}-disk-{k}"),
    }
}

/// A fresh container volume name on `storage` for `vmid` (numbers as `new_disk_name`).
pub fn new_volname(st: &State, storage: &str, vmid: u32, reserved: &mut Vec<u32>) -> String {
    let qm = super::volumes::new_disk_name(st, storage, vmid, reserved);
    let stype = st.storage(storage).map(|s| s.stype.as_str()).unwrap_or("");
    match stype {
        "zfspool" | "zfs" => qm.replacen("vm-", "subvol-", 1),
        _ => qm.replace(".qcow2", ".raw"),
    }
}

/// `rootfs` and `mp0`..`mp255`: the keys that can hold a volume.
pub fn is_volume_key(k: &str) -> bool {
    k == "rootfs" || is_mp_key(k)
}

pub fn is_mp_key(k: &str) -> bool {
    k.strip_prefix("mp").is_some_and(|n| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n == "0" || !n.starts_with('0'))
            && n.parse::<u32>().is_ok_and(|i| i <= 255)
    })
}

/// PVE's missing-config error for a container.
pub fn missing(node: &str, vmid: impl std::fmt::Display) -> ApiError {
    ApiError::Server(format!(
        "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
    ))
}

/// What a mount point's volume is (`classify_mountpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpType {
    Volume,
    Bind,
    Device,
}

/// A mount point value (`rootfs`/`mpN`) split into its volume and `key=value` options.
#[derive(Debug, Clone)]
pub struct MountPoint {
    pub volume: String,
    pub opts: Vec<(String, String)>,
}

impl MountPoint {
    /// Parses `[volume=]<vol>,key=value,...`; `Err` is the format error text.
    pub fn parse(v: &str) -> Result<MountPoint, String> {
        let mut volume = None;
        let mut opts = Vec::new();
        for (i, part) in v.split(',').enumerate() {
            match part.split_once('=') {
                Some(("volume", val)) => volume = Some(val.to_string()),
                Some((k, val)) if i > 0 || k != part => {
                    if !MP_KEYS.contains(&k) {
                        return Err(format!(
                            "invalid format - format error\n{k}: property is not defined in schema and the schema does not allow additional properties\n"
                        ));
                    }
                    opts.push((k.to_string(), val.to_string()));
                }
                _ if i == 0 => volume = Some(part.to_string()),
                _ => {
                    return Err(format!(
                        "invalid format - format error\n{part}: property is not defined in schema and the schema does not allow additional properties\n"
                    ));
                }
            }
        }
        let volume = volume.filter(|v| !v.is_empty()).ok_or(
            "invalid format - format error\nvolume: property is missing and it is not optional\n",
        )?;
        Ok(MountPoint { volume, opts })
    }
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn set(&mut self, k: &str, v: &str) {
        match self.opts.iter_mut().find(|(a, _)| a == k) {
            Some(o) => o.1 = v.to_string(),
            None => self.opts.push((k.to_string(), v.to_string())),
        }
    }
    pub fn kind(&self) -> MpType {
        if self.volume.starts_with("/dev") {
            MpType::Device
        } else if self.volume.starts_with('/') {
            MpType::Bind
        } else {
            MpType::Volume
        }
    }
    /// `<storage>:<size in GiB>`: a new volume to allocate.
    pub fn alloc_request(&self) -> Option<(&str, f64)> {
        let (sid, n) = self.volume.split_once(':')?;
        let gib: f64 = n.parse().ok()?;
        n.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
            .then_some((sid, gib))
    }
    pub fn render(&self) -> String {
        std::iter::once(self.volume.clone())
            .chain(self.opts.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The options of `ct_mountpoint` / `ct_rootfs` besides the volume.
const MP_KEYS: &[&str] = &[
    "mp",
    "acl",
    "backup",
    "mountoptions",
    "quota",
    "replicate",
    "ro",
    "shared",
    "size",
];

/// The keys of `netN` (`pve-lxc-network`).
const NET_KEYS: &[&str] = &[
    "name",
    "bridge",
    "hwaddr",
    "ip",
    "gw",
    "ip6",
    "gw6",
    "firewall",
    "link_down",
    "mtu",
    "rate",
    "tag",
    "trunks",
    "type",
    "host-managed",
];

/// Validates a `netN` value; returns the options (in the given order) or the format error.
pub fn parse_net(v: &str) -> Result<Vec<(String, String)>, String> {
    let fail = |m: String| Err(format!("invalid format - format error\n{m}\n"));
    let mut out: Vec<(String, String)> = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let Some((k, val)) = part.split_once('=') else {
            return fail(
                "name: value without key, but schema does not define a default key".to_string(),
            );
        };
        if !NET_KEYS.contains(&k) {
            return fail(format!(
                "{k}: property is not defined in schema and the schema does not allow additional properties"
            ));
        }
        let bad = match k {
            "ip" => !(val == "dhcp" || val == "manual" || valid_cidr4(val)),
            "ip6" => !(val == "dhcp" || val == "auto" || val == "manual" || val.contains(':')),
            "gw" => val.parse::<std::net::Ipv4Addr>().is_err(),
            "hwaddr" => !valid_mac(val),
            "firewall" | "link_down" => !matches!(val, "0" | "1"),
            "name" => val.is_empty() || val.len() > 20,
            "type" => val != "veth",
            _ => false,
        };
        if bad {
            let msg = match k {
                "ip" => "ip: invalid format - value does not look like a valid IPv4 network configuration".to_string(),
                "gw" => {
                    "gw: invalid format - value does not look like a valid IPv4 address".to_string()
                }
                "hwaddr" => "hwaddr: value does not match the regex pattern".to_string(),
                "type" => {
                    format!("type: value '{val}' does not have a value in the enumeration 'veth'")
                }
                _ => format!("{k}: value does not match the schema"),
            };
            return fail(msg);
        }
        out.push((k.to_string(), val.to_string()));
    }
    if !out.iter().any(|(k, _)| k == "name") {
        return fail("name: property is missing and it is not optional".into());
    }
    Ok(out)
}

fn valid_cidr4(v: &str) -> bool {
    v.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
    })
}

fn valid_mac(v: &str) -> bool {
    let parts: Vec<&str> = v.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
}

/// Renders net options in pct's order (`print_property_string` sorts keys, `name` first as
/// the default key is not special here; pct writes them alphabetically after `name`).
pub fn render_net(opts: &[(String, String)]) -> String {
    let mut o: Vec<&(String, String)> = opts.iter().collect();
    o.sort_by(|a, b| (a.0 != "name", &a.0).cmp(&(b.0 != "name", &b.0)));
    o.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_and_nets_parse() {
        let m = MountPoint::parse("local-lvm:vm-200-disk-0,size=8G").expect("mp");
        assert_eq!(m.kind(), MpType::Volume);
        assert_eq!(m.opt("size"), Some("8G"));
        let b = MountPoint::parse("/srv/media,mp=/media").expect("bind");
        assert_eq!(b.kind(), MpType::Bind);
        assert_eq!(
            MountPoint::parse("local-lvm:8")
                .expect("alloc")
                .alloc_request(),
            Some(("local-lvm", 8.0))
        );
        assert!(MountPoint::parse("local-lvm:8,bogus=1").is_err());
        let n = parse_net("name=eth0,bridge=vmbr0,ip=dhcp").expect("net");
        assert_eq!(render_net(&n), "name=eth0,bridge=vmbr0,ip=dhcp");
        assert!(parse_net("bridge=vmbr0").is_err());
        assert!(parse_net("name=eth0,ip=10.0.0.5").is_err());
        assert!(parse_net("name=eth0,ip=10.0.0.5/24,gw=10.0.0.1").is_ok());
        assert!(
            is_mp_key("mp0") && is_mp_key("mp255") && !is_mp_key("mp256") && !is_mp_key("mp01")
        );
    }
}
