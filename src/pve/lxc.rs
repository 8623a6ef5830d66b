//! LXC container calls next to their QEMU counterparts, and [`GuestType`], which picks between
//! the two by the type `/cluster/resources` reports for the guest (never by a caller's word).
//!
//! Where the two APIs take the same parameters and answer the same shape (config and status
//! reads, pending changes, snapshots) one method serves both with a [`GuestType`]. Where they
//! differ, the container has its own method: power actions take fewer options (no start
//! timeout, no `keepActive`), the config is written only synchronously (`PUT`, no `POST`
//! form), the disks are `rootfs` and `mpN`, and destroy has `force` instead of `skiplock`.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::client::{Client, path_segment};
use super::error::Error;
use super::qemu_config::QemuConfig;
use super::qemu_write_types::QemuPendingItem;
use super::types::{QemuStatus, ResourceKind};
use super::upid::Upid;

/// The two kinds of guest PVE runs, as `/cluster/resources` types them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    Qemu,
    Lxc,
}

impl GuestType {
    /// The guest type of a resource row's kind; `None` for nodes, storages and the like.
    pub fn of(kind: &ResourceKind) -> Option<Self> {
        match kind {
            ResourceKind::Qemu => Some(Self::Qemu),
            ResourceKind::Lxc => Some(Self::Lxc),
            _ => None,
        }
    }

    /// The type a `qemu`/`lxc` text names (a listing's `type`): `lxc` is a container, anything
    /// else a VM.
    pub fn from_name(name: &str) -> Self {
        if name == "lxc" { Self::Lxc } else { Self::Qemu }
    }

    /// The path segment and resource type: `qemu` or `lxc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Lxc => "lxc",
        }
    }

    /// How a message starts to name one: `vm 100`, `container 1200`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Qemu => "vm",
            Self::Lxc => "container",
        }
    }

    /// How a message names one: `VM` or `container`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Qemu => "VM",
            Self::Lxc => "container",
        }
    }
}

/// `/nodes/{node}/{qemu|lxc}/{vmid}{suffix}`.
pub fn guest_path(t: GuestType, node: &str, vmid: u32, suffix: &str) -> String {
    format!(
        "/nodes/{}/{}/{vmid}{suffix}",
        path_segment(node),
        t.as_str()
    )
}

/// One entry of `GET /nodes/{node}/lxc/{vmid}/interfaces` (read from inside the running
/// container; `inet` is `ADDRESS/PREFIX`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LxcInterface {
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub hwaddr: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub inet: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub inet6: Option<String>,
}

fn ct_path(node: &str, vmid: u32, suffix: &str) -> String {
    guest_path(GuestType::Lxc, node, vmid, suffix)
}

