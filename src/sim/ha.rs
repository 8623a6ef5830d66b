//! The HA stack (pve-ha-manager): HA resources, node-affinity rules (PVE 9) or groups (PVE 8),
//! the CRM command queue, node maintenance and a simplified CRM/LRM loop that migrates
//! services as PVE's does (semantics item 21).
//!
//! Modelled, from pve-ha-manager `src/PVE/HA/Manager.pm`, `LRM.pm`, `Usage/Basic.pm`,
//! `Resources/PVEVM.pm` and `API2/HA/*.pm`:
//! - `hamigrate` (the API's answer for an HA guest) and `POST /cluster/ha/resources/{sid}/migrate`
//!   only queue `migrate vm:N <node>` in the CRM command queue; `ha-manager crm-command
//!   node-maintenance enable|disable <node>` queues `enable-node-maintenance <node>` /
//!   `disable-node-maintenance <node>`.
//! - Every CRM round ([`CRM_CYCLE_SECS`] × time scale) the CRM reads the queue (a migrate to an
//!   offline node or to the service's own node is dropped, as PVE logs and ignores it), puts a
//!   maintenance node's running services into `migrate` (remembering the node as
//!   `maintenance_node`), brings them back when maintenance ends, and applies node-affinity
//!   rules (a started service not on a highest-priority online node of its rule moves there).
//! - Targets are chosen like the `basic` CRS scheduler (`select_service_node` with
//!   `Usage::Basic`): among the online (not in maintenance) nodes the rule allows, the highest
//!   priority ones, then the node with the fewest guests (every guest counts, HA or not, plus
//!   services migrating there), ties by node name.
//! - The LRM of the service's node runs the migration as `PVEVM::migrate` does: `POST
//!   .../migrate` as `root@pam` with `online=1`, `force=1`, `with-local-disks=1` — a real
//!   `qmigrate` task — at most [`LRM_MAX_WORKERS`] at once per node; when it ends the service
//!   is `started` on the target (or back on its node if the task failed).
//!
//! Simplified: service states are `started`/`stopped` (following the guest's run state), then
//! `migrate`; the CRM does not start, stop, restart or relocate guests (power actions on HA
//! guests are not turned into `hastart`/`hastop`), does not fence or recover services of
//! offline nodes (they stay, the node shows `unknown`), knows no resource-affinity rules, no
//! `static`/`dynamic` CRS and no disarm; the master is the first online node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::scenario::{HaGroupSpec, HaSpec, Scenario};
use super::state::{Shared, State, now};

/// Seconds between two CRM rounds (the CRM's loop time).
pub const CRM_CYCLE_SECS: f64 = 10.0;
/// Concurrent migrations per LRM (datacenter.cfg `ha: max_workers`, default 4).
pub const LRM_MAX_WORKERS: usize = 4;
/// CRM log lines kept.
const LOG_LIMIT: usize = 1000;

/// A node-affinity rule (configured, or generated from a PVE 8 group).
#[derive(Clone, Debug)]
pub struct Rule {
    pub rule: String,
    /// vmids of the `vm:N` resources it covers.
    pub resources: BTreeSet<u32>,
    /// node -> priority (`None` when written without one).
    pub nodes: BTreeMap<String, Option<i64>>,
    pub strict: Option<bool>,
    pub comment: Option<String>,
    pub order: usize,
}

/// The CRM's view of one service (`manager_status.service_status`).
#[derive(Clone, Debug)]
pub struct Service {
    /// `started`, `stopped` or `migrate`.
    pub state: String,
    pub node: String,
    pub target: Option<String>,
    pub maintenance_node: Option<String>,
    /// A queued `migrate` request: its target.
    pub cmd: Option<String>,
    /// The running `qmigrate` of the LRM.
    pub worker: Option<String>,
    pub uid: String,
}

/// HA configuration and CRM state.
#[derive(Default)]
pub struct HaState {
    /// vmid -> resource options (`resources.cfg`).
    pub resources: BTreeMap<u32, HaSpec>,
    pub rules: Vec<Rule>,
    /// PVE 8 groups, shown only when the cluster runs 8.x.
    pub groups: Vec<HaGroupSpec>,
    /// The cluster runs PVE 8 (groups, no rules).
    pub pve8: bool,
    /// `crm_commands`, oldest first.
    pub commands: Vec<String>,
    /// Nodes with a maintenance request.
    pub maintenance: BTreeSet<String>,
    /// node -> `online`, `maintenance`, `unknown`.
    pub node_status: BTreeMap<String, String>,
    pub services: BTreeMap<u32, Service>,
    pub master: Option<String>,
    /// Time of the last CRM round.
    pub timestamp: i64,
    /// The CRM's log (`info`/`err` lines), newest last.
    pub log: Vec<String>,
    uid: u64,
}

