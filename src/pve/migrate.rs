//! Moving guests between nodes: the migration preconditions, the migration itself, and the
//! HA stack's view of guests (resources, groups on PVE 8, node-affinity rules on PVE 9).
//!
//! `POST .../migrate` validates early (target = source, a running VM without `online`, local
//! disks on a live migration without `with-local-disks`, local devices, a lock) and answers an
//! HTTP error; a later failure ends the `qmigrate` task in error. For an HA-managed guest the
//! same request answers the UPID of a `hamigrate` task that only *asks* the HA manager: the
//! guest moves later, in a task of the HA stack (qemu-server `API2/Qemu.pm` `migrate_vm`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::client::{Client, path_segment};
use super::error::Error;
use super::upid::Upid;

/// One local disk `GET .../migrate` reports.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LocalDisk {
    #[serde(default, deserialize_with = "super::perl::string_or_empty")]
    pub volid: String,
    /// Bytes.
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub cdrom: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub is_unused: Option<bool>,
    /// Config key (PVE 8 and later name it `drivename`).
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub drivename: Option<String>,
}

/// `GET /nodes/{node}/qemu/{vmid}/migrate`: where the guest may go and what ties it to its
/// node. Fields PVE adds later are ignored; missing ones decode empty.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MigratePrecondition {
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub running: Option<bool>,
    #[serde(default)]
    pub allowed_nodes: Option<Vec<String>>,
    /// Node → why not (`unavailable_storages`, `blocking-ha-resources`, ...), as PVE sent it.
    #[serde(default)]
    pub not_allowed_nodes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub local_disks: Vec<LocalDisk>,
    /// Config keys of devices that block migration (`hostpci0`, `usb1`).
    #[serde(default)]
    pub local_resources: Vec<String>,
    /// Mapped devices (`hostpci0` with `mapping=`): movable when the target has the mapping.
    #[serde(default, rename = "mapped-resources")]
    pub mapped_resources: Vec<String>,
    /// HA resources moved along because of a positive resource-affinity rule (PVE 9).
    #[serde(default, rename = "dependent-ha-resources")]
    pub dependent_ha_resources: Vec<String>,
}

/// `POST /nodes/{node}/qemu/{vmid}/migrate`.
#[derive(Debug, Clone, Default)]
pub struct MigrateQemu {
    pub target: String,
    /// Live migration of a running VM (PVE refuses a running VM without it).
    pub online: Option<bool>,
    /// Copy local disks along (wire name `with-local-disks`).
    pub with_local_disks: Option<bool>,
    /// Storage on the target for the local disks (`storage-pair-list`; one id maps all).
    pub targetstorage: Option<String>,
    /// KiB/s.
    pub bwlimit: Option<u64>,
}

/// `POST /nodes/{node}/lxc/{vmid}/migrate` parameters. Containers have no live migration: a
/// running one moves with `restart` (shut down, moved, started on the target).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrateLxc {
    pub target: String,
    /// Restart migration of a running container (PVE refuses a running one without it).
    pub restart: Option<bool>,
    /// Storage on the target for local volumes (wire name `target-storage`; one id maps all).
    pub target_storage: Option<String>,
    /// KiB/s.
    pub bwlimit: Option<u64>,
}

impl MigrateLxc {
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("target", self.target.clone())];
        if let Some(v) = self.restart {
            p.push(("restart", u8::from(v).to_string()));
        }
        if let Some(s) = &self.target_storage {
            p.push(("target-storage", s.clone()));
        }
        if let Some(b) = self.bwlimit {
            p.push(("bwlimit", b.to_string()));
        }
        p
    }
}

impl MigrateQemu {
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("target", self.target.clone())];
        if let Some(v) = self.online {
            p.push(("online", u8::from(v).to_string()));
        }
        if let Some(v) = self.with_local_disks {
            p.push(("with-local-disks", u8::from(v).to_string()));
        }
        if let Some(s) = &self.targetstorage {
            p.push(("targetstorage", s.clone()));
        }
        if let Some(b) = self.bwlimit {
            p.push(("bwlimit", b.to_string()));
        }
        p
    }
}

/// One row of `GET /cluster/ha/resources`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HaResource {
    /// `vm:101`, `ct:200`.
    #[serde(default, deserialize_with = "super::perl::string_or_empty")]
    pub sid: String,
    /// `started`, `stopped`, `ignored`, `disabled`.
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub state: Option<String>,
    /// HA group (PVE 8; migrated to rules on PVE 9).
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub group: Option<String>,
}

impl HaResource {
    /// The guest id of a `vm:N` or `ct:N` sid.
    pub fn vmid(&self) -> Option<u32> {
        self.sid.split_once(':').and_then(|(_, n)| n.parse().ok())
    }
}

/// One row of `GET /cluster/ha/groups` (PVE 8).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HaGroup {
    #[serde(default, deserialize_with = "super::perl::string_or_empty")]
    pub group: String,
    /// `pve01:2,pve02` (node with optional priority).
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub nodes: Option<String>,
    /// Members may run only on the group's nodes.
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub restricted: Option<bool>,
}

