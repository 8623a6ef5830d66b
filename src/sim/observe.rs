//! Observers for tests and benches: where every guest is, how big the nodes are, what the HA
//! CRM did — read from the live state without going through the API (so a test can check an
//! invariant, e.g. that no node is ever over capacity during an evacuation, as often as it
//! likes).

use std::collections::BTreeMap;

use super::SimHandle;

/// One guest as [`SimHandle::guest_placement`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlacement {
    /// The node holding its config (it changes when a migration ends).
    pub node: String,
    pub running: bool,
    pub template: bool,
    /// Configured memory (`memory`), bytes.
    pub maxmem_bytes: u64,
    /// vCPUs (`vcpus`, else `cores` × `sockets`).
    pub cores: u32,
    /// The config lock (`migrate` while a migration runs, `backup`, ...).
    pub lock: Option<String>,
}

impl SimHandle {
    /// Every guest by vmid, as it is right now.
    pub fn guest_placement(&self) -> BTreeMap<u32, GuestPlacement> {
        let st = self.shared.lock();
        st.vms
            .values()
            .map(|v| {
                (
                    v.vmid,
                    GuestPlacement {
                        node: v.node.clone(),
                        running: v.running,
                        template: v.is_template(),
                        maxmem_bytes: v.maxmem(),
                        cores: v.cpus(),
                        lock: v.get("lock").map(str::to_string),
                    },
                )
            })
            .collect()
    }

    /// Physical memory of every node, bytes.
    pub fn node_memory(&self) -> BTreeMap<String, u64> {
        let st = self.shared.lock();
        st.nodes
            .iter()
            .map(|n| (n.name.clone(), n.mem_total))
            .collect()
    }

    /// Every node's measured use as `/cluster/resources` and the node status report it:
    /// memory used (bytes) and CPU (fraction of its threads).
    pub fn node_usage(&self) -> BTreeMap<String, (u64, f64)> {
        let st = self.shared.lock();
        st.nodes
            .iter()
            .map(|n| (n.name.clone(), (st.node_mem_used(n), st.node_cpu(n))))
            .collect()
    }

    /// Guests whose guest agent answers right now (running, agent enabled, booted, not
    /// paused), as `agent/network-get-interfaces` would.
    pub fn agents_answering(&self) -> BTreeMap<u32, bool> {
        let delay = self
            .shared
            .scaled(crate::sim::api::qemu::power::AGENT_DELAY_SECS);
        let st = self.shared.lock();
        st.vms
            .values()
            .map(|v| {
                (
                    v.vmid,
                    crate::sim::api::qemu::power::agent_answers(v, delay),
                )
            })
            .collect()
    }

    /// The tasks running right now: `(node, type, id)` of each, e.g. `("pve01", "qmreboot",
    /// "1003")`.
    pub fn running_tasks(&self) -> Vec<(String, String, String)> {
        let st = self.shared.lock();
        st.tasks
            .tasks
            .iter()
            .filter(|t| t.running())
            .map(|t| (t.node.clone(), t.ttype.clone(), t.id.clone()))
            .collect()
    }

    /// HTTP requests the API front has received since start: every one, answered or refused,
    /// whatever the journal ([`SimHandle::requests`]) still holds. Benches and tests read it
    /// before and after a call to count the API calls the call made.
    pub fn api_requests(&self) -> u64 {
        self.shared
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The HA CRM's log (`info`/`err` lines: commands ignored, services moved), oldest first.
    pub fn ha_log(&self) -> Vec<String> {
        self.shared.lock().ha.log.clone()
    }
}