/// Parses `pve01:2,pve02,pve03:1`.
fn parse_nodes(s: &str) -> BTreeMap<String, Option<i64>> {
    s.split([',', ';', ' '])
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once(':') {
            Some((n, p)) => (n.to_string(), p.parse().ok()),
            None => (e.to_string(), None),
        })
        .collect()
}

fn parse_resources(s: &str) -> Result<BTreeSet<u32>, String> {
    s.split([',', ';', ' '])
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("vm:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("HA rule resource '{e}' is not vm:<vmid>"))
        })
        .collect()
}

impl HaState {
    /// HA configuration from a scenario.
    ///
    /// # Errors
    /// A message when a rule or a guest names something unknown.
    pub fn from_scenario(s: &Scenario) -> Result<HaState, String> {
        let pve8 = s.version.version.starts_with("8.");
        let mut ha = HaState {
            pve8,
            groups: s.ha_groups.clone(),
            ..HaState::default()
        };
        let known = |n: &str| s.nodes.iter().any(|x| x.name == n);
        for v in &s.vms {
            if let Some(spec) = v.ha.as_ref().and_then(|h| h.spec()) {
                if !matches!(
                    spec.state.as_str(),
                    "started" | "stopped" | "enabled" | "disabled" | "ignored"
                ) {
                    return Err(format!(
                        "vm {} has unknown HA state '{}'",
                        v.vmid, spec.state
                    ));
                }
                if let Some(g) = &spec.group
                    && !s.ha_groups.iter().any(|x| &x.group == g)
                {
                    return Err(format!("vm {} names unknown HA group '{g}'", v.vmid));
                }
                ha.resources.insert(v.vmid, spec);
            }
        }
        for (i, r) in s.ha_rules.iter().enumerate() {
            let nodes = parse_nodes(&r.nodes);
            if let Some(n) = nodes.keys().find(|n| !known(n)) {
                return Err(format!("HA rule '{}' names unknown node '{n}'", r.rule));
            }
            let resources = parse_resources(&r.resources)?;
            if let Some(v) = resources.iter().find(|v| !ha.resources.contains_key(v)) {
                return Err(format!(
                    "HA rule '{}' names vm:{v}, which is not HA-managed",
                    r.rule
                ));
            }
            ha.rules.push(Rule {
                rule: r.rule.clone(),
                resources,
                nodes,
                strict: Some(r.strict),
                comment: r.comment.clone(),
                order: i + 1,
            });
        }
        for g in &s.ha_groups {
            let nodes = parse_nodes(&g.nodes);
            if let Some(n) = nodes.keys().find(|n| !known(n)) {
                return Err(format!("HA group '{}' names unknown node '{n}'", g.group));
            }
            if pve8 {
                continue;
            }
            // PVE 9 migrates groups to node-affinity rules (`migrate_groups_to_rules`); a
            // group no resource uses is dropped
            let members: BTreeSet<u32> = ha
                .resources
                .iter()
                .filter(|(_, r)| r.group.as_deref() == Some(g.group.as_str()))
                .map(|(v, _)| *v)
                .collect();
            if members.is_empty() {
                continue;
            }
            let order = ha.rules.len() + 1;
            ha.rules.push(Rule {
                rule: format!("ha-group-{}", g.group),
                resources: members,
                nodes,
                strict: Some(g.restricted),
                comment: Some(
                    g.comment
                        .clone()
                        .unwrap_or_else(|| format!("Generated from HA group '{}'.", g.group)),
                ),
                order,
            });
            // `nofailback` became the resource's `failback`
            for r in ha.resources.values_mut() {
                if r.group.as_deref() == Some(g.group.as_str()) && r.failback.is_none() {
                    r.failback = Some(!g.nofailback);
                }
            }
        }
        if !pve8 {
            for r in ha.resources.values_mut() {
                r.group = None;
            }
        }
        Ok(ha)
    }

    /// Whether anything is HA-managed (the CRM is active).
    pub fn active(&self) -> bool {
        !self.resources.is_empty()
    }

