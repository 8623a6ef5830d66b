//! Where each guest lives, without reading the whole cluster for every per-VM call.
//!
//! [`GuestIndex`] maps a vmid to its node and kind. It is filled by every guest listing of
//! `/cluster/resources` the client decodes anyway and updated by our own writes
//! ([`Client::note_vm_node`], [`Client::forget_vm`]). It is a hint, never trusted:
//! [`Client::find_vm`] asks the indexed node for the guest's `status/current`, which PVE
//! answers only where the guest's config is (500 "Configuration file ... does not exist"
//! elsewhere), and falls back to the full `/cluster/resources` lookup when that call says the
//! guest is not there (moved or deleted behind our back), the node cannot answer, or the
//! token may not see it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::client::Client;
use super::error::Error;
use super::types::{ClusterResource, QemuStatus, ResourceKind, ResourceType};

/// vmid -> (node, kind) of every guest the last listing showed, plus our own writes since.
#[derive(Default)]
pub(crate) struct GuestIndex {
    map: Mutex<HashMap<u32, (Arc<str>, ResourceKind)>>,
}

impl GuestIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (Arc<str>, ResourceKind)>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, vmid: u32) -> Option<(Arc<str>, ResourceKind)> {
        self.lock().get(&vmid).cloned()
    }

    fn set(&self, vmid: u32, node: &str, kind: ResourceKind) {
        self.lock().insert(vmid, (Arc::from(node), kind));
    }

    fn remove(&self, vmid: u32) {
        self.lock().remove(&vmid);
    }

    /// Replaces the index with the guests of a complete listing (node names shared).
    pub(crate) fn refresh(&self, rows: &[ClusterResource]) {
        self.refresh_from(rows.iter().map(|r| (r.vmid, r.node.as_deref(), &r.kind)));
    }

    /// [`GuestIndex::refresh`] from each row's vmid, node and kind.
    pub(crate) fn refresh_from<'a>(
        &self,
        rows: impl ExactSizeIterator<Item = (Option<u32>, Option<&'a str>, &'a ResourceKind)>,
    ) {
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let mut fresh = HashMap::with_capacity(rows.len());
        for row in rows {
            let (Some(vmid), Some(node), kind @ (ResourceKind::Qemu | ResourceKind::Lxc)) = row
            else {
                continue;
            };
            let node = names.entry(node).or_insert_with(|| Arc::from(node)).clone();
            fresh.insert(vmid, (node, kind.clone()));
        }
        *self.lock() = fresh;
    }

    /// Guests indexed (for tests and diagnostics).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Whether a failed `status/current` on the indexed node means "ask the whole cluster":
/// PVE said the guest is not there or may not be shown, or the node cannot answer. A failure
/// of the connection itself is reported as it is (the listing would fail the same way).
fn look_elsewhere(e: &Error) -> bool {
    matches!(
        e,
        Error::Api { .. }
            | Error::Forbidden { .. }
            | Error::NodeOffline { .. }
            | Error::Decode { .. }
    )
}

/// A `/cluster/resources`-shaped row from a guest's live status on `node`.
fn row_from_status(vmid: u32, node: &str, st: QemuStatus) -> ClusterResource {
    let hastate = st.ha.as_ref().and_then(|ha| {
        let managed = ha
            .get("managed")
            .and_then(super::perl::value_as_u64)
            .unwrap_or(0);
        (managed != 0)
            .then(|| ha.get("state").and_then(super::perl::value_as_string))
            .flatten()
    });
    ClusterResource {
        id: format!("qemu/{vmid}"),
        kind: ResourceKind::Qemu,
        vmid: Some(vmid),
        node: Some(node.to_owned()),
        status: Some(st.status),
        name: st.name,
        template: st.template,
        cpu: st.cpu,
        maxcpu: st.cpus,
        mem: st.mem,
        maxmem: st.maxmem,
        disk: None,
        maxdisk: st.maxdisk,
        uptime: st.uptime,
        netin: None,
        netout: None,
        diskread: None,
        diskwrite: None,
        tags: st.tags,
        lock: st.lock,
        pool: None,
        hastate,
        storage: None,
        plugintype: None,
        content: None,
        shared: None,
    }
}

