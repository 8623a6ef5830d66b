//! Templates: listing (with OS type, storages, placement and the linked clones that depend on
//! each), converting an installed VM into a template, and deleting a template (destructive:
//! preview without `confirm`, refused while linked clones depend on it).

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::guard::{node_of, resolve_vm};
use crate::ops::run::Run;
use crate::ops::template::replace::{delete_replaced, replaced_by_description};
use crate::ops::vm::delete::{destroy, preview_message};
use crate::ops::vm::inventory::{VmDisk, VmListArgs, VmSummary, select_vms, vm_disk};
use crate::ops::{Context, Error, is_storage};
use crate::pve::{QemuConfig, StorageContentItem, StorageContentRow};

/// `template_list` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateListArgs {
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub tag: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub page_size: Option<u32>,
}

/// Templates per `template_list` page unless asked otherwise.
pub const TEMPLATES_PAGE: u32 = 10;

/// A template, where it can be cloned, and what depends on it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateSummary {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub tags: Vec<String>,
    /// Guest OS type from the config (`l26`, `win11`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ostype: Option<String>,
    pub disk_gib: f64,
    /// Storages holding its disks.
    pub storages: Vec<String>,
    /// True when every disk is on shared storage, so `vm_create` may target any node.
    pub clonable_to_any_node: bool,
    /// VMs whose disks are linked clones of this template's base disks.
    pub linked_clones: Vec<u32>,
    /// True when the template is inside `vmid_ranges.templates`.
    pub in_template_range: bool,
}

/// `template_list` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateListReport {
    /// One page, by vmid.
    pub templates: Vec<TemplateSummary>,
    /// Templates over all pages.
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
}

/// VMs with volumes based on template `vmid`'s base disks (`base-VMID-disk-N/...`), read from
/// the content of the given storages on `node`.
async fn linked_clones(
    ctx: &Context,
    vmid: u32,
    node: &str,
    storages: &BTreeSet<String>,
) -> Result<Vec<u32>, Error> {
    let mut items = Vec::new();
    for s in storages {
        items.extend(
            ctx.client
                .list_storage_content(node, s, Some("images"))
                .await?,
        );
    }
    Ok(clones_in(&items, vmid))
}

/// The guests whose disks are linked clones of template `vmid`'s base volumes, from storage
/// listings (a volume named after the base, or a parent that is).
fn clones_in<'a>(items: impl IntoIterator<Item = &'a StorageContentItem>, vmid: u32) -> Vec<u32> {
    let base = format!("base-{vmid}-disk-");
    let mut out = BTreeSet::new();
    for item in items {
        let based =
            item.volid.contains(&base) || item.parent.as_deref().is_some_and(|p| p.contains(&base));
        if let (true, Some(owner)) = (based, item.vmid.filter(|o| *o != vmid)) {
            out.insert(owner);
        }
    }
    out.into_iter().collect()
}

/// Whether a volume names a template's base volume at all (`base-` in its volid or parent):
/// every volume [`clones_in`] counts for some template does.
fn may_be_linked(row: &StorageContentRow<'_>) -> bool {
    row.volid.contains("base-") || row.parent.as_deref().is_some_and(|p| p.contains("base-"))
}

/// A template's disk storages (not CD-ROMs or cloud-init drives), from its config.
fn disk_storages(cfg: &QemuConfig) -> BTreeSet<String> {
    cfg.disks()
        .into_iter()
        .map(vm_disk)
        .filter(|d| d.media != "cdrom" && d.media != "cloudinit")
        .filter_map(|d| d.storage)
        .collect()
}

/// Where a storage's listing is read: a shared storage once for the cluster, a local one per
/// node.
fn listing_key(node: &str, storage: &str, shared: &BTreeSet<String>) -> (String, String) {
    let node = if shared.contains(storage) { "" } else { node };
    (node.to_string(), storage.to_string())
}

fn summarize(
    ctx: &Context,
    t: VmSummary,
    cfg: Option<&QemuConfig>,
    shared: &BTreeSet<String>,
    listings: &BTreeMap<(String, String), Vec<StorageContentItem>>,
) -> TemplateSummary {
    let storages = cfg.map(disk_storages).unwrap_or_default();
    let clones = clones_in(
        storages
            .iter()
            .filter_map(|s| listings.get(&listing_key(&t.node, s, shared)))
            .flatten(),
        t.vmid,
    );
    TemplateSummary {
        clonable_to_any_node: cfg.is_some()
            && !storages.is_empty()
            && storages.iter().all(|s| shared.contains(s)),
        in_template_range: ctx.config.vmid_ranges.templates.contains(t.vmid),
        ostype: cfg.and_then(|c| c.get_str("ostype")),
        storages: storages.into_iter().collect(),
        linked_clones: clones,
        vmid: t.vmid,
        name: t.name,
        node: t.node,
        tags: t.tags,
        disk_gib: t.disk_gib,
    }
}

