//! Not fighting Ansible: what direct operations ask of the inventory. The VMID allocator skips
//! the VMIDs it claims, `vm_create` refuses a name, VMID or static address it assigns to
//! another host, previews say when a guest is Ansible-managed.
//!
//! The inventory is read by a subprocess, so it is cached for [`TTL`] (a failure too, so a
//! broken inventory does not cost a subprocess per call). When the integration is not
//! configured every hook answers at once, without a subprocess.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ops::{Context, Error};

use super::Setup;
use super::inventory::{self, Inventory, InventoryHost};

/// How long one inventory read is reused.
pub const TTL: Duration = Duration::from_secs(30);

type Slot = Option<(Instant, Result<Arc<Inventory>, String>)>;

/// The server-wide cache of the parsed inventory.
#[derive(Default)]
pub struct InventoryCache {
    slot: tokio::sync::Mutex<Slot>,
}

impl InventoryCache {
    /// The inventory (cached), `None` when the integration is not configured.
    pub async fn get(&self, config: &Config) -> Option<Result<Arc<Inventory>, String>> {
        let setup = Setup::of(config)?;
        let mut slot = self.slot.lock().await;
        if let Some((at, r)) = slot.as_ref()
            && at.elapsed() < TTL
        {
            return Some(r.clone());
        }
        let r = inventory::read(&setup).await.map(Arc::new);
        *slot = Some((Instant::now(), r.clone()));
        Some(r)
    }
}

/// The inventory host a guest is, shown in previews.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ManagedBy {
    /// The inventory host name.
    pub host: String,
    /// `vmid` or `name`.
    pub matched_by: String,
    pub groups: Vec<String>,
    pub note: String,
}

/// VMIDs the inventory assigns (empty when not configured or unreadable: an unreadable
/// inventory is logged; `vm_create` itself refuses on it).
pub async fn claimed_vmids(ctx: &Context) -> BTreeSet<u32> {
    match ctx.ansible.get(&ctx.config).await {
        None => BTreeSet::new(),
        Some(Ok(inv)) => inv.vmids(),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ansible inventory unreadable; its VMIDs are not skipped");
            BTreeSet::new()
        }
    }
}

fn short(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

fn describe(h: &InventoryHost) -> String {
    let mut facts = Vec::new();
    if let Some(v) = h.vmid {
        facts.push(format!("vmid {v}"));
    }
    if let Some(a) = &h.address {
        facts.push(format!("address {a}"));
    }
    if !h.groups.is_empty() {
        facts.push(format!("groups {}", h.groups.join(",")));
    }
    if facts.is_empty() {
        format!("inventory host `{}`", h.name)
    } else {
        format!("inventory host `{}` ({})", h.name, facts.join(", "))
    }
}

/// What a new VM (`name`, explicit `vmid`, static `address`) would take from another
/// inventory host; pure.
pub fn conflicts(
    inv: &Inventory,
    name: &str,
    vmid: Option<u32>,
    address: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    for h in &inv.hosts {
        let same = h.name == name || short(&h.name) == name;
        if same {
            if let Some(hv) = h.vmid
                && vmid != Some(hv)
            {
                out.push(format!(
                    "the name {name} is {}, which the inventory assigns vmid {hv}: pass vmid: {hv} to create that host, or choose another name",
                    describe(h)
                ));
            }
            continue;
        }
        if let Some(v) = vmid
            && h.vmid == Some(v)
        {
            out.push(format!("vmid {v} is assigned to {}", describe(h)));
        }
        if let Some(a) = address
            && h.address.as_deref() == Some(a)
        {
            out.push(format!("address {a} is assigned to {}", describe(h)));
        }
    }
    out
}

/// Refuses a create that takes a name, VMID or static address the inventory gives another
/// host. Not configured: nothing to check.
///
/// # Errors
/// `Refused` naming the inventory entries; `Setup` when the inventory cannot be read.
pub async fn check_create(
    ctx: &Context,
    name: &str,
    vmid: Option<u32>,
    ipconfig0: Option<&str>,
) -> Result<(), Error> {
    let Some(inv) = ctx.ansible.get(&ctx.config).await else {
        return Ok(());
    };
    let inv = inv.map_err(|e| {
        Error::Setup(format!(
            "the Ansible inventory could not be read to check for conflicts: {e}; fix it (`proxmox-manager check` shows why), or pass allow_inventory_conflict: true to create without the check"
        ))
    })?;
    let address =
        ipconfig0.and_then(|s| inventory::address_of(&serde_json::Value::String(s.into())));
    let found = conflicts(&inv, name, vmid, address.as_deref());
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::refused(format!(
        "the Ansible inventory assigns this to another host: {}; the server never edits the inventory — choose free values, or pass allow_inventory_conflict: true only if the inventory is out of date",
        found.join("; ")
    )))
}

