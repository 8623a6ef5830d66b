//! `vm_delete` of a VM or a container: destructive, so without `confirm: true` it only says
//! exactly what would go.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::{DeleteQemu, GuestType, StopQemu};

use crate::ops::guard::{guest_type, node_of, refuse_template, resolve_guest};
use crate::ops::run::Run;
use crate::ops::vm::inventory::{VmDisk, vm_disk};
use crate::ops::{Context, Error};

/// `vm_delete` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmDeleteArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[serde(default)]
    pub confirm: bool,
    /// Hard-stop it if running (else refused).
    #[serde(default)]
    pub stop: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// `vm_delete` output: the preview, and what happened when confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmDeleteReport {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    /// The VM's description (its notes), to recognise it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: String,
    pub template: bool,
    pub protected: bool,
    pub disks: Vec<VmDisk>,
    /// Everything the deletion removes.
    pub will_remove: Vec<String>,
    /// Why the deletion cannot run as asked, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// Set when the Ansible inventory manages this guest: its playbooks expect it to exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansible_managed: Option<crate::ops::ansible::ManagedBy>,
    /// True only when the VM was deleted by this call.
    pub executed: bool,
    pub upids: Vec<String>,
    pub message: String,
}

/// Previews, or with `confirm` performs, the deletion of a VM.
///
/// # Errors
/// Guards; when confirmed: protection, a running VM without `stop`, failed tasks.
pub async fn vm_delete(
    ctx: &Context,
    run: &Run,
    a: &VmDeleteArgs,
) -> Result<VmDeleteReport, Error> {
    let row = resolve_guest(ctx, a.vmid, a.allow_outside_ranges).await?;
    let t = guest_type(&row);
    let vm = t.word();
    // A container template has no template tool: vm_delete deletes it (PVE refuses while
    // a linked clone uses its base volume).
    if t == GuestType::Qemu {
        refuse_template(
            &row,
            "vm_delete",
            "use template_delete, which also checks for linked clones",
        )?;
    }
    let node = node_of(&row);
    let (config, status) = tokio::try_join!(
        ctx.client.get_guest_config(t, &node, a.vmid),
        ctx.client.get_guest_status(t, &node, a.vmid)
    )?;
    let disks: Vec<VmDisk> = config
        .disks()
        .into_iter()
        .map(vm_disk)
        .filter(|d| d.media != "cdrom" && d.volume != "none")
        .collect();
    // A bind mount's source is a host directory PVE leaves alone.
    let kept: Vec<&VmDisk> = disks.iter().filter(|d| d.media == "bind").collect();
    let running = status.status == "running";
    let mut will_remove = vec![format!(
        "the configuration of {vm} {} ({}) on {node}",
        a.vmid,
        config.name().unwrap_or_default()
    )];
    for d in disks.iter().filter(|d| d.media != "bind") {
        will_remove.push(format!(
            "{} volume {} ({})",
            d.media,
            d.volume,
            d.size.clone().unwrap_or_else(|| "size unknown".into())
        ));
    }
    will_remove.push(format!(
        "any unreferenced volumes of {vm} {} on the node's storages",
        a.vmid
    ));
    will_remove.push(format!(
        "{vm} {} from backup jobs, replication and HA (purge)",
        a.vmid
    ));
    for d in kept {
        will_remove.push(format!(
            "not the bind-mounted host directory {} ({}): PVE leaves it in place",
            d.volume, d.key
        ));
    }
    let blocked_by = if config.protection() {
        Some(format!(
            "{vm} {} has protection enabled; PVE refuses to delete it until protection is turned off (set protection: 0 in PVE if you really mean it)",
            a.vmid
        ))
    } else if running && !a.stop {
        Some(format!(
            "{vm} {} is running; pass stop: true to stop it hard first, or shut it down with vm_shutdown",
            a.vmid
        ))
    } else {
        None
    };
    let mut report = VmDeleteReport {
        vmid: a.vmid,
        node: node.clone(),
        name: config.name().unwrap_or_default(),
        description: config.get_str("description").filter(|d| !d.is_empty()),
        status: status.status.clone(),
        template: config.template(),
        protected: config.protection(),
        disks,
        will_remove,
        blocked_by: blocked_by.clone(),
        ansible_managed: crate::ops::ansible::hooks::managed_by(
            ctx,
            a.vmid,
            &config.name().unwrap_or_default(),
        )
        .await,
        executed: false,
        upids: vec![],
        message: String::new(),
    };
    if !a.confirm {
        let extra = if running {
            " (it will be stopped hard first)"
        } else {
            ""
        };
        report.message = preview_message(blocked_by.as_deref(), extra);
        if let Some(m) = &report.ansible_managed {
            report.message.push_str(&format!("; {}", m.note));
        }
        return Ok(report);
    }
    if let Some(b) = blocked_by {
        return Err(Error::refused(b));
    }
    let object = format!("{vm} {} on {node}", a.vmid);
    if running {
        run.task_locked(ctx, &object, &format!("stop {object}"), || async {
            Ok(Some(match t {
                GuestType::Qemu => {
                    ctx.client
                        .stop_qemu(&node, a.vmid, &StopQemu::default())
                        .await?
                }
                GuestType::Lxc => ctx.client.stop_lxc(&node, a.vmid, false).await?,
            }))
        })
        .await?;
    }
    destroy(ctx, run, t, &node, a.vmid, &object)
        .await
        .map_err(|e| stopped_then(running, &object, e))?;
    report.executed = true;
    report.status = "deleted".into();
    report.upids = run.upids();
    report.message = format!("{object} and its disks were deleted");
    Ok(report)
}

fn stopped_then(stopped: bool, object: &str, e: Error) -> Error {
    if !stopped {
        return e;
    }
    Error::Partial {
        done: format!("{object} was stopped"),
        step: "deleting it".into(),
        source: Box::new(e),
        next: "it is still there, stopped; fix the cause and call vm_delete again".into(),
    }
}

/// The message of a deletion preview: what confirming would do, or why it would be refused.
pub(crate) fn preview_message(blocked_by: Option<&str>, extra: &str) -> String {
    match blocked_by {
        Some(b) => {
            format!("preview only, nothing was changed; as asked this would be refused: {b}")
        }
        None => format!(
            "preview only, nothing was changed{extra}; call again with confirm: true to delete"
        ),
    }
}

/// Destroys a guest with everything PVE can remove with it (purged from jobs and HA,
/// unreferenced disks destroyed), waiting out locks and the `qmdestroy`/`vzdestroy` task.
pub(crate) async fn destroy(
    ctx: &Context,
    run: &Run,
    t: GuestType,
    node: &str,
    vmid: u32,
    object: &str,
) -> Result<(), Error> {
    let params = DeleteQemu {
        purge: Some(true),
        destroy_unreferenced_disks: Some(true),
        ..Default::default()
    };
    run.task_locked(ctx, object, &format!("delete {object}"), || async {
        Ok(Some(match t {
            GuestType::Qemu => ctx.client.delete_qemu(node, vmid, &params).await?,
            GuestType::Lxc => ctx.client.delete_lxc(node, vmid, true, true).await?,
        }))
    })
    .await?;
    ctx.client.forget_vm(vmid);
    Ok(())
}
