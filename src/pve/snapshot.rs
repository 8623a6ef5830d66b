//! Snapshots of a VM or a container: list, create, roll back, delete. The writes answer a UPID
//! (`qmsnapshot`, `qmrollback`, `qmdelsnapshot`; `vzsnapshot`, `vzrollback`, `vzdelsnapshot`
//! for a container); the guest holds `lock: snapshot`, `rollback` or
//! `snapshot-delete` while the task runs.

use serde::Deserialize;

use super::client::{Client, path_segment};
use super::error::Error;
use super::lxc::{GuestType, guest_path};
use super::upid::Upid;

/// One entry of `GET .../snapshot`; the pseudo-entry `current` is the VM's present state,
/// whose `parent` is the snapshot it derives from.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SnapshotItem {
    #[serde(default, deserialize_with = "super::perl::string_or_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub parent: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub description: Option<String>,
    /// Unix time.
    #[serde(default, deserialize_with = "super::perl::opt_i64")]
    pub snaptime: Option<i64>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub vmstate: Option<bool>,
    /// `running` for the `current` entry of a running VM (PVE 8+).
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub running: Option<String>,
}

fn snap_path(t: GuestType, node: &str, vmid: u32, rest: &str) -> String {
    guest_path(t, node, vmid, &format!("/snapshot{rest}"))
}

impl Client {
    /// `GET /nodes/{node}/{qemu|lxc}/{vmid}/snapshot`.
    pub async fn list_snapshots(
        &self,
        t: GuestType,
        node: &str,
        vmid: u32,
    ) -> Result<(Vec<SnapshotItem>, Vec<String>), Error> {
        self.get_list(&snap_path(t, node, vmid, ""), &[]).await
    }

    /// `POST /nodes/{node}/{qemu|lxc}/{vmid}/snapshot` (task `qmsnapshot`).
    pub async fn create_snapshot(
        &self,
        t: GuestType,
        node: &str,
        vmid: u32,
        name: &str,
        description: Option<&str>,
        vmstate: bool,
    ) -> Result<Upid, Error> {
        let mut form = vec![("snapname", name.to_string())];
        if let Some(d) = description {
            form.push(("description", d.to_string()));
        }
        if vmstate {
            form.push(("vmstate", "1".to_string()));
        }
        self.post(&snap_path(t, node, vmid, ""), &form).await
    }

    /// `POST /nodes/{node}/{qemu|lxc}/{vmid}/snapshot/{snapname}/rollback` (task `qmrollback`).
    pub async fn rollback_snapshot(
        &self,
        t: GuestType,
        node: &str,
        vmid: u32,
        name: &str,
        start: bool,
    ) -> Result<Upid, Error> {
        let path = snap_path(t, node, vmid, &format!("/{}/rollback", path_segment(name)));
        let form: Vec<(&str, String)> = if start {
            vec![("start", "1".to_string())]
        } else {
            vec![]
        };
        self.post(&path, &form).await
    }

    /// `DELETE /nodes/{node}/{qemu|lxc}/{vmid}/snapshot/{snapname}` (task `qmdelsnapshot`).
    pub async fn delete_snapshot(
        &self,
        t: GuestType,
        node: &str,
        vmid: u32,
        name: &str,
        force: bool,
    ) -> Result<Upid, Error> {
        let path = snap_path(t, node, vmid, &format!("/{}", path_segment(name)));
        let query: Vec<(&str, String)> = if force {
            vec![("force", "1".to_string())]
        } else {
            vec![]
        };
        self.delete(&path, &query).await
    }
}