fn flag(form: &mut Vec<(&'static str, String)>, key: &'static str, on: bool) {
    if on {
        form.push((key, "1".to_owned()));
    }
}

impl Client {
    /// `GET .../{qemu|lxc}/{vmid}/config` (current values; pending changes not applied).
    pub async fn get_guest_config(
        &self,
        t: GuestType,
        node: &str,
        vmid: u32,
    ) -> Result<QemuConfig, Error> {
        self.get(&guest_path(t, node, vmid, "/config"), &[]).await
    }

    /// `GET .../{qemu|lxc}/{vmid}/status/current`: the authoritative state.
    pub async fn get_guest_status(
        &self,
        t: GuestType,
        node: &str,
        vmid: u32,
    ) -> Result<QemuStatus, Error> {
        self.get(&guest_path(t, node, vmid, "/status/current"), &[])
            .await
    }

    /// `GET .../{qemu|lxc}/{vmid}/pending`.
    pub async fn get_guest_pending(
        &self,
        t: GuestType,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<QemuPendingItem>, Error> {
        self.get(&guest_path(t, node, vmid, "/pending"), &[]).await
    }

    /// `POST .../{qemu|lxc}/{vmid}/status/start` with PVE's defaults (tasks `qmstart` /
    /// `vzstart`, or `hastart` for an HA-managed guest).
    pub async fn start_guest(&self, t: GuestType, node: &str, vmid: u32) -> Result<Upid, Error> {
        self.post(&guest_path(t, node, vmid, "/status/start"), &[])
            .await
    }

    /// `POST /nodes/{node}/lxc/{vmid}/status/stop`: kills every process (task `vzstop`).
    pub async fn stop_lxc(
        &self,
        node: &str,
        vmid: u32,
        overrule_shutdown: bool,
    ) -> Result<Upid, Error> {
        let mut form = Vec::new();
        flag(&mut form, "overrule-shutdown", overrule_shutdown);
        self.post(&ct_path(node, vmid, "/status/stop"), &form).await
    }

    /// `POST /nodes/{node}/lxc/{vmid}/status/shutdown` (task `vzshutdown`): `timeout`
    /// seconds (PVE's default 60), then `forceStop` kills it, or the task fails.
    pub async fn shutdown_lxc(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u64>,
        force_stop: bool,
    ) -> Result<Upid, Error> {
        let mut form: Vec<(&'static str, String)> = Vec::new();
        if let Some(t) = timeout {
            form.push(("timeout", t.to_string()));
        }
        flag(&mut form, "forceStop", force_stop);
        self.post(&ct_path(node, vmid, "/status/shutdown"), &form)
            .await
    }

    /// `POST /nodes/{node}/lxc/{vmid}/status/reboot` (task `vzreboot`).
    pub async fn reboot_lxc(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u64>,
    ) -> Result<Upid, Error> {
        let form: Vec<(&str, String)> = timeout
            .map(|t| ("timeout", t.to_string()))
            .into_iter()
            .collect();
        self.post(&ct_path(node, vmid, "/status/reboot"), &form)
            .await
    }

    /// `DELETE /nodes/{node}/lxc/{vmid}` (task `vzdestroy`), parameters in the query string.
    /// `purge` also removes the guest from backup and replication jobs and HA.
    pub async fn delete_lxc(
        &self,
        node: &str,
        vmid: u32,
        purge: bool,
        destroy_unreferenced_disks: bool,
    ) -> Result<Upid, Error> {
        let mut query = Vec::new();
        flag(&mut query, "purge", purge);
        flag(
            &mut query,
            "destroy-unreferenced-disks",
            destroy_unreferenced_disks,
        );
        self.delete(&ct_path(node, vmid, ""), &query).await
    }

    /// `PUT /nodes/{node}/lxc/{vmid}/config`: containers have only the synchronous form.
    /// `params` are `(option, value)` pairs as `pct set` names them; `("delete", "mp1")`
    /// removes options. Values never appear in error messages.
    pub async fn set_lxc_config(
        &self,
        node: &str,
        vmid: u32,
        params: &[(String, String)],
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let form = super::qemu_write::config_form(vmid, params, digest)?;
        let _: IgnoredAny = self.put(&ct_path(node, vmid, "/config"), &form).await?;
        Ok(())
    }

    /// `PUT /nodes/{node}/lxc/{vmid}/resize` of `rootfs` or `mpN` (task `resize`; PVE
    /// refuses to shrink in the task: "unable to shrink disk size").
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a disk that is not `rootfs`/`mpN` or a size not matching
    /// `+?N[.N][K|M|G|T]`, before sending.
    pub async fn resize_lxc_disk(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
        digest: Option<&str>,
    ) -> Result<Option<Upid>, Error> {
        let mount_point = disk.strip_prefix("mp").is_some_and(|n| {
            n.bytes().all(|b| b.is_ascii_digit())
                && (n == "0" || !n.starts_with('0'))
                && n.parse::<u16>().is_ok_and(|i| i < 256)
        });
        if disk != "rootfs" && !mount_point {
            return Err(Error::invalid(format!(
                "cannot resize {disk:?} of container {vmid}: a container's disks are rootfs and mp0, mp1, ...; name one of those"
            )));
        }
        let params = super::qemu_write::resize_form("container", vmid, disk, size, digest)?;
        self.put(&ct_path(node, vmid, "/resize"), &params).await
    }

    /// `GET /nodes/{node}/lxc/{vmid}/interfaces`: the running container's addresses (PVE
    /// answers no data for a stopped one: an empty list here).
    pub async fn get_lxc_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<LxcInterface>, Error> {
        let list: Option<Vec<LxcInterface>> =
            self.get(&ct_path(node, vmid, "/interfaces"), &[]).await?;
        Ok(list.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_resource_kind() {
        assert_eq!(GuestType::of(&ResourceKind::Lxc), Some(GuestType::Lxc));
        assert_eq!(GuestType::of(&ResourceKind::Qemu), Some(GuestType::Qemu));
        assert_eq!(GuestType::of(&ResourceKind::Storage), None);
        assert_eq!(
            guest_path(GuestType::Lxc, "pve02", 1200, "/config"),
            "/nodes/pve02/lxc/1200/config"
        );
        assert_eq!(GuestType::Lxc.noun(), "container");
    }
}
