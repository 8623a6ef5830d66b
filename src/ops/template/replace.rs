//! Names are not silently duplicated: a template build whose name a guest already has is
//! refused, unless `replace: true` — which is destructive, so it needs `confirm: true` and
//! otherwise returns the preview. The old template is deleted only after the new one is
//! ready, so a failed build loses nothing; it must be a template with no linked clones.

use crate::pve::ResourceType;

use crate::ops::run::Run;
use crate::ops::template::manage::{TemplateDeleteArgs, TemplateDeleteReport, template_delete};
use crate::ops::{Context, Error};

/// What a build does about the name it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameUse {
    /// No guest has the name.
    Free,
    /// Template `vmid` has it and will be replaced.
    Replaces(u32),
}

/// Checks `name` against every guest of the cluster.
///
/// # Errors
/// The name is taken and `replace` is false; it is taken by several guests; or `replace` is
/// asked for a guest that is not a template.
pub(crate) async fn check_name(ctx: &Context, name: &str, replace: bool) -> Result<NameUse, Error> {
    let rows = ctx
        .client
        .get_cluster_resources(Some(ResourceType::Vm))
        .await?;
    let holders: Vec<_> = rows
        .iter()
        .filter(|r| r.name.as_deref() == Some(name))
        .collect();
    let Some(first) = holders.first() else {
        return Ok(NameUse::Free);
    };
    let vmid = first.vmid.unwrap_or(0);
    let node = first.node.clone().unwrap_or_default();
    if !replace {
        return Err(Error::refused(format!(
            "a guest named {name} already exists (vmid {vmid} on {node}); pick another name, delete the old template with template_delete, or pass replace: true with confirm: true to build the new one and then delete the old"
        )));
    }
    if holders.len() > 1 {
        let ids: Vec<String> = holders
            .iter()
            .map(|r| r.vmid.unwrap_or(0).to_string())
            .collect();
        return Err(Error::refused(format!(
            "{} guests are named {name} (vmids {}); replace works on exactly one template — delete the extra ones with template_delete first",
            holders.len(),
            ids.join(", ")
        )));
    }
    if first.template != Some(true) {
        return Err(Error::refused(format!(
            "{name} is vm {vmid} on {node}, which is not a template; replace only replaces templates — pick another name"
        )));
    }
    Ok(NameUse::Replaces(vmid))
}

/// The deletion preview of the template being replaced; refuses when its deletion would be.
///
/// # Errors
/// Linked clones or protection block the deletion; the range guard; PVE errors.
pub(crate) async fn preview_replace(
    ctx: &Context,
    run: &Run,
    old: u32,
    new_vmid: Option<u32>,
) -> Result<TemplateDeleteReport, Error> {
    if new_vmid == Some(old) {
        return Err(Error::refused(format!(
            "vmid {old} is the template being replaced; the new template is built before the old one is deleted, so give another vmid or leave it out"
        )));
    }
    let preview = template_delete(
        ctx,
        run,
        &TemplateDeleteArgs {
            vmid: old,
            confirm: false,
            allow_outside_ranges: false,
        },
    )
    .await?;
    if let Some(b) = &preview.blocked_by {
        return Err(Error::refused(format!(
            "cannot replace template {old}: {b}"
        )));
    }
    Ok(preview)
}

/// Deletes the replaced template once the new one is ready. A failure is not an error of the
/// build (the new template exists): it comes back as a warning naming what to do.
pub(crate) async fn delete_replaced(
    ctx: &Context,
    run: &Run,
    old: u32,
    warnings: &mut Vec<String>,
) -> Option<TemplateDeleteReport> {
    let args = TemplateDeleteArgs {
        vmid: old,
        confirm: true,
        allow_outside_ranges: false,
    };
    match template_delete(ctx, run, &args).await {
        Ok(r) => Some(r),
        Err(e) => {
            warnings.push(format!(
                "the new template is ready, but deleting the old template {old} failed: {e}; both now carry the name — delete {old} with template_delete"
            ));
            None
        }
    }
}

/// The description line an installation VM carries when it replaces template `old`:
/// `template_convert` reads it and deletes `old` once the new template exists.
pub(crate) fn replaces_marker(old: u32) -> String {
    format!("{MARKER}{old}")
}

const MARKER: &str = "proxmox-manager: on template_convert, replaces template ";

/// The template a VM's description says it replaces, and the description without that line.
pub(crate) fn replaced_by_description(description: &str) -> Option<(u32, String)> {
    let mut old = None;
    let rest: Vec<&str> = description
        .lines()
        .filter(
            |l| match l.trim().strip_prefix(MARKER).map(str::parse::<u32>) {
                Some(Ok(v)) => {
                    old = Some(v);
                    false
                }
                _ => true,
            },
        )
        .collect();
    old.map(|o| (o, rest.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_round_trips() {
        let d = format!("notes\n{}", replaces_marker(105));
        assert_eq!(
            replaced_by_description(&d),
            Some((105, "notes".to_string()))
        );
        assert_eq!(replaced_by_description("notes"), None);
    }
}