    fn next_uid(&mut self) -> String {
        self.uid += 1;
        let h = super::volumes::new_uuid(&format!("ha-{}", self.uid));
        h.replace('-', "")[..22].to_string()
    }

    fn log(&mut self, level: &str, msg: String) {
        if self.log.len() == LOG_LIMIT {
            self.log.remove(0);
        }
        self.log.push(format!("{} {level}: {msg}", now()));
    }

    /// The resource's requested state, with PVE's aliases resolved (`enabled` = `started`).
    pub fn request_state(&self, vmid: u32) -> Option<&str> {
        self.resources.get(&vmid).map(|r| match r.state.as_str() {
            "enabled" => "started",
            s => s,
        })
    }

    /// `vm_is_ha_managed`: configured and not `ignored`.
    pub fn is_managed(&self, vmid: u32) -> bool {
        self.request_state(vmid).is_some_and(|s| s != "ignored")
    }

    /// `hastate` of `/cluster/resources`: the CRM's service state, else the requested one.
    pub fn hastate(&self, vmid: u32) -> Option<&str> {
        if let Some(s) = self.services.get(&vmid) {
            return Some(&s.state);
        }
        self.resources.get(&vmid).map(|r| r.state.as_str())
    }

    /// The rule covering `vmid` (the first by order).
    pub fn rule_of(&self, vmid: u32) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.resources.contains(&vmid))
            .min_by_key(|r| r.order)
    }

    /// Queues a CRM command (`queue_crm_commands`).
    pub fn queue(&mut self, cmd: String) {
        self.commands.push(cmd);
    }
}

/// The CRM's state at simulator start: it has been running for a while, every configured
/// service is `started` or `stopped` on its guest's node.
pub fn init(st: &mut State) {
    if !st.ha.active() {
        return;
    }
    st.ha.master = st.nodes.iter().find(|n| n.online).map(|n| n.name.clone());
    st.ha.timestamp = st.started;
    update_node_status(st);
    manage_services(st);
}

/// The CRM/LRM loop: one round every [`CRM_CYCLE_SECS`] (× time scale) until `cancel`.
pub async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let cycle = shared
        .scaled(CRM_CYCLE_SECS)
        .max(std::time::Duration::from_millis(2));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cycle) => {}
        }
        tick(&shared);
    }
}

/// One round under the write lock. A round that changed nothing but its time stamp (no
/// service moved, no command was read, no migration started: each of those changes
/// `services` or the log) keeps the state's generation, so the big listings rendered before
/// it are still served instead of being rendered again by the next reader.
fn tick(shared: &Arc<Shared>) {
    let mut st = shared.lock();
    let before = observable(&st.ha);
    round(shared, &mut st);
    if observable(&st.ha) == before {
        st.unchanged();
    }
}

/// Everything of the HA state a round can change, except the time stamp of the round: when
/// it is the same after a round, the round did nothing else either (the guests and tasks it
/// may change are changed only together with a service's state, worker or the log).
fn observable(ha: &HaState) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}",
        ha.commands,
        ha.maintenance,
        ha.node_status,
        ha.services,
        ha.master,
        ha.log.len(),
        ha.log.last(),
        ha.uid
    )
}

/// One CRM round followed by the LRMs' work.
pub fn round(shared: &Arc<Shared>, st: &mut State) {
    if !st.ha.active() && st.ha.commands.is_empty() && st.ha.maintenance.is_empty() {
        return;
    }
    let t = now();
    st.ha.timestamp = t;
    st.ha.master = st.nodes.iter().find(|n| n.online).map(|n| n.name.clone());
    if st.ha.master.is_none() {
        return;
    }
    update_node_status(st);
    read_commands(st);
    manage(st);
    lrm_work(shared, st);
}

fn update_node_status(st: &mut State) {
    let status: BTreeMap<String, String> = st
        .nodes
        .iter()
        .map(|n| {
            let s = if !n.online {
                "unknown"
            } else if st.ha.maintenance.contains(&n.name) {
                "maintenance"
            } else {
                "online"
            };
            (n.name.clone(), s.to_string())
        })
        .collect();
    st.ha.node_status = status;
}

fn node_online(st: &State, node: &str) -> bool {
    st.ha.node_status.get(node).map(String::as_str) == Some("online")
}

