//! QEMU guest reads: list, config, current status.

use super::client::{Client, path_segment};
use super::error::Error;
use super::qemu_config::QemuConfig;
use super::types::{QemuListItem, QemuStatus};

impl Client {
    /// `GET /nodes/{node}/qemu`.
    pub async fn list_qemu(&self, node: &str) -> Result<Vec<QemuListItem>, Error> {
        self.get(&format!("/nodes/{}/qemu", path_segment(node)), &[])
            .await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/config` (current values, pending changes not applied).
    pub async fn get_qemu_config(&self, node: &str, vmid: u32) -> Result<QemuConfig, Error> {
        self.get(
            &format!("/nodes/{}/qemu/{vmid}/config", path_segment(node)),
            &[],
        )
        .await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/status/current`: authoritative state, unlike the
    /// ~10 s old `/cluster/resources`.
    pub async fn get_qemu_status(&self, node: &str, vmid: u32) -> Result<QemuStatus, Error> {
        self.get(
            &format!("/nodes/{}/qemu/{vmid}/status/current", path_segment(node)),
            &[],
        )
        .await
    }
}
