//! Guards every mutating tool applies before it sends anything: the VMID must be inside the
//! configured ranges (unless the caller explicitly overrides), the guest must be a QEMU VM,
//! and its node is looked up in the cluster, never taken from the caller.

use crate::pve::{ClusterResource, ResourceKind};

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

/// A QEMU guest found in the cluster inventory, after the range guard.
///
/// # Errors
/// Range refusal, VM not found, or a container.
pub async fn resolve_vm(
    ctx: &Context,
    vmid: u32,
    allow_outside_ranges: bool,
) -> Result<ClusterResource, Error> {
    check_range(ctx, vmid, allow_outside_ranges)?;
    let row = ctx.client.find_vm(vmid).await?;
    if !matches!(row.kind, ResourceKind::Qemu) {
        return Err(Error::invalid(
            "vmid",
            format!("guest {vmid} is a container, not a QEMU VM"),
        ));
    }
    if row.node.is_none() {
        return Err(Error::Setup(format!(
            "the cluster inventory lists vm {vmid} without a node; try again in a few seconds"
        )));
    }
    Ok(row)
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
    Err(Error::refused(format!(
        "vm {} ({}) is a template; {tool} works on VMs only — {instead}",
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
