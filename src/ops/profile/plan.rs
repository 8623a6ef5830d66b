//! The pure planner of a spin-up: which guests the profile asks for (names such as
//! `talos-staging-cp-1`), which already exist (found by the profile's tags, matched by name),
//! the VMIDs of the missing ones (the role's `start_vmid`, else the lowest free ids of
//! `vmid_ranges.vms`), their nodes (`placement: spread` over the nodes with room, the capacity
//! model of the evacuation planner), their static addresses, and where each clone runs (PVE
//! clones to another node only from shared storage: a template on local storage is cloned on
//! its node and the clone moved offline).
//!
//! No I/O: everything comes in as plain data.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::VmidRange;
use crate::config::profile::{Addressing, ClusterProfile, Role};
use crate::ops::plan::{ClusterSnapshot, GuestInfo, GuestSpec, NodeRejection, Ratios, spread};

/// A guest that carries every tag of the profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    pub vmid: u32,
    /// `qemu` (a VM) or `lxc` (a container).
    #[serde(rename = "type")]
    pub guest_type: String,
    pub name: String,
    pub node: String,
    pub status: String,
}

/// The template a profile clones, as found in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateFacts {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// Storage of its boot disk.
    pub storage: String,
    /// Whether that storage is shared (a clone can then go straight to another node).
    pub shared: bool,
    /// Whether its config enables the guest agent.
    pub agent: bool,
    /// A container template: profiles build VMs, so it is refused by name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub container: bool,
    pub tags: Vec<String>,
}

/// One guest of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedGuest {
    pub vmid: u32,
    pub name: String,
    pub role: Role,
    /// The node it runs on.
    pub node: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk: String,
    /// `ipconfig0` written to it: `ip=dhcp` or `ip=A/P,gw=G`.
    pub ipconfig0: String,
    /// Its address when static.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Already there (found by the profile's tags).
    pub exists: bool,
    /// Its state when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The template (or its copy on `node`) it is cloned from.
    pub template: u32,
    /// Where the clone task runs (the template's node).
    pub clone_on: String,
    /// Cloned on `clone_on`, then moved offline to `node` (template on local storage).
    pub moved: bool,
}

/// What the planner decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProfilePlan {
    pub guests: Vec<PlannedGuest>,
    /// Guests that fit nowhere, with every node's reason.
    pub unplaceable: Vec<Unplaceable>,
    /// Problems that stop the spin-up (VMID range full, a role's ids taken...).
    pub problems: Vec<String>,
    /// New guests per node.
    pub per_node: Vec<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Unplaceable {
    pub name: String,
    pub rejected: Vec<NodeRejection>,
}

/// What the planner reads.
pub struct PlanInput<'a> {
    pub profile: &'a ClusterProfile,
    pub snap: &'a ClusterSnapshot,
    pub members: &'a [Member],
    pub template: &'a TemplateFacts,
    /// Copies of the template on other nodes (`template_copies`).
    pub copies: &'a [TemplateFacts],
    pub vms_range: VmidRange,
    /// Storage of the clones' disks.
    pub storage: &'a str,
    pub ratios: Ratios,
}

/// The name of the `index`-th (1-based) guest of `role`.
pub fn guest_name(profile: &str, role: Role, index: u32) -> String {
    format!("{profile}-{}-{index}", role.short())
}

