//! VMID allocation: the lowest free id inside a configured range, never `/cluster/nextid`
//! alone (it reserves nothing, so parallel creates collide).
//!
//! Why a reservation set behind a mutex: picking an id and creating the VM are two requests;
//! between them another call in this server could pick the same id. The mutex serializes the
//! *pick* (one `/cluster/resources` read), the reservation keeps the id out of every later pick
//! until the create has landed (then the cluster itself lists it) or failed. Collisions with
//! other clients are still possible and are handled by the caller retrying with a new id.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::config::VmidRange;
use crate::pve::ResourceType;

use super::{Context, Error};

#[derive(Default)]
pub struct Allocator {
    pick: tokio::sync::Mutex<()>,
    reserved: Arc<Mutex<BTreeSet<u32>>>,
}

/// An id held for one create; released on drop.
pub struct Reservation {
    pub vmid: u32,
    reserved: Arc<Mutex<BTreeSet<u32>>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut r) = self.reserved.lock() {
            r.remove(&self.vmid);
        }
    }
}

/// Lowest id of `range` not in `used`; pure.
pub fn lowest_free(range: &VmidRange, used: &BTreeSet<u32>) -> Option<u32> {
    (range.start()..=range.end()).find(|id| !used.contains(id))
}

impl Allocator {
    /// Reserves the lowest free id of `range`, skipping `avoid` (ids that just collided).
    ///
    /// # Errors
    /// When the range is full, or the cluster cannot be read.
    pub async fn reserve(
        &self,
        ctx: &Context,
        range: &VmidRange,
        range_name: &str,
        avoid: &BTreeSet<u32>,
    ) -> Result<Reservation, Error> {
        let _pick = self.pick.lock().await;
        let rows = ctx
            .client
            .get_cluster_resources(Some(ResourceType::Vm))
            .await?;
        let mut used: BTreeSet<u32> = rows.iter().filter_map(|r| r.vmid).collect();
        used.extend(avoid.iter().copied());
        // VMIDs the Ansible inventory assigns belong to hosts its playbooks will create.
        used.extend(super::ansible::hooks::claimed_vmids(ctx).await);
        let mut reserved = self
            .reserved
            .lock()
            .map_err(|_| Error::Setup("vmid allocator poisoned".into()))?;
        used.extend(reserved.iter().copied());
        let vmid = lowest_free(range, &used).ok_or_else(|| {
            Error::refused(format!(
                "vmid_ranges.{range_name} ({range}) has no free id left; widen the range in cluster-config.yaml or delete unused guests"
            ))
        })?;
        reserved.insert(vmid);
        Ok(Reservation {
            vmid,
            reserved: Arc::clone(&self.reserved),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_skips_used_and_stays_in_range() {
        let r = VmidRange::new(1000, 1003).expect("range");
        let used: BTreeSet<u32> = [999, 1000, 1002].into_iter().collect();
        assert_eq!(lowest_free(&r, &used), Some(1001));
        let full: BTreeSet<u32> = (1000..=1003).collect();
        assert_eq!(lowest_free(&r, &full), None);
    }
}
