//! `/cluster/ha/...` (pve-ha-manager `src/PVE/API2/HA/{Resources,Groups,Rules,Status}.pm`):
//! resources, PVE 9 node-affinity rules (PVE 8 groups when the scenario runs 8.x; on 9.x the
//! groups endpoints answer that groups have been migrated to rules), the manager status, and
//! `POST /cluster/ha/resources/{sid}/migrate`, which queues a CRM command (the move itself is
//! the CRM's, see `crate::sim::ha`).

use serde_json::{Map, Value, json};

use crate::sim::api::{Ctx, WCtx};
use crate::sim::ha::Rule;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{State, now};

const DIGEST: &str = "3f2a6c9d1b0e4f5a7c8d9e0f1a2b3c4d5e6f7a8b";

fn audit(c: &Ctx) -> Result<(), ApiError> {
    c.require("/", &["Sys.Audit"], false)?;
    c.validate()
}

/// Perl's scalar `localtime` (UTC here): `Thu Aug 20 20:18:37 2026`.
pub fn ctime(t: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = crate::sim::api::qemu::migrate::stamp(t);
    // "YYYY-MM-DD HH:MM:SS"
    let (date, time) = s.split_once(' ').unwrap_or((&s, ""));
    let mut p = date.split('-');
    let y = p.next().unwrap_or("1970");
    let m: usize = p.next().and_then(|x| x.parse().ok()).unwrap_or(1);
    let d: u32 = p.next().and_then(|x| x.parse().ok()).unwrap_or(1);
    let wday = (t.div_euclid(86_400) + 4).rem_euclid(7) as usize;
    format!(
        "{} {} {d:>2} {time} {y}",
        DAYS[wday],
        MONTHS[m.clamp(1, 12) - 1]
    )
}

pub fn index(c: &Ctx) -> ApiResult {
    audit(c)?;
    let ids: &[&str] = if c.st.ha.pve8 {
        &["status", "resources", "groups"]
    } else {
        &["status", "resources", "groups", "rules"]
    };
    Ok(Reply::data(Value::Array(
        ids.iter().map(|i| json!({ "id": i })).collect(),
    )))
}

fn resource_json(st: &State, vmid: u32) -> Option<Value> {
    let r = st.ha.resources.get(&vmid)?;
    let mut m = json!({
        "sid": format!("vm:{vmid}"), "type": "vm", "state": r.state,
        "max_restart": r.max_restart, "max_relocate": r.max_relocate, "digest": DIGEST,
    });
    if let Some(f) = r.failback {
        m["failback"] = json!(u8::from(f));
    }
    if let Some(cm) = &r.comment {
        m["comment"] = json!(cm);
    }
    if let Some(g) = r.group.as_ref().filter(|_| st.ha.pve8) {
        m["group"] = json!(g);
    }
    Some(m)
}

pub fn resources(c: &Ctx) -> ApiResult {
    audit(c)?;
    let rows: Vec<Value> = if c.param("type") == Some("ct") {
        Vec::new()
    } else {
        c.st.ha
            .resources
            .keys()
            .filter_map(|v| resource_json(c.st, *v))
            .collect()
    };
    Ok(Reply::data(Value::Array(rows)))
}

/// `PVE::HA::Config::parse_sid`: `100` (an existing guest), `vm:100`, `ct:100`.
fn parse_sid(st: &State, sid: &str) -> Result<(String, Option<u32>), ApiError> {
    if !sid.is_empty() && sid.bytes().all(|b| b.is_ascii_digit()) {
        return match sid.parse::<u32>().ok().filter(|v| st.vms.contains_key(v)) {
            Some(v) => Ok((format!("vm:{v}"), Some(v))),
            None => Err(ApiError::Server(format!(
                "unable to detect SID from VMID - VM/CT {sid} does not exist"
            ))),
        };
    }
    match sid.split_once(':') {
        Some((t, n)) if !t.is_empty() && !n.is_empty() && !sid.contains(char::is_whitespace) => {
            let vmid = (t == "vm").then(|| n.parse::<u32>().ok()).flatten();
            Ok((sid.to_string(), vmid))
        }
        _ => Err(ApiError::Server(format!(
            "unable to parse service id '{sid}'"
        ))),
    }
}