/// Plans the spin-up.
pub fn plan(input: &PlanInput<'_>) -> ProfilePlan {
    let p = input.profile;
    let mut used: BTreeSet<u32> = input.snap.guests.iter().map(|g| g.vmid).collect();
    let mut problems = Vec::new();
    let mut guests: Vec<PlannedGuest> = Vec::new();
    let mut sequence = 0u32;
    // A working copy of the cluster: each role's new guests are booked before the next role is
    // placed, so the batch as a whole never overcommits a node.
    let mut snap = input.snap.clone();
    let mut unplaceable = Vec::new();
    for role in &p.roles {
        let mut new_idx = Vec::new();
        let mut next_explicit = role.start_vmid;
        for i in 1..=role.count {
            let name = guest_name(&p.name, role.role, i);
            let (address, ipconfig0) = addressing(p, sequence);
            sequence += 1;
            if let Some(m) = input.members.iter().find(|m| m.name == name) {
                guests.push(PlannedGuest {
                    vmid: m.vmid,
                    name,
                    role: role.role,
                    node: m.node.clone(),
                    cores: role.cores,
                    memory_mib: role.memory_mib,
                    disk: role.disk.clone(),
                    ipconfig0,
                    address,
                    exists: true,
                    status: Some(m.status.clone()),
                    template: input.template.vmid,
                    clone_on: input.template.node.clone(),
                    moved: false,
                });
                if let Some(n) = next_explicit.as_mut() {
                    *n += 1;
                }
                continue;
            }
            let vmid = match next_explicit {
                Some(id) => {
                    next_explicit = Some(id + 1);
                    if !input.vms_range.contains(id) {
                        problems.push(format!(
                            "{name}: vmid {id} (from start_vmid) is outside vmid_ranges.vms {}",
                            input.vms_range
                        ));
                    } else if used.contains(&id) {
                        problems.push(format!(
                            "{name}: vmid {id} (from start_vmid) is already used by another guest; choose another start_vmid or `auto`"
                        ));
                    }
                    id
                }
                None => match crate::ops::lowest_free(&input.vms_range, &used) {
                    Some(id) => id,
                    None => {
                        problems.push(format!(
                            "{name}: vmid_ranges.vms {} has no free id left",
                            input.vms_range
                        ));
                        0
                    }
                },
            };
            used.insert(vmid);
            new_idx.push(guests.len());
            guests.push(PlannedGuest {
                vmid,
                name,
                role: role.role,
                node: String::new(),
                cores: role.cores,
                memory_mib: role.memory_mib,
                disk: role.disk.clone(),
                ipconfig0,
                address,
                exists: false,
                status: None,
                template: input.template.vmid,
                clone_on: input.template.node.clone(),
                moved: false,
            });
        }
        if new_idx.is_empty() {
            continue;
        }
        let specs: Vec<GuestSpec> = new_idx
            .iter()
            .map(|_| {
                GuestSpec::new(u64::from(role.cores), role.memory_mib * 1024 * 1024)
                    .with_disk(input.storage, role.disk_bytes)
            })
            .collect();
        let placed = spread(&snap, &specs, role.on_nodes.as_deref(), input.ratios);
        for s in placed.placed {
            let g = &mut guests[new_idx[s.index]];
            let node = s.node.unwrap_or_default();
            match input.copies.iter().find(|c| c.node == node) {
                Some(copy) => {
                    g.template = copy.vmid;
                    g.clone_on = node.clone();
                    g.moved = false;
                }
                None => g.moved = node != input.template.node && !input.template.shared,
            }
            g.node = node.clone();
            let mut booked = GuestInfo::qemu(g.vmid, &node, u64::from(g.cores), g.memory_mib << 20)
                .with_disk(input.storage, role.disk_bytes);
            booked.name = g.name.clone();
            snap.guests.push(booked);
        }
        for s in placed.unplaceable {
            unplaceable.push(Unplaceable {
                name: guests[new_idx[s.index]].name.clone(),
                rejected: s.rejected,
            });
        }
    }
    let mut per_node: Vec<(String, u32)> = Vec::new();
    for g in guests.iter().filter(|g| !g.exists && !g.node.is_empty()) {
        match per_node.iter_mut().find(|(n, _)| *n == g.node) {
            Some((_, c)) => *c += 1,
            None => per_node.push((g.node.clone(), 1)),
        }
    }
    per_node.sort();
    ProfilePlan {
        guests,
        unplaceable,
        problems,
        per_node,
    }
}

