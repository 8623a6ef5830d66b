//! `ansible_inventory`: the inventory exactly as Ansible resolves it (`ansible-inventory
//! --list` with the configured `-i`, in the repository, so plugins, group_vars and host_vars
//! all apply), its hosts' Proxmox variables (names from `ansible.host_vars`), each host
//! matched to a guest of the cluster: by VMID when the host carries one, else by name.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::AnsibleHostVars;
use crate::pve::{ClusterResource, ResourceType};

use super::Setup;
use super::process::{capture, last_line};
use crate::ops::{Context, Error};

/// `ansible_inventory` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnsibleInventoryArgs {
    /// Exact group name.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub group: Option<String>,
}

/// One inventory host with its Proxmox facts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct InventoryHost {
    pub name: String,
    /// Groups that list the host directly (`all` and `ungrouped` left out).
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The static address the inventory gives (`ansible_host`, or the `ip=` of an ipconfig).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub tags: Vec<String>,
    /// The cluster guest this host is, when one matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestMatch>,
    /// Where the inventory and the cluster disagree about the matched guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
}

/// The guest an inventory host was matched to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GuestMatch {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub status: String,
    /// `vmid` or `name`.
    pub matched_by: String,
}

/// One group: its direct hosts and child groups.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct InventoryGroup {
    pub name: String,
    pub hosts: Vec<String>,
    pub children: Vec<String>,
}

/// `ansible_inventory` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AnsibleInventoryReport {
    /// The inventory sources (`-i`); empty = the repository's `ansible.cfg` decides.
    pub inventories: Vec<String>,
    /// The host variables read for VMID, node, address and tags, in the order tried.
    pub host_vars: BTreeMap<String, Vec<String>>,
    pub groups: Vec<InventoryGroup>,
    pub hosts: Vec<InventoryHost>,
    /// Hosts matched to a guest of the cluster.
    pub matched: usize,
    /// VMIDs the inventory assigns to hosts that do not exist in the cluster (yet): the
    /// allocator never hands them out.
    pub unclaimed_vmids: Vec<u32>,
    pub message: String,
}

/// The parsed inventory, without cluster matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub hosts: Vec<InventoryHost>,
    pub groups: Vec<InventoryGroup>,
}

impl Inventory {
    /// Every VMID a host claims.
    pub fn vmids(&self) -> BTreeSet<u32> {
        self.hosts.iter().filter_map(|h| h.vmid).collect()
    }
}

/// Runs `ansible-inventory --list` and parses it.
///
/// # Errors
/// The program fails (its last error line), or prints something that is not its JSON.
pub async fn read(setup: &Setup) -> Result<Inventory, String> {
    let mut args = setup.inventory_args();
    args.push("--list".into());
    // An inventory source Ansible cannot parse is only a warning by default: here it is the
    // answer's failure, so a typo never reads as "no hosts claim anything".
    let strict = [
        ("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True"),
        ("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True"),
    ];
    let c = capture(setup, &setup.ansible_inventory, &args, &strict, None).await?;
    if c.status != Some(0) {
        return Err(format!(
            "`ansible-inventory --list` failed (exit {}): {}",
            c.status.map_or("signal".into(), |s| s.to_string()),
            last_line(&c.stderr)
        ));
    }
    let json: Value = serde_json::from_str(&c.stdout)
        .map_err(|e| format!("`ansible-inventory --list` did not print its JSON ({e})"))?;
    Ok(parse(&json, &setup.settings.host_vars))
}