fn sid_arg(c: &Ctx) -> String {
    c.args
        .extra
        .iter()
        .find(|(k, _)| *k == "sid")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

pub fn resource(c: &Ctx) -> ApiResult {
    audit(c)?;
    let (sid, vmid) = parse_sid(c.st, &sid_arg(c))?;
    vmid.and_then(|v| resource_json(c.st, v))
        .map(Reply::data)
        .ok_or_else(|| ApiError::Server(format!("no such resource '{sid}'")))
}

fn rule_json(r: &Rule) -> Value {
    let nodes: Vec<String> = r
        .nodes
        .iter()
        .map(|(n, p)| match p {
            Some(p) => format!("{n}:{p}"),
            None => n.clone(),
        })
        .collect();
    let resources: Vec<String> = r.resources.iter().map(|v| format!("vm:{v}")).collect();
    let mut m = json!({
        "rule": r.rule, "type": "node-affinity", "resources": resources.join(","),
        "nodes": nodes.join(","), "order": r.order, "digest": DIGEST,
    });
    if let Some(s) = r.strict {
        m["strict"] = json!(u8::from(s));
    }
    if let Some(cm) = &r.comment {
        m["comment"] = json!(cm);
    }
    m
}

fn rules_unknown(c: &Ctx) -> Result<(), ApiError> {
    if c.st.ha.pve8 {
        return Err(ApiError::NotImplemented(format!(
            "Method 'GET {}' not implemented",
            c.req.path
        )));
    }
    Ok(())
}

pub fn rules(c: &Ctx) -> ApiResult {
    rules_unknown(c)?;
    audit(c)?;
    let wanted = c.param("resource").map(|r| match r.parse::<u32>() {
        Ok(v) => format!("vm:{v}"),
        Err(_) => r.to_string(),
    });
    let rows: Vec<Value> = if c.param("type") == Some("resource-affinity") {
        Vec::new()
    } else {
        let mut rules: Vec<&Rule> = c.st.ha.rules.iter().collect();
        rules.sort_by_key(|r| r.order);
        rules
            .into_iter()
            .filter(|r| {
                wanted.as_deref().is_none_or(|w| {
                    w.strip_prefix("vm:")
                        .and_then(|v| v.parse::<u32>().ok())
                        .is_some_and(|v| r.resources.contains(&v))
                })
            })
            .map(rule_json)
            .collect()
    };
    Ok(Reply::data(Value::Array(rows)))
}

pub fn rule(c: &Ctx) -> ApiResult {
    rules_unknown(c)?;
    audit(c)?;
    let id = c
        .args
        .extra
        .iter()
        .find(|(k, _)| *k == "rule")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    c.st.ha
        .rules
        .iter()
        .find(|r| r.rule == id)
        .map(|r| Reply::data(rule_json(r)))
        .ok_or_else(|| ApiError::Server(format!("no such ha rule '{id}'")))
}

fn group_json(g: &crate::sim::scenario::HaGroupSpec) -> Value {
    let mut m = json!({ "group": g.group, "type": "group", "nodes": g.nodes, "digest": DIGEST });
    if g.restricted {
        m["restricted"] = json!(1);
    }
    if g.nofailback {
        m["nofailback"] = json!(1);
    }
    if let Some(cm) = &g.comment {
        m["comment"] = json!(cm);
    }
    m
}

pub fn groups(c: &Ctx) -> ApiResult {
    audit(c)?;
    if !c.st.ha.pve8 {
        return Err(ApiError::Server(
            "cannot index groups: ha groups have been migrated to rules".into(),
        ));
    }
    Ok(Reply::data(Value::Array(
        c.st.ha.groups.iter().map(group_json).collect(),
    )))
}

pub fn group(c: &Ctx) -> ApiResult {
    audit(c)?;
    if !c.st.ha.pve8 {
        return Err(ApiError::Server(
            "cannot read group: ha groups have been migrated to rules".into(),
        ));
    }
    let id = c
        .args
        .extra
        .iter()
        .find(|(k, _)| *k == "group")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    c.st.ha
        .groups
        .iter()
        .find(|g| g.group == id)
        .map(|g| Reply::data(group_json(g)))
        .ok_or_else(|| ApiError::Server(format!("no such ha group '{id}'")))
}

pub fn status_index(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(Reply::data(
        json!([{ "name": "current" }, { "name": "manager_status" }]),
    ))
}

/// The node answering (`PVE::INotify::nodename()`): the first online one.
fn local_node(st: &State) -> String {
    st.nodes
        .iter()
        .find(|n| n.online)
        .map(|n| n.name.clone())
        .unwrap_or_default()
}

fn quorate(st: &State) -> bool {
    st.nodes.iter().filter(|n| n.online).count() * 2 > st.nodes.len()
}

fn timestamp(st: &State) -> i64 {
    if st.ha.timestamp > 0 {
        st.ha.timestamp
    } else {
        now()
    }
}

/// The entries of `GET /cluster/ha/status/current` (also `ha-manager status`).
pub fn status_entries(st: &State) -> Vec<Value> {
    let node = local_node(st);
    let q = quorate(st);
    let mut out = vec![json!({
        "id": "quorum", "type": "quorum", "node": node, "quorate": u8::from(q),
        "status": if q { "OK".to_string() } else { format!("No quorum on node '{node}'!") },
    })];
    let active = st.ha.active();
    let ts = timestamp(st);
    let master = st.ha.master.clone().unwrap_or_else(|| node.clone());
    if active {
        out.push(json!({
            "id": "master", "type": "master", "node": master, "timestamp": ts,
            "status": format!("{master} (active, {})", ctime(ts)),
        }));
    }
    if !st.ha.pve8 {
        let (armed, wd) = if active {
            ("armed", "CRM watchdog active")
        } else {
            ("standby", "CRM watchdog standby")
        };
        out.push(json!({
            "id": "fencing", "type": "fencing", "node": master, "armed-state": armed,
            "status": format!("{armed} ({wd})"),
        }));
    }
    if active {
        for n in &st.nodes {
            let services = st
                .ha
                .services
                .values()
                .filter(|s| s.node == n.name && s.state != "stopped")
                .count();
            let status = if !n.online {
                format!(
                    "{} (old timestamp - dead?, watchdog standby, {})",
                    n.name,
                    ctime(st.started)
                )
            } else if st.ha.maintenance.contains(&n.name) {
                format!(
                    "{} (maintenance mode, watchdog active, {})",
                    n.name,
                    ctime(ts)
                )
            } else if services > 0 {
                format!("{} (active, watchdog active, {})", n.name, ctime(ts))
            } else {
                format!("{} (idle, watchdog standby, {})", n.name, ctime(ts))
            };
            out.push(json!({
                "id": format!("lrm:{}", n.name), "type": "lrm", "node": n.name,
                "status": status, "timestamp": if n.online { ts } else { st.started },
            }));
        }
    }
    for (vmid, r) in &st.ha.resources {
        let sid = format!("vm:{vmid}");
        let mut m = json!({ "id": format!("service:{sid}"), "type": "service", "sid": sid,
            "request_state": r.state, "max_restart": r.max_restart, "max_relocate": r.max_relocate });
        let state = match st.ha.services.get(vmid) {
            Some(s) => {
                m["node"] = json!(s.node);
                m["crm_state"] = json!(s.state);
                if r.state == "ignored" {
                    "ignored".to_string()
                } else {
                    s.state.clone()
                }
            }
            None => {
                if let Some(v) = st.vms.get(vmid) {
                    m["node"] = json!(v.node);
                }
                if r.state == "ignored" {
                    "ignored".into()
                } else {
                    "queued".into()
                }
            }
        };
        let node = m["node"].as_str().unwrap_or("---").to_string();
        m["status"] = json!(format!("{sid} ({node}, {state})"));
        m["state"] = json!(state);
        if let Some(f) = r.failback {
            m["failback"] = json!(u8::from(f));
        }
        if let Some(cm) = &r.comment {
            m["comment"] = json!(cm);
        }
        if let Some(g) = r.group.as_ref().filter(|_| st.ha.pve8) {
            m["group"] = json!(g);
        }
        out.push(m);
    }
    out
}

pub fn status_current(c: &Ctx) -> ApiResult {
    audit(c)?;
    Ok(Reply::data(Value::Array(status_entries(c.st))))
}

pub fn manager_status(c: &Ctx) -> ApiResult {
    audit(c)?;
    let st = c.st;
    let node = local_node(st);
    let mut manager = Map::new();
    let mut lrm = Map::new();
    if st.ha.active() {
        let ts = timestamp(st);
        let services: Map<String, Value> = st
            .ha
            .services
            .iter()
            .map(|(v, s)| {
                let mut m = json!({ "node": s.node, "state": s.state, "uid": s.uid });
                if s.state == "started" {
                    m["running"] = json!(1);
                }
                if let Some(t) = &s.target {
                    m["target"] = json!(t);
                }
                if let Some(mn) = &s.maintenance_node {
                    m["maintenance_node"] = json!(mn);
                }
                (format!("vm:{v}"), m)
            })
            .collect();
        manager.insert(
            "master_node".into(),
            json!(st.ha.master.clone().unwrap_or_else(|| node.clone())),
        );
        manager.insert("timestamp".into(), json!(ts));
        manager.insert("service_status".into(), Value::Object(services));
        let status: Map<String, Value> = st
            .nodes
            .iter()
            .map(|n| {
                let s = st
                    .ha
                    .node_status
                    .get(&n.name)
                    .cloned()
                    .unwrap_or_else(|| if n.online { "online" } else { "unknown" }.into());
                (n.name.clone(), json!(s))
            })
            .collect();
        manager.insert("node_status".into(), Value::Object(status));
        if !st.ha.maintenance.is_empty() {
            let req: Map<String, Value> = st
                .ha
                .maintenance
                .iter()
                .map(|n| (n.clone(), json!({ "maintenance": 1 })))
                .collect();
            manager.insert("node_request".into(), Value::Object(req));
        }
        for n in &st.nodes {
            let busy = st.ha.services.values().any(|s| s.node == n.name);
            let (mode, state) = if st.ha.maintenance.contains(&n.name) {
                ("maintenance", "maintenance")
            } else if busy {
                ("active", "active")
            } else {
                ("active", "wait_for_agent_lock")
            };
            lrm.insert(
                n.name.clone(),
                json!({ "mode": mode, "state": state, "results": {},
                    "timestamp": if n.online { ts } else { st.started } }),
            );
        }
    }
    let mut data = json!({
        "manager_status": manager,
        "quorum": { "node": node, "quorate": if quorate(st) { "1" } else { "0" } },
    });
    if !lrm.is_empty() {
        data["lrm_status"] = Value::Object(lrm);
    }
    Ok(Reply::data(data))
}

/// Queues `migrate <sid> <node>` as `ha-manager migrate` / the API does; the reply's shape.
pub fn request_migrate(st: &mut State, sid: &str, node: &str) -> Result<Value, ApiError> {
    let (sid, vmid) = parse_sid(st, sid)?;
    if !vmid.is_some_and(|v| st.ha.is_managed(v)) {
        return Err(ApiError::Server(format!(
            "resource '{sid}' is not HA managed"
        )));
    }
    st.ha.queue(format!("migrate {sid} {node}"));
    Ok(json!({ "sid": sid, "requested-node": node }))
}

/// `POST /cluster/ha/resources/{sid}/migrate`.
pub fn migrate(c: &mut WCtx) -> ApiResult {
    c.ro().require("/", &["Sys.Console"], false)?;
    c.ro().validate()?;
    let sid = c
        .args
        .extra
        .iter()
        .find(|(k, _)| *k == "sid")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let node = c.param("node").unwrap_or("").to_string();
    request_migrate(c.st, &sid, &node).map(Reply::data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ctime_is_perls_localtime() {
        assert_eq!(super::ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(super::ctime(1_795_140_003), "Fri Nov 20 02:00:03 2026");
    }
}
