//! `vm_set_tags`: set, add or remove a VM's tags without losing a concurrent change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::guard::{guest_type, node_of, normalize_tags, refuse_template, resolve_guest};
use crate::ops::run::Run;
use crate::ops::{Context, Error};
use crate::pve::GuestType;

/// `vm_set_tags` arguments: replace the tags with `set`, or `add` / `remove` some.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmSetTagsArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    /// Replace all tags.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(max = 128),
            regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_+.;, -]*$")
        )
    )]
    pub set: Option<Vec<String>>,
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(max = 128),
            regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_+.;, -]*$")
        )
    )]
    pub add: Vec<String>,
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(max = 128),
            regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_+.;, -]*$")
        )
    )]
    pub remove: Vec<String>,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// `vm_set_tags` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmSetTagsReport {
    pub vmid: u32,
    pub node: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
    /// False when the tags already were as asked (nothing was sent).
    pub changed: bool,
}

/// Sets, adds or removes tags (normalised as PVE does: lowercase, deduplicated, sorted).
///
/// # Errors
/// Guards, invalid tags, PVE errors.
pub async fn vm_set_tags(
    ctx: &Context,
    run: &Run,
    a: &VmSetTagsArgs,
) -> Result<VmSetTagsReport, Error> {
    if a.set.is_none() && a.add.is_empty() && a.remove.is_empty() {
        return Err(Error::invalid("set", "give set, add or remove"));
    }
    let add = normalize_tags(a.add.clone())?;
    let remove = normalize_tags(a.remove.clone())?;
    let set = a.set.clone().map(normalize_tags).transpose()?;
    let row = resolve_guest(ctx, a.vmid, a.allow_outside_ranges).await?;
    let t = guest_type(&row);
    // A container template's tags are its own; a VM template's come from the template tools.
    if t == GuestType::Qemu {
        refuse_template(
            &row,
            "vm_set_tags",
            "a template's tags come from the template tools (the `templates` tag group and the tags given to template_from_cloud_image / template_import_disk / template_from_iso); rebuild it with replace: true to change them",
        )?;
    }
    let node = node_of(&row);
    let object = format!("{} {} on {node}", t.word(), a.vmid);
    // Computed from the config read inside the retry, so a concurrent change is never lost:
    // the digest makes PVE refuse a write based on a stale read, and the retry re-reads.
    let new_tags = |current: Vec<String>| -> Result<Vec<String>, Error> {
        let mut after = set.clone().unwrap_or(current);
        after.extend(add.iter().cloned());
        after.retain(|t| !remove.contains(t));
        normalize_tags(after)
    };
    let before = normalize_tags(ctx.client.get_guest_config(t, &node, a.vmid).await?.tags())?;
    if new_tags(before.clone())? == before {
        return Ok(VmSetTagsReport {
            vmid: a.vmid,
            node,
            after: before.clone(),
            before,
            changed: false,
        });
    }
    run.retry_locked(ctx, &object, || async {
        let config = ctx.client.get_guest_config(t, &node, a.vmid).await?;
        let after = new_tags(normalize_tags(config.tags())?)?;
        let params: Vec<(String, String)> = if after.is_empty() {
            vec![("delete".into(), "tags".into())]
        } else {
            vec![("tags".into(), after.join(";"))]
        };
        let digest = config.digest();
        match t {
            GuestType::Qemu => {
                ctx.client
                    .set_qemu_config_sync(&node, a.vmid, &params, digest.as_deref())
                    .await?;
            }
            GuestType::Lxc => {
                ctx.client
                    .set_lxc_config(&node, a.vmid, &params, digest.as_deref())
                    .await?;
            }
        }
        Ok(())
    })
    .await?;
    let now = ctx.client.get_guest_config(t, &node, a.vmid).await?;
    Ok(VmSetTagsReport {
        vmid: a.vmid,
        node,
        before,
        after: now.tags(),
        changed: true,
    })
}