/// One row of `GET /cluster/ha/rules` (PVE 9).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HaRule {
    #[serde(default, deserialize_with = "super::perl::string_or_empty")]
    pub rule: String,
    /// `node-affinity` or `resource-affinity`.
    #[serde(default, rename = "type", deserialize_with = "super::perl::opt_string")]
    pub rule_type: Option<String>,
    /// `vm:101,ct:200`.
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub resources: Option<String>,
    /// `pve01:2,pve02` (node-affinity).
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub nodes: Option<String>,
    /// Node-affinity: the resources may run only on these nodes.
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub strict: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub disable: Option<bool>,
}

/// The node names of a `node[:priority],...` list.
pub fn ha_node_names(list: &str) -> Vec<String> {
    list.split(',')
        .map(|n| n.split(':').next().unwrap_or("").trim())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Client {
    /// `GET /nodes/{node}/qemu/{vmid}/migrate[?target=]`: PVE's own migration preconditions.
    pub async fn get_migrate_precondition(
        &self,
        node: &str,
        vmid: u32,
        target: Option<&str>,
    ) -> Result<(MigratePrecondition, Vec<String>), Error> {
        let path = format!("/nodes/{}/qemu/{vmid}/migrate", path_segment(node));
        let query: Vec<(&str, String)> = target
            .map(|t| ("target", t.to_string()))
            .into_iter()
            .collect();
        self.get_lenient(&path, &query).await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/migrate`: task `qmigrate`, or `hamigrate` (a request
    /// to the HA manager) for an HA-managed guest.
    pub async fn migrate_qemu(
        &self,
        node: &str,
        vmid: u32,
        p: &MigrateQemu,
    ) -> Result<Upid, Error> {
        let path = format!("/nodes/{}/qemu/{vmid}/migrate", path_segment(node));
        self.post(&path, &p.to_params()).await
    }

    /// `POST /nodes/{node}/lxc/{vmid}/migrate`: task `vzmigrate`, or `hamigrate` for an
    /// HA-managed container.
    pub async fn migrate_lxc(&self, node: &str, vmid: u32, p: &MigrateLxc) -> Result<Upid, Error> {
        let path = format!("/nodes/{}/lxc/{vmid}/migrate", path_segment(node));
        self.post(&path, &p.to_params()).await
    }

    /// `GET /cluster/ha/resources`.
    pub async fn get_ha_resources(&self) -> Result<(Vec<HaResource>, Vec<String>), Error> {
        self.get_list("/cluster/ha/resources", &[]).await
    }

    /// `GET /cluster/ha/groups` (PVE 8; PVE 9 answers an empty list or an error once groups
    /// were migrated to rules).
    pub async fn get_ha_groups(&self) -> Result<(Vec<HaGroup>, Vec<String>), Error> {
        self.get_list("/cluster/ha/groups", &[]).await
    }

    /// `GET /cluster/ha/rules` (PVE 9).
    pub async fn get_ha_rules(&self) -> Result<(Vec<HaRule>, Vec<String>), Error> {
        self.get_list("/cluster/ha/rules", &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precondition_decodes_perl_shapes_and_ignores_new_fields() {
        let v = serde_json::json!({
            "running": "1", "allowed_nodes": ["pve02"], "not_allowed_nodes": {"pve03": {"unavailable_storages": ["local-lvm"]}},
            "local_disks": [{"volid": "local-lvm:vm-101-disk-0", "size": "34359738368", "cdrom": 0, "is_unused": 0, "drivename": "scsi0"}],
            "local_resources": [], "mapped-resources": [], "mapped-resource-info": {}, "has-dbus-vmstate": 1, "future": true
        });
        let p: MigratePrecondition = serde_json::from_value(v).expect("decodes");
        assert_eq!(p.running, Some(true));
        assert_eq!(p.local_disks[0].size, Some(32 << 30));
        assert_eq!(p.local_disks[0].drivename.as_deref(), Some("scsi0"));
        assert!(p.not_allowed_nodes.is_some_and(|n| n.contains_key("pve03")));
    }

    #[test]
    fn migrate_params_use_pve_wire_names() {
        let p = MigrateQemu {
            target: "pve02".into(),
            online: Some(true),
            with_local_disks: Some(true),
            targetstorage: Some("local-lvm".into()),
            bwlimit: Some(102_400),
        };
        let names: Vec<&str> = p.to_params().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "target",
                "online",
                "with-local-disks",
                "targetstorage",
                "bwlimit"
            ]
        );
    }

    #[test]
    fn ha_lists() {
        assert_eq!(ha_node_names("pve01:2, pve02,,"), ["pve01", "pve02"]);
        let r = HaResource {
            sid: "vm:101".into(),
            ..HaResource::default()
        };
        assert_eq!(r.vmid(), Some(101));
    }
}