impl Client {
    /// The guest with this vmid and the node it lives on now. With the node known from the
    /// index, one `status/current` on that node answers (and proves the guest is there);
    /// otherwise, or when that node says the guest is not there, one
    /// `/cluster/resources?type=vm` lookup ([`Client::find_vm_listed`]).
    ///
    /// # Errors
    /// [`Error::VmNotFound`] ("vm N does not exist in the cluster") when absent or not visible to
    /// the token (PVE hides guests without VM.Audit).
    pub async fn find_vm(&self, vmid: u32) -> Result<ClusterResource, Error> {
        if let Some((node, ResourceKind::Qemu)) = self.guest_index().get(vmid) {
            match self.get_qemu_status(&node, vmid).await {
                Ok(st) => return Ok(row_from_status(vmid, &node, st)),
                Err(e) if look_elsewhere(&e) => {
                    tracing::debug!(vmid, node = %node, error = %e, "guest index stale, looking it up");
                    self.guest_index().remove(vmid);
                }
                Err(e) => return Err(e),
            }
        }
        self.find_vm_listed(vmid).await
    }

    /// The guest's row in `GET /cluster/resources?type=vm` (which also refreshes the index):
    /// for callers that need what only the listing has (`pool`, the HA state as the cluster
    /// resource manager reports it while it moves a guest).
    ///
    /// # Errors
    /// As [`Client::find_vm`].
    pub async fn find_vm_listed(&self, vmid: u32) -> Result<ClusterResource, Error> {
        let all = self.get_cluster_resources(Some(ResourceType::Vm)).await?;
        all.into_iter()
            .find(|r| {
                r.vmid == Some(vmid) && matches!(r.kind, ResourceKind::Qemu | ResourceKind::Lxc)
            })
            .filter(|r| r.node.is_some())
            .ok_or(Error::VmNotFound { vmid })
    }

    /// The node a VM lives on now, from [`Client::find_vm`].
    pub async fn find_vm_node(&self, vmid: u32) -> Result<String, Error> {
        let vm = self.find_vm(vmid).await?;
        vm.node.ok_or(Error::VmNotFound { vmid })
    }

    /// Records where one of our own writes put a QEMU guest (a clone's target, a migration's
    /// target), so the next per-VM call goes straight there.
    pub fn note_vm_node(&self, vmid: u32, node: &str) {
        self.guest_index().set(vmid, node, ResourceKind::Qemu);
    }

    /// Forgets a guest we deleted.
    pub fn forget_vm(&self, vmid: u32) {
        self.guest_index().remove(vmid);
    }

    /// Guests the index knows (diagnostics and tests).
    pub fn indexed_guests(&self) -> usize {
        self.guest_index().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vmid: u32, node: &str, kind: &str) -> ClusterResource {
        serde_json::from_value(serde_json::json!({
            "id": format!("{kind}/{vmid}"), "type": kind, "vmid": vmid, "node": node
        }))
        .expect("row")
    }

    #[test]
    fn refresh_replaces_and_keeps_only_guests() {
        let idx = GuestIndex::default();
        idx.set(999, "gone", ResourceKind::Qemu);
        let node: ClusterResource = serde_json::from_value(
            serde_json::json!({"id": "node/pve01", "type": "node", "node": "pve01"}),
        )
        .expect("node row");
        idx.refresh(&[row(100, "pve01", "qemu"), row(101, "pve02", "lxc"), node]);
        assert_eq!(idx.len(), 2);
        assert!(
            idx.get(999).is_none(),
            "a guest the listing lacks is dropped"
        );
        assert_eq!(
            idx.get(101).map(|(n, k)| (n.to_string(), k)),
            Some(("pve02".to_owned(), ResourceKind::Lxc))
        );
    }

    #[test]
    fn a_status_row_carries_the_ha_state_only_when_managed() {
        let st: QemuStatus = serde_json::from_value(serde_json::json!({
            "status": "running", "name": "web", "template": 0, "cpus": 2, "maxmem": 1024,
            "ha": {"managed": 1, "state": "started"}, "tags": "a;b"
        }))
        .expect("status");
        let r = row_from_status(100, "pve02", st);
        assert_eq!(r.node.as_deref(), Some("pve02"));
        assert_eq!(r.hastate.as_deref(), Some("started"));
        assert_eq!(r.maxcpu, Some(2.0));
        assert_eq!(r.tag_list(), ["a", "b"]);
        let st: QemuStatus =
            serde_json::from_value(serde_json::json!({"status": "stopped", "ha": {"managed": 0}}))
                .expect("status");
        assert_eq!(row_from_status(100, "pve02", st).hastate, None);
    }
}
