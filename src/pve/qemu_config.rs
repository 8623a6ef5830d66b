//! `GET /nodes/{node}/qemu/{vmid}/config`: a key-value map (PVE's config keys are open-ended:
//! `scsi0`, `net3`, `unused1`...), with typed helpers for the keys the manager reasons about.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::perl;
use super::types::split_tags;

/// A VM's configuration, keyed like `qm config`. Values stay as PVE sent them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QemuConfig(pub BTreeMap<String, Value>);

/// One disk-like entry of the config (`scsi0`, `virtio1`, `efidisk0`, `unused0`..., and a
/// container's `rootfs` and `mpN`; a bind mount's volume is a host path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskEntry {
    /// The config key, e.g. `scsi0`.
    pub key: String,
    /// The volume, e.g. `local-lvm:vm-100-disk-0` (first element of the property string).
    pub volume: String,
    /// The storage id part of the volume, when it has one.
    pub storage: Option<String>,
    /// `size=` as written, e.g. `32G`.
    pub size: Option<String>,
    pub is_cdrom: bool,
    /// `unusedN`: detached, not attached to the VM.
    pub is_unused: bool,
}

const DISK_PREFIXES: [&str; 8] = [
    "ide", "sata", "scsi", "virtio", "efidisk", "tpmstate", "unused", "mp",
];

impl QemuConfig {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
    /// A value as text (numbers too).
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.0.get(key).and_then(perl::value_as_string)
    }
    fn get_u64(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(perl::value_as_u64)
    }
    fn get_bool(&self, key: &str) -> bool {
        self.get_u64(key).is_some_and(|v| v != 0)
    }
    /// `name`, or a container's `hostname`.
    pub fn name(&self) -> Option<String> {
        self.get_str("name").or_else(|| self.get_str("hostname"))
    }
    /// A number (`swap`, `cores`...), when set.
    pub fn get_number(&self, key: &str) -> Option<u64> {
        self.get_u64(key)
    }
    /// A flag such as `unprivileged` (`1`/`0`), when set.
    pub fn get_flag(&self, key: &str) -> Option<bool> {
        self.get_u64(key).map(|v| v != 0)
    }
    pub fn tags(&self) -> Vec<String> {
        split_tags(&self.get_str("tags").unwrap_or_default())
    }
    pub fn lock(&self) -> Option<String> {
        self.get_str("lock")
    }
    pub fn protection(&self) -> bool {
        self.get_bool("protection")
    }
    pub fn template(&self) -> bool {
        self.get_bool("template")
    }
    /// `cores`, default 1.
    pub fn cores(&self) -> u64 {
        self.get_u64("cores").unwrap_or(1)
    }
    /// `sockets`, default 1.
    pub fn sockets(&self) -> u64 {
        self.get_u64("sockets").unwrap_or(1)
    }
    /// Memory in MiB (`memory: 4096` or `memory: current=4096,...`), default 512.
    pub fn memory_mib(&self) -> u64 {
        let Some(text) = self.get_str("memory") else {
            return 512;
        };
        text.split(',')
            .find_map(|part| {
                let v = part.strip_prefix("current=").unwrap_or(part);
                v.trim().parse().ok()
            })
            .unwrap_or(512)
    }
    pub fn digest(&self) -> Option<String> {
        self.get_str("digest")
    }
    /// Disk-like entries, sorted by key. Snapshot sub-sections are not part of this map.
    pub fn disks(&self) -> Vec<DiskEntry> {
        self.0
            .iter()
            .filter(|(k, _)| is_disk_key(k))
            .filter_map(|(k, v)| {
                let text = perl::value_as_string(v)?;
                let mut parts = text.split(',');
                let volume = parts.next().unwrap_or("").trim().to_owned();
                let mut size = None;
                let mut is_cdrom = false;
                for p in parts {
                    match p.split_once('=') {
                        Some(("size", s)) => size = Some(s.to_owned()),
                        Some(("media", "cdrom")) => is_cdrom = true,
                        _ => {}
                    }
                }
                let storage = volume
                    .split_once(':')
                    .map(|(s, _)| s.to_owned())
                    .filter(|s| !s.is_empty() && volume != "none" && volume != "cdrom");
                Some(DiskEntry {
                    key: k.clone(),
                    storage,
                    size,
                    is_cdrom,
                    is_unused: k.starts_with("unused"),
                    volume,
                })
            })
            .collect()
    }
}

fn is_disk_key(key: &str) -> bool {
    key == "rootfs"
        || DISK_PREFIXES.iter().any(|p| {
            key.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() -> Result<(), serde_json::Error> {
        let c: QemuConfig = serde_json::from_value(serde_json::json!({
            "name": "web01", "tags": "prod;web", "cores": "4", "sockets": 2, "memory": "current=8192",
            "template": 1, "protection": "0", "lock": "backup", "digest": "abc",
            "scsi0": "local-lvm:vm-100-disk-0,iothread=1,size=32G",
            "ide2": "local:iso/debian.iso,media=cdrom,size=600M",
            "unused0": "local-lvm:vm-100-disk-1", "net0": "virtio=AA:BB,bridge=vmbr0",
            "scsihw": "virtio-scsi-single"
        }))?;
        assert_eq!(c.name().as_deref(), Some("web01"));
        assert_eq!(c.tags(), ["prod", "web"]);
        assert_eq!((c.cores(), c.sockets(), c.memory_mib()), (4, 2, 8192));
        assert!(c.template() && !c.protection());
        assert_eq!(c.lock().as_deref(), Some("backup"));
        let disks = c.disks();
        let keys: Vec<&str> = disks.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["ide2", "scsi0", "unused0"]);
        assert!(disks[0].is_cdrom);
        assert_eq!(disks[1].size.as_deref(), Some("32G"));
        assert_eq!(disks[1].storage.as_deref(), Some("local-lvm"));
        assert!(disks[2].is_unused);
        let empty = QemuConfig::default();
        assert_eq!((empty.cores(), empty.memory_mib()), (1, 512));
        Ok(())
    }
}