/// The static address of the `sequence`-th guest, and its `ipconfig0`.
fn addressing(p: &ClusterProfile, sequence: u32) -> (Option<String>, String) {
    let n = &p.network;
    match (n.addressing, n.node_cidr, n.gateway) {
        (Addressing::Static, Some(cidr), Some(gw)) => {
            let ip = cidr.nth(u64::from(n.first_host) + u64::from(sequence));
            (
                Some(ip.to_string()),
                format!("ip={ip}/{},gw={gw}", cidr.prefix),
            )
        }
        _ => (None, "ip=dhcp".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::profile::parse_profile;
    use crate::ops::plan::{NodeInfo, StorageInfo};

    const GIB: u64 = 1 << 30;

    fn cluster() -> ClusterSnapshot {
        let mut s = ClusterSnapshot::default();
        for n in ["pve01", "pve02", "pve03"] {
            s.nodes.push(NodeInfo::new(n, 32, 128 * GIB));
            s.storages.push(StorageInfo::new(
                "local-lvm",
                n,
                false,
                2000 * GIB,
                2000 * GIB,
            ));
        }
        s.guests
            .push(GuestInfo::qemu(1000, "pve01", 2, 4 * GIB).stopped());
        s
    }

    fn template(shared: bool) -> TemplateFacts {
        TemplateFacts {
            vmid: 101,
            name: "talos".into(),
            node: "pve01".into(),
            storage: "local-lvm".into(),
            shared,
            agent: false,
            tags: vec!["talos".into()],
            container: false,
        }
    }

    fn profile(extra: &str) -> ClusterProfile {
        let text = format!(
            "name: t\ntype: talos\nnetwork:\n  api_endpoint: t.example:6443\n  pod_cidr: 10.1.0.0/16\n  service_cidr: 10.2.0.0/16\n  node_cidr: 10.3.0.0/24\n  addresses: static\n  gateway: 10.3.0.1\nnodes:\n  controlplane:\n    count: 3\n    cores: 4\n    memory: 8192\n    disk: 20G\n  workers:\n    count: 2\n    cores: 4\n    memory: 8192\n    disk: 20G\n{extra}template: 101\ntags: [a, b]\n"
        );
        parse_profile(&text, "t.yaml", "t").expect("valid")
    }

    #[test]
    fn spreads_names_and_allocates() {
        let p = profile("");
        let snap = cluster();
        let t = template(false);
        let plan = plan(&PlanInput {
            profile: &p,
            snap: &snap,
            members: &[],
            template: &t,
            copies: &[],
            vms_range: VmidRange::SEED_VMS,
            storage: "local-lvm",
            ratios: Ratios::DEFAULT,
        });
        assert!(plan.problems.is_empty() && plan.unplaceable.is_empty());
        let names: Vec<&str> = plan.guests.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            ["t-cp-1", "t-cp-2", "t-cp-3", "t-worker-1", "t-worker-2"]
        );
        let ids: Vec<u32> = plan.guests.iter().map(|g| g.vmid).collect();
        assert_eq!(ids, [1001, 1002, 1003, 1004, 1005]);
        let cps: BTreeSet<&str> = plan.guests[..3].iter().map(|g| g.node.as_str()).collect();
        assert_eq!(cps.len(), 3, "control plane on three nodes: {plan:?}");
        assert_eq!(plan.guests[0].address.as_deref(), Some("10.3.0.10"));
        assert_eq!(plan.guests[4].ipconfig0, "ip=10.3.0.14/24,gw=10.3.0.1");
        assert!(plan.guests.iter().all(|g| g.moved == (g.node != "pve01")));
    }

    #[test]
    fn existing_members_are_kept_and_explicit_ids_checked() {
        let p = profile("");
        let snap = cluster();
        let t = template(true);
        let members = vec![Member {
            vmid: 1500,
            guest_type: "qemu".into(),
            name: "t-cp-2".into(),
            node: "pve03".into(),
            status: "running".into(),
        }];
        let plan = plan(&PlanInput {
            profile: &p,
            snap: &snap,
            members: &members,
            template: &t,
            copies: &[],
            vms_range: VmidRange::SEED_VMS,
            storage: "local-lvm",
            ratios: Ratios::DEFAULT,
        });
        let g = &plan.guests[1];
        assert!(g.exists && g.vmid == 1500 && g.node == "pve03");
        assert_eq!(plan.guests.iter().filter(|g| !g.exists).count(), 4);
        assert!(plan.guests.iter().all(|g| !g.moved));
        let p2 = profile("").clone();
        let mut p2 = p2;
        p2.roles[0].start_vmid = Some(1000);
        let plan = super::plan(&PlanInput {
            profile: &p2,
            snap: &snap,
            members: &[],
            template: &t,
            copies: &[],
            vms_range: VmidRange::SEED_VMS,
            storage: "local-lvm",
            ratios: Ratios::DEFAULT,
        });
        assert!(
            plan.problems[0].contains("vmid 1000"),
            "{:?}",
            plan.problems
        );
    }

    #[test]
    fn a_full_cluster_is_unplaceable() {
        let p = profile("");
        let mut snap = cluster();
        for n in &mut snap.nodes {
            n.maxmem = 10 * GIB;
        }
        let t = template(true);
        let plan = plan(&PlanInput {
            profile: &p,
            snap: &snap,
            members: &[],
            template: &t,
            copies: &[],
            vms_range: VmidRange::SEED_VMS,
            storage: "local-lvm",
            ratios: Ratios::DEFAULT,
        });
        assert_eq!(plan.unplaceable.len(), 2, "{plan:?}");
    }
}
