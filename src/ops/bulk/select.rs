//! Resolving a bulk selection: the matching guests, each with its protection read from its
//! config, split into the ones a bulk operation acts on and the ones it skips (and why).

use std::collections::BTreeMap;

use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::batch::{BatchReport, Outcome};
use crate::ops::vm::inventory::{VmSummary, summarize_vm};
use crate::ops::vm::select::Selector;
use crate::ops::{Context, Error, is_guest};
use crate::pve::{GuestType, ResourceType};

/// A guest a bulk operation acts on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BulkGuest {
    pub vmid: u32,
    /// `qemu` (a VM) or `lxc` (a container).
    #[serde(rename = "type")]
    pub guest_type: String,
    pub name: String,
    pub node: String,
    pub status: String,
    /// What the operation would do to it (preview) or did (after `confirm`).
    pub action: String,
    /// The Ansible inventory host this guest is, when it is Ansible-managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansible_managed: Option<String>,
}

/// A matching guest left alone, and why.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Skipped {
    pub vmid: u32,
    pub name: String,
    pub reason: String,
}

/// What happened to one guest.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BulkResult {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// `done`, `nothing_to_do`, `failed` or `not_started`.
    pub outcome: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
}

/// The guests `selector` matches, split into targets and skipped ones.
///
/// # Errors
/// A selector without any criterion (it would address every guest), an invalid one, a node
/// that is not in the cluster, PVE unreachable.
pub(crate) async fn resolve(
    ctx: &Context,
    selector: &Selector<'_>,
) -> Result<(Vec<VmSummary>, Vec<Skipped>), Error> {
    if !selector.is_narrowed() {
        return Err(Error::invalid(
            "tags",
            "a bulk operation needs at least one of tags, node, status, name or vmids; to address every guest, say so with status or node",
        ));
    }
    selector.validate()?;
    if let Some(node) = selector.node {
        crate::ops::require_cluster_node(ctx, node).await?;
    }
    let rows = ctx
        .client
        .get_cluster_resources(Some(ResourceType::Vm))
        .await?;
    let all = Selector {
        include_templates: true,
        ..*selector
    };
    let mut matched: Vec<VmSummary> = rows
        .iter()
        .filter(|r| is_guest(r))
        .map(summarize_vm)
        .filter(|v| all.matches(v))
        .collect();
    matched.sort_by_key(|v| v.vmid);
    if let Some(ids) = selector.vmids {
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !matched.iter().any(|v| v.vmid == **id))
            .map(u32::to_string)
            .collect();
        if !missing.is_empty() && selector.tags.is_empty() && selector.node.is_none() {
            return Err(Error::NotFound {
                what: format!("vm {}", missing.join(", ")),
                hint: "list guests with vm_list to find the right ids".into(),
            });
        }
    }
    let protected = protection(ctx, &matched).await;
    let ranges = &ctx.config.vmid_ranges;
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    for v in matched {
        let reason = if v.template {
            Some("a template".to_string())
        } else if ranges.templates.contains(v.vmid) && !ranges.vms.contains(v.vmid) {
            // The template range is for templates: a VM there is not one of the guests a bulk
            // operation manages (a single-VM tool still reaches it).
            Some(format!(
                "not a template, but in the template range (vmid_ranges.templates {}); bulk operations act on guests in vmid_ranges.vms {}",
                ranges.templates, ranges.vms
            ))
        } else if !ranges.vms.contains(v.vmid) {
            Some(format!(
                "outside the managed ranges (vmid_ranges.vms {})",
                ranges.vms
            ))
        } else if protected.get(&v.vmid).copied().unwrap_or(false) {
            Some("protected (protection: 1)".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(Skipped {
                vmid: v.vmid,
                name: v.name,
                reason,
            }),
            None => targets.push(v),
        }
    }
    Ok((targets, skipped))
}

/// `protection` of each guest, read from its config (at most `limits.max_parallel` at once). A
/// config that cannot be read counts as protected: the guest is skipped, never acted on blind.
async fn protection(ctx: &Context, guests: &[VmSummary]) -> BTreeMap<u32, bool> {
    let wanted: Vec<(String, u32, GuestType)> = guests
        .iter()
        .filter(|v| !v.template)
        .map(|v| (v.node.clone(), v.vmid, GuestType::from_name(&v.kind)))
        .collect();
    let reads = wanted.into_iter().map(|(node, vmid, t)| {
        let ctx = ctx.clone();
        async move {
            let protected = match ctx.client.get_guest_config(t, &node, vmid).await {
                Ok(c) => c.protection(),
                Err(_) => true,
            };
            (vmid, protected)
        }
    });
    futures::stream::iter(reads)
        .buffer_unordered(ctx.config.limits.max_parallel.max(1) as usize)
        .collect()
        .await
}

/// One result per guest, in `guests` order, from a batch run over them: a step's own result,
/// or its failure or the reason it never started.
pub(crate) fn results(batch: BatchReport<BulkResult>, guests: &[BulkGuest]) -> Vec<BulkResult> {
    batch
        .results
        .into_iter()
        .zip(guests)
        .map(|(r, g)| {
            let (outcome, message) = match r.outcome {
                Outcome::Done { value } => return value,
                Outcome::Failed { error } => ("failed", error),
                Outcome::NotStarted { reason } => ("not_started", reason),
            };
            BulkResult {
                vmid: g.vmid,
                name: g.name.clone(),
                node: g.node.clone(),
                outcome: outcome.into(),
                message,
                upid: None,
            }
        })
        .collect()
}
