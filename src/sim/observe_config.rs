//! Observer for tests: one guest's stored config (`key: value` as PVE keeps it), read from the
//! live state without going through the API.

use std::collections::BTreeMap;

use super::SimHandle;

impl SimHandle {
    /// The config of guest `vmid` (without `digest`), or `None` when it does not exist.
    pub fn guest_config(&self, vmid: u32) -> Option<BTreeMap<String, String>> {
        let st = self.shared.lock();
        st.vms.get(&vmid).map(|v| v.config.clone())
    }
}