fn read_commands(st: &mut State) {
    let cmds = std::mem::take(&mut st.ha.commands);
    for cmd in cmds {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            ["migrate" | "relocate", sid, node] => {
                let vmid = sid.strip_prefix("vm:").and_then(|v| v.parse::<u32>().ok());
                let Some(vmid) = vmid.filter(|v| st.ha.services.contains_key(v)) else {
                    st.ha
                        .log("err", format!("crm command error - no such service: {cmd}"));
                    continue;
                };
                if !node_online(st, node) {
                    st.ha
                        .log("err", format!("crm command error - node not online: {cmd}"));
                } else if st.ha.services.get(&vmid).is_some_and(|s| s.node == *node) {
                    st.ha.log(
                        "info",
                        format!("ignore crm command - service already on target node: {cmd}"),
                    );
                } else if let Some(s) = st.ha.services.get_mut(&vmid) {
                    s.cmd = Some(node.to_string());
                }
            }
            ["enable-node-maintenance", node] => {
                match st.ha.node_status.get(*node).map(String::as_str) {
                    Some("online") => {
                        st.ha.maintenance.insert(node.to_string());
                    }
                    Some("maintenance") => st.ha.log(
                        "info",
                        format!(
                            "ignoring crm command - node {node} is already in maintenance state"
                        ),
                    ),
                    _ => st
                        .ha
                        .log("err", format!("crm command error - node not online: {cmd}")),
                }
            }
            ["disable-node-maintenance", node] => {
                st.ha.maintenance.remove(*node);
            }
            _ => st
                .ha
                .log("err", format!("unable to parse crm command: {cmd}")),
        }
    }
    update_node_status(st);
}

/// Guests per node as `Usage::Basic` counts them: every guest on its node, plus HA services
/// migrating to a node.
fn usage(st: &State) -> BTreeMap<String, usize> {
    let mut u: BTreeMap<String, usize> = st.nodes.iter().map(|n| (n.name.clone(), 0)).collect();
    for v in st.vms.values() {
        *u.entry(v.node.clone()).or_default() += 1;
    }
    for s in st.ha.services.values() {
        if let Some(t) = &s.target {
            *u.entry(t.clone()).or_default() += 1;
        }
    }
    u
}

/// `select_service_node` with the `none` preference and the basic scheduler.
fn select_node(st: &State, vmid: u32, usage: &BTreeMap<String, usize>) -> Option<String> {
    let s = st.ha.services.get(&vmid)?;
    let online: BTreeSet<&str> = st
        .ha
        .node_status
        .iter()
        .filter(|(_, v)| v.as_str() == "online")
        .map(|(k, _)| k.as_str())
        .collect();
    let failback = st
        .ha
        .resources
        .get(&vmid)
        .and_then(|r| r.failback)
        .unwrap_or(true);
    let (allowed, pri): (BTreeSet<&str>, BTreeSet<&str>) = match st.ha.rule_of(vmid) {
        None => (online.clone(), online.clone()),
        Some(rule) => {
            let mut allowed = BTreeSet::new();
            let mut by_prio: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
            for (n, p) in &rule.nodes {
                if online.contains(n.as_str()) {
                    allowed.insert(n.as_str());
                    by_prio
                        .entry(p.unwrap_or(0))
                        .or_default()
                        .insert(n.as_str());
                }
            }
            // a non-strict rule allows the other nodes at priority -1 (`NodeAffinity.pm`)
            if rule.strict != Some(true) {
                for n in &online {
                    if !rule.nodes.contains_key(*n) {
                        allowed.insert(n);
                        by_prio.entry(-1).or_default().insert(n);
                    }
                }
            }
            let pri = by_prio
                .into_iter()
                .next_back()
                .map(|(_, v)| v)
                .unwrap_or_default();
            (allowed, pri)
        }
    };
    if pri.is_empty() {
        return None;
    }
    if !failback && allowed.contains(s.node.as_str()) {
        return Some(s.node.clone());
    }
    if let Some(m) = &s.maintenance_node
        && pri.contains(m.as_str())
    {
        return Some(m.clone());
    }
    if pri.contains(s.node.as_str()) {
        return Some(s.node.clone());
    }
    pri.iter()
        .min_by_key(|n| (usage.get(**n).copied().unwrap_or(0), **n))
        .map(|n| n.to_string())
}

