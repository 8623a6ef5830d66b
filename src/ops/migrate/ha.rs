//! What PVE's HA stack says about guests: which are HA-managed, and where each may run (a
//! `restricted` HA group on PVE 8, a `strict` node-affinity rule on PVE 9).
//!
//! All three reads need `Sys.Audit` on `/`. A token without it still sees `hastate` in
//! `/cluster/resources` (so HA-managed guests are still moved through HA), but not the groups
//! and rules: the plan then says so in its warnings instead of guessing.

use std::collections::BTreeMap;

use crate::ops::Context;
use crate::ops::cluster::snapshot::ClusterSnapshot;
use crate::pve::ha_node_names;

/// HA facts per guest.
#[derive(Debug, Default)]
pub(crate) struct HaView {
    pub managed: Vec<u32>,
    /// vmid → nodes it may run on.
    pub allowed: BTreeMap<u32, Vec<String>>,
    pub warnings: Vec<String>,
}

impl HaView {
    /// Reads resources, then groups and rules (both: a PVE 9 cluster may still list groups
    /// that were not migrated yet).
    pub async fn read(ctx: &Context) -> HaView {
        let mut view = HaView::default();
        let resources = match ctx.client.get_ha_resources().await {
            Ok((rows, _)) => rows,
            Err(e) => {
                view.warnings.push(format!(
                    "HA resources could not be read ({e}); HA groups and node-affinity rules are not taken into account — grant Sys.Audit on / to include them"
                ));
                return view;
            }
        };
        if resources.is_empty() {
            return view;
        }
        view.managed = resources.iter().filter_map(|r| r.vmid()).collect();
        let groups = ctx.client.get_ha_groups().await;
        let rules = ctx.client.get_ha_rules().await;
        if let Ok((groups, _)) = &groups {
            for r in &resources {
                let (Some(vmid), Some(name)) = (r.vmid(), r.group.as_deref()) else {
                    continue;
                };
                let Some(g) = groups.iter().find(|g| g.group == name) else {
                    continue;
                };
                if g.restricted == Some(true) {
                    let nodes = ha_node_names(g.nodes.as_deref().unwrap_or(""));
                    view.restrict(vmid, nodes);
                }
            }
        }
        if let Ok((rules, _)) = &rules {
            for rule in rules {
                let node_affinity = rule.rule_type.as_deref() == Some("node-affinity");
                if !node_affinity || rule.strict != Some(true) || rule.disable == Some(true) {
                    continue;
                }
                let nodes = ha_node_names(rule.nodes.as_deref().unwrap_or(""));
                for sid in rule.resources.as_deref().unwrap_or("").split(',') {
                    if let Some(vmid) = sid.trim().split_once(':').and_then(|(_, n)| n.parse().ok())
                    {
                        view.restrict(vmid, nodes.clone());
                    }
                }
            }
        }
        if let (Err(g), Err(r)) = (&groups, &rules) {
            view.warnings.push(format!(
                "HA groups ({g}) and rules ({r}) could not be read; restrictions on where HA guests may run are not taken into account"
            ));
        }
        view
    }

    /// Several restrictions on one guest: it may run where all of them allow.
    fn restrict(&mut self, vmid: u32, nodes: Vec<String>) {
        let entry = self.allowed.entry(vmid).or_insert_with(|| nodes.clone());
        entry.retain(|n| nodes.contains(n));
    }

    /// Marks HA guests and their allowed nodes in the snapshot.
    pub fn apply(&self, snap: &mut ClusterSnapshot) {
        for g in &mut snap.guests {
            if self.managed.contains(&g.vmid) {
                g.ha_managed = true;
            }
            if let Some(nodes) = self.allowed.get(&g.vmid) {
                g.allowed_nodes = Some(nodes.clone());
            }
        }
    }
}