/// Lists templates cluster-wide, a page at a time: one config per template of the page and one
/// listing per storage their disks use (a shared storage once), in parallel up to
/// `limits.max_parallel`.
///
/// # Errors
/// When PVE cannot be reached.
pub async fn template_list(
    ctx: &Context,
    args: &TemplateListArgs,
) -> Result<TemplateListReport, Error> {
    let page = crate::ops::paging::Page::new(args.page, args.page_size, TEMPLATES_PAGE, 100)?;
    let rows = ctx.client.get_cluster_resources(None).await?;
    let shared: BTreeSet<String> = rows
        .iter()
        .filter(|r| is_storage(r) && r.shared == Some(true))
        .filter_map(|r| r.storage.clone())
        .collect();
    let filter = VmListArgs {
        tag: args.tag.clone(),
        node: args.node.clone(),
        include_templates: true,
        ..Default::default()
    };
    let templates: Vec<VmSummary> = select_vms(&rows, &filter)?
        .into_iter()
        .filter(|v| v.template && v.kind == "qemu")
        .collect();
    drop(rows);
    let (templates, total, next_page) = page.cut(templates);
    // Every template's config, then every storage listing the linked-clone search needs, once
    // (a shared storage once for the cluster, not once per template): both bounded by
    // `limits.max_parallel`.
    let parallel = ctx.config.limits.max_parallel.max(1) as usize;
    let ids: Vec<(String, u32)> = templates.iter().map(|t| (t.node.clone(), t.vmid)).collect();
    let configs: Vec<Option<QemuConfig>> = stream::iter(ids)
        .map(|(node, vmid)| async move { ctx.client.get_qemu_config(&node, vmid).await.ok() })
        .buffered(parallel)
        .collect()
        .await;
    let mut wanted: BTreeMap<(String, String), String> = BTreeMap::new();
    for (t, cfg) in templates.iter().zip(&configs) {
        for s in cfg.as_ref().map(disk_storages).unwrap_or_default() {
            wanted
                .entry(listing_key(&t.node, &s, &shared))
                .or_insert_with(|| t.node.clone());
        }
    }
    let listings: BTreeMap<(String, String), Vec<StorageContentItem>> = stream::iter(wanted)
        .map(|(key, node)| async move {
            // only volumes based on a template can be linked clones: the rest of a big
            // listing is read in place and dropped (see `clones_in`)
            let items = ctx
                .client
                .with_storage_content(&node, &key.1, Some("images"), |rows| {
                    rows.iter()
                        .filter(|r| may_be_linked(r))
                        .map(StorageContentRow::to_item)
                        .collect()
                })
                .await
                .unwrap_or_default();
            (key, items)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut out: Vec<TemplateSummary> = templates
        .into_iter()
        .zip(&configs)
        .map(|(t, cfg)| summarize(ctx, t, cfg.as_ref(), &shared, &listings))
        .collect();
    out.sort_by_key(|t| t.vmid);
    Ok(TemplateListReport {
        templates: out,
        total,
        next_page,
    })
}

/// `template_convert` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateConvertArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// `template_convert` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateConvertReport {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    /// The old template deleted because this VM was built to replace it
    /// (`template_from_iso` with `replace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<TemplateDeleteReport>,
    pub warnings: Vec<String>,
    pub message: String,
}

/// Converts a stopped VM into a template and waits for the task.
///
/// # Errors
/// Guards; a running VM (refused before the call); PVE's early refusals (snapshots, already a
/// template, locked) with its reasons.
pub async fn template_convert(
    ctx: &Context,
    run: &Run,
    a: &TemplateConvertArgs,
) -> Result<TemplateConvertReport, Error> {
    let row = resolve_vm(ctx, a.vmid, a.allow_outside_ranges, "template_convert").await?;
    let node = node_of(&row);
    let status = ctx.client.get_qemu_status(&node, a.vmid).await?;
    let name = status.name.clone().unwrap_or_default();
    if status.template == Some(true) || row.is_template() {
        return Err(Error::refused(format!(
            "vm {} ({name}) on {node} already is a template",
            a.vmid
        )));
    }
    if status.status == "running" {
        return Err(Error::refused(format!(
            "vm {} ({name}) on {node} is running; PVE cannot convert a running VM to a template — shut it down with vm_shutdown first",
            a.vmid
        )));
    }
    let mut warnings = Vec::new();
    if !ctx.config.vmid_ranges.templates.contains(a.vmid) {
        warnings.push(format!(
            "vm {} is outside vmid_ranges.templates ({}); templates are easier to find inside it",
            a.vmid, ctx.config.vmid_ranges.templates
        ));
    }
    let object = format!("vm {} on {node}", a.vmid);
    let upid = run
        .task_locked(
            ctx,
            &object,
            &format!("convert {object} to a template"),
            || async { Ok(ctx.client.convert_qemu_to_template(&node, a.vmid).await?) },
        )
        .await?
        .map(|(u, _)| u);
    let replaced = finish_replacement(ctx, run, &node, a.vmid, &name, &mut warnings).await;
    Ok(TemplateConvertReport {
        vmid: a.vmid,
        node: node.clone(),
        name: name.clone(),
        upid: upid.map(|u| u.to_string()),
        message: format!(
            "vm {} ({name}) on {node} is now a template{}; clone it with vm_create",
            a.vmid,
            replaced
                .as_ref()
                .map(|r| format!(", and the template it replaces ({}) was deleted", r.vmid))
                .unwrap_or_default()
        ),
        replaced,
        warnings,
    })
}

/// After a conversion: when the VM was built to replace a template (its description says
/// which), deletes that template — only if it still is a template of the same name — and
/// drops the note from the description. Failures become warnings: the new template exists.
async fn finish_replacement(
    ctx: &Context,
    run: &Run,
    node: &str,
    vmid: u32,
    name: &str,
    warnings: &mut Vec<String>,
) -> Option<TemplateDeleteReport> {
    let config = ctx.client.get_qemu_config(node, vmid).await.ok()?;
    let (old, rest) = replaced_by_description(&config.get_str("description")?)?;
    let params: Vec<(String, String)> = if rest.trim().is_empty() {
        vec![("delete".into(), "description".into())]
    } else {
        vec![("description".into(), rest)]
    };
    if let Err(e) = ctx
        .client
        .set_qemu_config_sync(node, vmid, &params, None)
        .await
    {
        warnings.push(format!(
            "could not remove the replacement note from the description of {vmid}: {e}"
        ));
    }
    match ctx.client.find_vm(old).await {
        Ok(row) if row.is_template() && row.name.as_deref() == Some(name) => {
            delete_replaced(ctx, run, old, warnings).await
        }
        _ => {
            warnings.push(format!(
                "vm {vmid} was built to replace template {old}, which is no longer a template named {name}; nothing else was deleted"
            ));
            None
        }
    }
}

/// `template_delete` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDeleteArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[serde(default)]
    pub confirm: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateDeleteReport {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    pub disks: Vec<VmDisk>,
    /// Linked clones: while any exists, it cannot be deleted.
    pub linked_clones: Vec<u32>,
    pub will_remove: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    pub executed: bool,
    pub upids: Vec<String>,
    pub message: String,
}

/// Previews, or with `confirm` performs, the deletion of a template.
///
/// # Errors
/// Guards; not a template; when confirmed: linked clones, protection, failed tasks.
pub async fn template_delete(
    ctx: &Context,
    run: &Run,
    a: &TemplateDeleteArgs,
) -> Result<TemplateDeleteReport, Error> {
    let row = resolve_vm(ctx, a.vmid, a.allow_outside_ranges, "template_delete").await?;
    let node = node_of(&row);
    let config = ctx.client.get_qemu_config(&node, a.vmid).await?;
    if !config.template() {
        return Err(Error::invalid(
            "vmid",
            format!(
                "vm {} on {node} is not a template; delete VMs with vm_delete",
                a.vmid
            ),
        ));
    }
    let disks: Vec<VmDisk> = config
        .disks()
        .into_iter()
        .map(vm_disk)
        .filter(|d| d.media != "cdrom" && d.volume != "none")
        .collect();
    let storages: BTreeSet<String> = disks
        .iter()
        .filter(|d| d.media != "cloudinit")
        .filter_map(|d| d.storage.clone())
        .collect();
    let clones = linked_clones(ctx, a.vmid, &node, &storages).await?;
    let name = config.name().unwrap_or_default();
    let mut will_remove = vec![format!(
        "the configuration of template {} ({name}) on {node}",
        a.vmid
    )];
    will_remove.extend(disks.iter().map(|d| {
        format!(
            "{} volume {} ({})",
            d.media,
            d.volume,
            d.size.clone().unwrap_or_default()
        )
    }));
    let blocked_by = if !clones.is_empty() {
        Some(format!(
            "linked clones depend on its base disks: {}; delete or fully clone them first",
            clones
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else if config.protection() {
        Some(format!(
            "template {} has protection enabled; turn it off in PVE first if you really mean it",
            a.vmid
        ))
    } else {
        None
    };
    let mut report = TemplateDeleteReport {
        vmid: a.vmid,
        node: node.clone(),
        name,
        disks,
        linked_clones: clones,
        will_remove,
        blocked_by: blocked_by.clone(),
        executed: false,
        upids: vec![],
        message: String::new(),
    };
    if !a.confirm {
        report.message = preview_message(blocked_by.as_deref(), "");
        return Ok(report);
    }
    if let Some(b) = blocked_by {
        return Err(Error::refused(b));
    }
    let object = format!("template {} on {node}", a.vmid);
    destroy(
        ctx,
        run,
        crate::pve::GuestType::Qemu,
        &node,
        a.vmid,
        &object,
    )
    .await?;
    report.executed = true;
    report.upids = run.upids();
    report.message = format!("{object} and its disks were deleted");
    Ok(report)
}