/// Services follow the configuration: new resources get a service, removed ones lose it.
fn manage_services(st: &mut State) -> Vec<u32> {
    let configured: Vec<u32> = st
        .ha
        .resources
        .keys()
        .copied()
        .filter(|v| st.ha.is_managed(*v))
        .collect();
    st.ha.services.retain(|v, _| configured.contains(v));
    for vmid in &configured {
        let Some(vm) = st.vms.get(vmid) else {
            continue;
        };
        if !st.ha.services.contains_key(vmid) {
            let uid = st.ha.next_uid();
            let state = if vm.running { "started" } else { "stopped" };
            let node = vm.node.clone();
            st.ha.services.insert(
                *vmid,
                Service {
                    state: state.into(),
                    node,
                    target: None,
                    maintenance_node: None,
                    cmd: None,
                    worker: None,
                    uid,
                },
            );
        }
    }
    configured
}

fn manage(st: &mut State) {
    let configured = manage_services(st);
    let mut usage = usage(st);
    for vmid in configured {
        let Some(vm) = st.vms.get(&vmid) else {
            continue;
        };
        let (running, vm_node, locked_node) = (vm.running, vm.node.clone(), vm.node.clone());
        let Some(s) = st.ha.services.get(&vmid).cloned() else {
            continue;
        };
        if s.state == "migrate" {
            finish_migration(st, vmid, &s, &locked_node);
            continue;
        }
        let state = if running { "started" } else { "stopped" };
        let mut s = s;
        if s.node != vm_node {
            s.node = vm_node.clone();
        }
        s.state = state.into();
        let node_state = st.ha.node_status.get(&s.node).cloned().unwrap_or_default();
        if node_state == "maintenance" && s.maintenance_node.is_none() && state == "started" {
            s.maintenance_node = Some(s.node.clone());
        }
        let mut target = None;
        if let Some(t) = s.cmd.take() {
            if !node_online(st, &t) {
                st.ha.log(
                    "err",
                    format!("ignore service 'vm:{vmid}' migrate request - node '{t}' not online"),
                );
            } else if t == s.node {
                st.ha.log(
                    "info",
                    format!(
                        "ignore service 'vm:{vmid}' migrate request - service already on node '{t}'"
                    ),
                );
            } else {
                st.ha
                    .log("info", format!("migrate service 'vm:{vmid}' to node '{t}'"));
                target = Some(t);
            }
        } else if state == "started" && st.ha.request_state(vmid) == Some("started") {
            st.ha.services.insert(vmid, s.clone());
            if let Some(n) = select_node(st, vmid, &usage).filter(|n| *n != s.node) {
                if let Some(m) = s.maintenance_node.clone() {
                    if n == m {
                        st.ha.log(
                            "info",
                            format!("moving service 'vm:{vmid}' back to '{m}', node came back from maintenance."),
                        );
                        s.maintenance_node = None;
                    } else if s.node != m {
                        st.ha.log(
                            "info",
                            format!("dropping maintenance fallback node '{m}' for 'vm:{vmid}'"),
                        );
                        s.maintenance_node = None;
                    }
                }
                st.ha.log(
                    "info",
                    format!("migrate service 'vm:{vmid}' to node '{n}' (running)"),
                );
                target = Some(n);
            } else if s.maintenance_node.as_deref() == Some(s.node.as_str())
                && node_online(st, &s.node)
            {
                s.maintenance_node = None;
            }
        }
        if let Some(t) = target {
            s.state = "migrate".into();
            *usage.entry(t.clone()).or_default() += 1;
            s.target = Some(t);
            s.uid = st.ha.next_uid();
            st.ha.log(
                "info",
                format!(
                    "service 'vm:{vmid}': state changed from '{state}' to 'migrate'  (node = {}, target = {})",
                    s.node,
                    s.target.as_deref().unwrap_or("")
                ),
            );
        }
        st.ha.services.insert(vmid, s);
    }
}

/// A service in `migrate`: done when its LRM worker ended.
fn finish_migration(st: &mut State, vmid: u32, s: &Service, vm_node: &str) {
    let Some(upid) = &s.worker else {
        return;
    };
    let Some(exit) = st.tasks.find(upid).map(|t| t.exitstatus.clone()) else {
        return;
    };
    let Some(exit) = exit else {
        return; // still running
    };
    let running = st.vms.get(&vmid).is_some_and(|v| v.running);
    let target = s.target.clone().unwrap_or_default();
    let ok = (exit == "OK" || exit.starts_with("WARNINGS: ")) && vm_node == target;
    let mut n = s.clone();
    if ok {
        n.node = target;
    } else {
        st.ha.log(
            "err",
            format!("service 'vm:{vmid}' - migration failed (exit code 1)"),
        );
        n.node = vm_node.to_string();
    }
    n.state = if running { "started" } else { "stopped" }.into();
    n.target = None;
    n.worker = None;
    n.uid = st.ha.next_uid();
    st.ha.log(
        "info",
        format!(
            "service 'vm:{vmid}': state changed from 'migrate' to '{}'  (node = {})",
            n.state, n.node
        ),
    );
    st.ha.services.insert(vmid, n);
}

