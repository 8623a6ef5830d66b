//! Guards every mutating tool applies before it sends anything: the VMID must be inside the
//! configured ranges (unless the caller explicitly overrides), its type (VM or container)
//! and node are looked up in the cluster, never taken from the caller, and a VM-only tool
//! refuses a container saying why.

use crate::pve::{ClusterResource, GuestType};

use super::{Context, Error};

/// Refuses a VMID outside `vmid_ranges` unless `allow_outside_ranges` is set.
///
/// # Errors
/// `Refused`, naming both ranges and the override.
pub fn check_range(ctx: &Context, vmid: u32, allow_outside_ranges: bool) -> Result<(), Error> {
    let r = &ctx.config.vmid_ranges;
    if allow_outside_ranges || r.vms.contains(vmid) || r.templates.contains(vmid) {
        return Ok(());
    }
    Err(Error::refused(format!(
        "vm {vmid} is outside the managed ranges (vmid_ranges.vms {}, vmid_ranges.templates {} in {}); it may belong to someone else — pass allow_outside_ranges: true only if you mean to touch it",
        r.vms,
        r.templates,
        ctx.config.path.display()
    )))
}

/// A guest (VM or container) found in the cluster inventory, after the range guard. Its
/// type is the inventory's, read with [`guest_type`].
///
/// # Errors
/// Range refusal, guest not found, or a row without a node.
pub async fn resolve_guest(
    ctx: &Context,
    vmid: u32,
    allow_outside_ranges: bool,
) -> Result<ClusterResource, Error> {
    check_range(ctx, vmid, allow_outside_ranges)?;
    let row = ctx.client.find_vm(vmid).await?;
    if row.node.is_none() {
        return Err(Error::Setup(format!(
            "the cluster inventory lists guest {vmid} without a node; try again in a few seconds"
        )));
    }
    Ok(row)
}

/// A QEMU guest found in the cluster inventory, after the range guard, for the tools that
/// only VMs have (`tool` names the one asking, for the refusal of a container).
///
/// # Errors
/// Range refusal, VM not found, or a container (naming `tool` and why).
pub async fn resolve_vm(
    ctx: &Context,
    vmid: u32,
    allow_outside_ranges: bool,
    tool: &str,
) -> Result<ClusterResource, Error> {
    let row = resolve_guest(ctx, vmid, allow_outside_ranges).await?;
    refuse_container(&row, tool)?;
    Ok(row)
}

/// Refuses a container in a tool that works on QEMU VMs only, saying why.
///
/// # Errors
/// `InvalidInput` on `vmid` naming the guest, the tool and the reason.
pub fn refuse_container(row: &ClusterResource, tool: &str) -> Result<(), Error> {
    if guest_type(row) == GuestType::Qemu {
        return Ok(());
    }
    Err(Error::invalid(
        "vmid",
        format!(
            "guest {} ({}) on {} is a container; {tool} works on QEMU VMs only ({})",
            row.vmid.unwrap_or(0),
            row.name.as_deref().unwrap_or("unnamed"),
            row.node.as_deref().unwrap_or("?"),
            vm_only_reason(tool)
        ),
    ))
}

/// Why a VM-only tool cannot take a container, and what to use instead.
fn vm_only_reason(tool: &str) -> &'static str {
    match tool {
        "template_convert" => {
            "VM templates with cloud-init; ct_create makes a container from an OS template or a container template"
        }
        "template_delete" => "delete a container template with vm_delete",
        "vm_create" => "it clones a VM template; create containers with ct_create",
        _ => "containers have no QEMU disks, cloud-init or guest agent",
    }
}

/// The type of a guest row (`qemu` unless the inventory says `lxc`).
pub fn guest_type(row: &ClusterResource) -> GuestType {
    GuestType::of(&row.kind).unwrap_or(GuestType::Qemu)
}

/// Refuses a template in a VM tool that has a template counterpart (`template_delete`, ...):
/// templates have their own rules (linked clones, replacement), so they are changed only
/// through the template tools. A VM in the template VMID range that is not a template is a VM
/// like any other.
///
/// # Errors
/// `Refused`, naming the tool to use instead.
pub fn refuse_template(row: &ClusterResource, tool: &str, instead: &str) -> Result<(), Error> {
    if !row.is_template() {
        return Ok(());
    }
    let noun = guest_type(row).noun();
    Err(Error::refused(format!(
        "{noun} {} ({}) is a template; {tool} works on {noun}s only — {instead}",
        row.vmid.unwrap_or(0),
        row.name.clone().unwrap_or_default()
    )))
}

/// The node of a resolved row (present by construction of [`resolve_vm`]).
pub fn node_of(row: &ClusterResource) -> String {
    row.node.clone().unwrap_or_default()
}

/// Normalises tags as PVE does on write: lowercase, deduplicated, sorted.
///
/// # Errors
/// Names the first tag PVE would refuse.
pub fn normalize_tags<I: IntoIterator<Item = String>>(tags: I) -> Result<Vec<String>, Error> {
    let mut out = std::collections::BTreeSet::new();
    for t in tags {
        for part in t.split([';', ',', ' ', '\0']).filter(|p| !p.is_empty()) {
            let lower = part.to_lowercase();
            if !crate::config::valid_tag(&lower) {
                return Err(Error::invalid(
                    "tags",
                    format!(
                        "'{}' is not a valid PVE tag: use letters, digits and _ - + . and start with a letter, digit or _",
                        super::error::quote(part)
                    ),
                ));
            }
            out.insert(lower);
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_normalise_like_pve() {
        let t = normalize_tags(vec!["Web;prod".to_string(), "prod".into(), "a b".into()])
            .expect("valid");
        assert_eq!(t, vec!["a", "b", "prod", "web"]);
        assert!(normalize_tags(vec!["-bad".to_string()]).is_err());
    }
}