/// Parses `ansible-inventory --list` output; pure.
pub fn parse(json: &Value, names: &AnsibleHostVars) -> Inventory {
    let empty = serde_json::Map::new();
    let top = json.as_object().unwrap_or(&empty);
    let hostvars = top
        .get("_meta")
        .and_then(|m| m.get("hostvars"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut groups = Vec::new();
    let mut member: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, g) in top {
        if name == "_meta" {
            continue;
        }
        let hosts = strings(g.get("hosts"));
        let children = strings(g.get("children"));
        if name != "all" && name != "ungrouped" {
            for h in &hosts {
                member.entry(h.clone()).or_default().push(name.clone());
            }
        }
        groups.push(InventoryGroup {
            name: name.clone(),
            hosts,
            children,
        });
    }
    let mut all_hosts: BTreeSet<String> = hostvars.keys().cloned().collect();
    for g in &groups {
        all_hosts.extend(g.hosts.iter().cloned());
    }
    let hosts = all_hosts
        .into_iter()
        .map(|name| {
            let vars = hostvars.get(&name).and_then(Value::as_object);
            let first = |keys: &[String]| -> Option<&Value> {
                let vars = vars?;
                keys.iter()
                    .filter_map(|k| vars.get(k))
                    .find(|v| !v.is_null())
            };
            InventoryHost {
                groups: member.get(&name).cloned().unwrap_or_default(),
                vmid: first(&names.vmid).and_then(vmid_of),
                node: first(&names.node).and_then(scalar),
                address: names
                    .address
                    .iter()
                    .filter_map(|k| vars.and_then(|m| m.get(k)))
                    .find_map(address_of),
                tags: first(&names.tags).map(tags_of).unwrap_or_default(),
                name,
                guest: None,
                mismatches: Vec::new(),
            }
        })
        .collect();
    Inventory { hosts, groups }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() && !s.contains("{{") => Some(s.trim().into()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn vmid_of(v: &Value) -> Option<u32> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    u32::try_from(n)
        .ok()
        .filter(|n| (100..=999_999_999).contains(n))
}

/// An address from `ansible_host` (as is) or an ipconfig value (`ip=10.0.0.5/24,gw=…`: the
/// `ip=`, without its prefix length; `dhcp` gives none).
pub fn address_of(v: &Value) -> Option<String> {
    let s = scalar(v)?;
    let raw = if s.contains("ip=") {
        s.split(',')
            .find_map(|kv| kv.trim().strip_prefix("ip="))?
            .to_string()
    } else {
        s
    };
    let ip = raw.split('/').next().unwrap_or_default().trim().to_string();
    (!ip.is_empty() && ip != "dhcp" && ip != "auto").then_some(ip)
}

fn tags_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => s
            .split([';', ',', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Matches each host to a guest: by VMID when it has one (a host whose VMID is not in the
/// cluster matches nothing), else by name (the host name, or its first DNS label). Records
/// disagreements (name, node). Pure.
pub fn match_guests(hosts: &mut [InventoryHost], guests: &[ClusterResource]) {
    for h in hosts.iter_mut() {
        let short = h.name.split('.').next().unwrap_or_default().to_string();
        let found = match h.vmid {
            Some(v) => guests
                .iter()
                .find(|g| g.vmid == Some(v))
                .map(|g| (g, "vmid")),
            None => guests
                .iter()
                .find(|g| g.name.as_deref().is_some_and(|n| n == h.name || n == short))
                .map(|g| (g, "name")),
        };
        let Some((g, by)) = found else { continue };
        let gm = GuestMatch {
            vmid: g.vmid.unwrap_or_default(),
            name: g.name.clone().unwrap_or_default(),
            node: g.node.clone().unwrap_or_default(),
            status: g.status.clone().unwrap_or_default(),
            matched_by: by.into(),
        };
        if by == "vmid" && gm.name != h.name && gm.name != short {
            h.mismatches.push(format!(
                "the inventory calls vmid {} `{}`, the cluster calls it `{}`",
                gm.vmid, h.name, gm.name
            ));
        }
        if let Some(n) = &h.node
            && *n != gm.node
        {
            h.mismatches.push(format!(
                "the inventory places it on {n}, the cluster runs it on {}",
                gm.node
            ));
        }
        h.guest = Some(gm);
    }
}

/// The inventory with every host matched to the cluster's guests.
///
/// # Errors
/// Not configured; `ansible-inventory` failing; the cluster not readable.
pub async fn ansible_inventory(
    ctx: &Context,
    a: &AnsibleInventoryArgs,
) -> Result<AnsibleInventoryReport, Error> {
    let setup = Setup::required(&ctx.config)?;
    let (inv, rows) = tokio::join!(
        read(&setup),
        ctx.client.get_cluster_resources(Some(ResourceType::Vm))
    );
    let inv = inv.map_err(|e| Error::Setup(format!("reading the Ansible inventory: {e}")))?;
    let rows = rows?;
    let guests: Vec<ClusterResource> = rows.into_iter().filter(crate::ops::is_guest).collect();
    let mut hosts = inv.hosts;
    if let Some(g) = &a.group {
        let Some(group) = inv.groups.iter().find(|x| &x.name == g) else {
            let known: Vec<&str> = inv.groups.iter().map(|x| x.name.as_str()).collect();
            return Err(Error::NotFound {
                what: format!("inventory group {g}"),
                hint: format!("the inventory has {}", known.join(", ")),
            });
        };
        let members = group_members(&inv.groups, &group.name);
        hosts.retain(|h| members.contains(&h.name));
    }
    match_guests(&mut hosts, &guests);
    let matched = hosts.iter().filter(|h| h.guest.is_some()).count();
    let cluster: BTreeSet<u32> = guests.iter().filter_map(|g| g.vmid).collect();
    let unclaimed_vmids: Vec<u32> = hosts
        .iter()
        .filter_map(|h| h.vmid)
        .filter(|v| !cluster.contains(v))
        .collect();
    let n = &setup.settings.host_vars;
    let host_vars = BTreeMap::from([
        ("vmid".to_string(), n.vmid.clone()),
        ("node".to_string(), n.node.clone()),
        ("address".to_string(), n.address.clone()),
        ("tags".to_string(), n.tags.clone()),
    ]);
    let message = format!(
        "{} host(s), {matched} matched to a guest of the cluster{}",
        hosts.len(),
        if unclaimed_vmids.is_empty() {
            String::new()
        } else {
            format!(
                "; VMIDs reserved by the inventory but not in the cluster: {}",
                unclaimed_vmids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(AnsibleInventoryReport {
        inventories: setup
            .inventories
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        host_vars,
        groups: inv.groups,
        hosts,
        matched,
        unclaimed_vmids,
        message,
    })
}

/// Hosts of a group and of its child groups, transitively.
fn group_members(groups: &[InventoryGroup], name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(g) = todo.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        if let Some(group) = groups.iter().find(|x| x.name == g) {
            out.extend(group.hosts.iter().cloned());
            todo.extend(group.children.iter().cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxmox_variables_are_read_with_the_configured_names() {
        let j = json!({
            "_meta": {"hostvars": {
                "a": {"proxmox_vmid": 1008, "proxmox_node": "pve03", "ansible_host": "10.0.0.5",
                       "proxmox_tags_parsed": ["k8s", "talos"]},
                "b": {"vmid": "1009", "ipconfig0": "ip=10.0.0.6/24,gw=10.0.0.1", "tags": "x;y"},
                "c": {"ipconfig0": "ip=dhcp"}
            }},
            "all": {"children": ["ungrouped", "talos"]},
            "talos": {"hosts": ["a", "b"]},
            "ungrouped": {"hosts": ["c"]}
        });
        let inv = parse(&j, &AnsibleHostVars::default());
        let a = &inv.hosts[0];
        assert_eq!(
            (a.vmid, a.node.as_deref(), a.address.as_deref()),
            (Some(1008), Some("pve03"), Some("10.0.0.5"))
        );
        assert_eq!(a.tags, ["k8s", "talos"]);
        assert_eq!(a.groups, ["talos"]);
        let b = &inv.hosts[1];
        assert_eq!(
            (b.vmid, b.address.as_deref()),
            (Some(1009), Some("10.0.0.6"))
        );
        assert_eq!(b.tags, ["x", "y"]);
        assert_eq!(inv.hosts[2].address, None);
        assert!(inv.hosts[2].groups.is_empty());
        assert_eq!(inv.vmids(), BTreeSet::from([1008, 1009]));
    }
}