/// The LRMs start the migrations the CRM asked for, [`LRM_MAX_WORKERS`] per node.
fn lrm_work(shared: &Arc<Shared>, st: &mut State) {
    let pending: Vec<(u32, String, String)> = st
        .ha
        .services
        .iter()
        .filter(|(_, s)| s.state == "migrate" && s.worker.is_none())
        .filter_map(|(v, s)| Some((*v, s.node.clone(), s.target.clone()?)))
        .collect();
    for (vmid, node, target) in pending {
        if !st.node(&node).is_some_and(|n| n.online) {
            continue;
        }
        let busy = st
            .ha
            .services
            .values()
            .filter(|s| s.node == node && s.worker.is_some())
            .count();
        if busy >= LRM_MAX_WORKERS {
            continue;
        }
        let online = st.vms.get(&vmid).is_some_and(|v| v.running);
        let req = super::api::qemu::migrate::Request {
            node: node.clone(),
            vmid,
            target: target.clone(),
            online,
            force: true,
            with_local_disks: true,
            storage_map: None,
            bwlimit: None,
            conntrack: false,
            user: "root@pam".into(),
            ha_env: true,
        };
        match super::api::qemu::migrate::start(shared, st, req) {
            Ok(upid) => {
                if let Some(s) = st.ha.services.get_mut(&vmid) {
                    s.worker = Some(upid);
                }
            }
            Err(e) => {
                let msg = super::api::qemu::worker_error(e);
                st.ha.log(
                    "err",
                    format!("service 'vm:{vmid}' - migration failed: {msg}"),
                );
                if let Some(s) = st.ha.services.get_mut(&vmid) {
                    s.state = if online { "started" } else { "stopped" }.into();
                    s.target = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_round_keeps_the_generation_a_busy_one_starts_a_new_one() {
        let sc = crate::sim::Scenario::generate(&crate::sim::GenerateSpec {
            nodes: 3,
            guests: 60,
            seed: 3,
            ..crate::sim::GenerateSpec::default()
        });
        let state = State::from_scenario(&sc).expect("state");
        let shared = Arc::new(Shared::new(state, 0.001));
        let generation = || shared.read().generation;
        assert!(
            shared.read().ha.active(),
            "the generated cluster has HA guests"
        );
        // the first rounds create the services; then the CRM has nothing to do
        for _ in 0..3 {
            tick(&shared);
        }
        let settled = generation();
        let stamp = shared.read().ha.timestamp;
        tick(&shared);
        tick(&shared);
        assert_eq!(generation(), settled, "idle rounds start no new generation");
        assert!(shared.read().ha.timestamp >= stamp);
        // a command to read: the round changes the services, so a new generation
        let (vmid, to) = {
            let st = shared.read();
            let (vmid, s) = st.ha.services.iter().next().expect("a service");
            let to = st
                .nodes
                .iter()
                .find(|n| n.online && n.name != s.node)
                .expect("another node")
                .name
                .clone();
            (*vmid, to)
        };
        shared
            .lock()
            .ha
            .commands
            .push(format!("migrate vm:{vmid} {to}"));
        let queued = generation();
        assert_eq!(queued, settled + 1, "a write starts a new generation");
        tick(&shared);
        assert!(
            generation() > queued,
            "a round that did something starts one"
        );
    }

    #[test]
    fn node_lists_parse() {
        let n = parse_nodes("pve01:2,pve02, pve03:1");
        assert_eq!(n.get("pve01"), Some(&Some(2)));
        assert_eq!(n.get("pve02"), Some(&None));
        assert_eq!(n.len(), 3);
        assert!(parse_resources("vm:100,ct:101").is_err());
        assert_eq!(
            parse_resources("vm:100,vm:101").map(|s| s.len()),
            Ok(2usize)
        );
    }
}