/// Which inventory host a guest is (by VMID, else by name), for previews. `None` when not
/// configured, unreadable, or not in the inventory.
pub async fn managed_by(ctx: &Context, vmid: u32, name: &str) -> Option<ManagedBy> {
    let inv = ctx.ansible.get(&ctx.config).await?.ok()?;
    find_managed(&inv, vmid, name)
}

/// [`managed_by`] on an inventory already read; pure.
pub fn find_managed(inv: &Inventory, vmid: u32, name: &str) -> Option<ManagedBy> {
    let (h, by) = inv
        .hosts
        .iter()
        .find(|h| h.vmid == Some(vmid))
        .map(|h| (h, "vmid"))
        .or_else(|| {
            inv.hosts
                .iter()
                .find(|h| {
                    h.vmid.is_none()
                        && !name.is_empty()
                        && (h.name == name || short(&h.name) == name)
                })
                .map(|h| (h, "name"))
        })?;
    Some(ManagedBy {
        host: h.name.clone(),
        matched_by: by.into(),
        groups: h.groups.clone(),
        note: format!(
            "Ansible-managed: {} — the fleet's playbooks expect this guest; prefer changing it through them (ansible_run)",
            describe(h)
        ),
    })
}

/// The inventory host name of a guest, for one line of a bulk preview; pure.
pub fn managed_host(inv: Option<&Inventory>, vmid: u32, name: &str) -> Option<String> {
    find_managed(inv?, vmid, name).map(|m| m.host)
}

/// The inventory for a batch of previews (one read), `None` when not configured/unreadable.
pub async fn inventory_for_previews(ctx: &Context) -> Option<Arc<Inventory>> {
    ctx.ansible.get(&ctx.config).await?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, vmid: Option<u32>, address: Option<&str>) -> InventoryHost {
        InventoryHost {
            name: name.into(),
            groups: vec!["talos".into()],
            vmid,
            node: None,
            address: address.map(str::to_string),
            tags: vec![],
            guest: None,
            mismatches: vec![],
        }
    }

    #[test]
    fn conflicts_name_the_inventory_entry() {
        let inv = Inventory {
            hosts: vec![
                host("talos-worker-03", Some(1015), Some("10.0.0.54")),
                host("web-01", None, Some("10.0.0.61")),
            ],
            groups: vec![],
        };
        // The host Ansible expects: same name, same vmid.
        assert!(conflicts(&inv, "talos-worker-03", Some(1015), None).is_empty());
        let c = conflicts(&inv, "talos-worker-03", None, None);
        assert!(
            c[0].contains("talos-worker-03") && c[0].contains("vmid: 1015"),
            "{c:?}"
        );
        let c = conflicts(&inv, "other", Some(1015), Some("10.0.0.61"));
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(
            c[0].contains("vmid 1015") && c[1].contains("`web-01`"),
            "{c:?}"
        );
        assert!(conflicts(&inv, "free", Some(2000), Some("10.0.0.99")).is_empty());
        let m = find_managed(&inv, 1015, "x").expect("by vmid");
        assert_eq!(
            (m.host.as_str(), m.matched_by.as_str()),
            ("talos-worker-03", "vmid")
        );
        assert_eq!(
            find_managed(&inv, 7, "web-01").map(|m| m.matched_by),
            Some("name".into())
        );
        assert_eq!(find_managed(&inv, 7, "nope"), None);
    }
}
