//! `profile_down` and `profile_rebuild`. The preview lists exactly the guests carrying **all**
//! the profile's tags and flags the ones carrying only some; it refuses while such a guest
//! exists (unless `ignore_partial: true` says they are not the cluster's), or when a member is
//! protected or outside the VMID ranges. Confirmed, the members are stopped and deleted with
//! their disks in parallel, and the local Talos/kube state is archived.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::profile::ClusterProfile;
use crate::ops::batch::{BatchLimits, Outcome as StepOutcome, Policy, Step, run_batch};
use crate::ops::vm::delete::{VmDeleteArgs, vm_delete};
use crate::ops::{Context, Error, Run};

use super::plan::Member;
use super::store::{find, private_dir, state_root};
use super::up::{Facts, ProfileUpReport, gather, up_with};

/// `profile_down` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileDownArgs {
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub profile: String,
    /// Proceed although guests carry only some of the tags (left alone); check them first.
    #[serde(default)]
    pub ignore_partial: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// A guest the tear-down would delete.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DownGuest {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub status: String,
    /// Why it cannot be deleted, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The Ansible inventory host this guest is, when the fleet's inventory lists it: its
    /// playbooks expect it, so the tear-down names it before anything is deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ansible_managed: Option<String>,
    /// After `confirm`: `deleted` or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// `profile_down` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileDownReport {
    pub profile: String,
    pub tags: Vec<String>,
    /// False for a preview.
    pub executed: bool,
    /// The guests carrying all the tags: deleted (or that would be), disks included.
    pub guests: Vec<DownGuest>,
    /// Guests carrying some but not all of the tags: never touched; they block the tear-down
    /// unless `ignore_partial`.
    pub partial: Vec<Member>,
    /// Where the local state went (or would go).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_state: Option<String>,
    pub message: String,
}

/// Previews, or with `confirm` performs, the tear-down.
///
/// # Errors
/// Unknown profile; with `confirm`: partial-tag guests (without `ignore_partial`), protected or
/// out-of-range members; a deletion that failed (the others are reported done).
pub async fn profile_down(
    ctx: &Context,
    run: &Run,
    a: &ProfileDownArgs,
) -> Result<ProfileDownReport, Error> {
    let (p, _) = find(&ctx.config, &a.profile)?;
    let f = gather(ctx, &p).await?;
    down_with(ctx, run, &p, &f, a.ignore_partial, a.confirm).await
}

async fn down_with(
    ctx: &Context,
    run: &Run,
    p: &ClusterProfile,
    f: &Facts,
    ignore_partial: bool,
    confirm: bool,
) -> Result<ProfileDownReport, Error> {
    let inventory = crate::ops::ansible::hooks::inventory_for_previews(ctx).await;
    let mut guests = Vec::new();
    for m in &f.members {
        let refused = if !ctx.config.vmid_ranges.vms.contains(m.vmid) {
            Some(format!(
                "outside vmid_ranges.vms {}",
                ctx.config.vmid_ranges.vms
            ))
        } else {
            match ctx
                .client
                .get_guest_config(crate::pve::GuestType::from_name(&m.guest_type), &m.node, m.vmid)
                .await
            {
                Ok(c) if c.protection() => Some("protected (protection: 1); remove the protection in PVE first if it really belongs to this cluster".to_string()),
                Ok(_) => None,
                Err(e) => Some(format!("its config cannot be read: {e}")),
            }
        };
        guests.push(DownGuest {
            vmid: m.vmid,
            name: m.name.clone(),
            node: m.node.clone(),
            status: m.status.clone(),
            refused,
            ansible_managed: crate::ops::ansible::hooks::managed_host(
                inventory.as_deref(),
                m.vmid,
                &m.name,
            ),
            outcome: None,
        });
    }
    let state = state_root(&ctx.config).join(&p.name);
    let archive = state.exists().then(|| archive_path(ctx, &p.name));
    let mut report = ProfileDownReport {
        profile: p.name.clone(),
        tags: p.tags.clone(),
        executed: false,
        guests,
        partial: f.partial.clone(),
        archived_state: archive.as_ref().map(|a| a.display().to_string()),
        message: String::new(),
    };
    let blocked: Vec<String> = report
        .guests
        .iter()
        .filter_map(|g| {
            g.refused
                .as_ref()
                .map(|r| format!("{} {}: {r}", g.vmid, g.name))
        })
        .collect();
    let partial_text = || {
        report
            .partial
            .iter()
            .map(|m| format!("{} {}", m.vmid, m.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let partial_block = (!report.partial.is_empty() && !ignore_partial).then(|| {
        format!(
            "guests carrying some but not all of the tags [{}] exist: {}; they are never deleted, but check that none belongs to this cluster (a tag removed by hand?) and call again with ignore_partial: true",
            p.tags.join(", "),
            partial_text()
        )
    });
    if !confirm {
        let mut notes = Vec::new();
        if !blocked.is_empty() {
            notes.push(format!("refused: {}", blocked.join("; ")));
        }
        if let Some(b) = &partial_block {
            notes.push(b.clone());
        }
        let managed: Vec<String> = report
            .guests
            .iter()
            .filter_map(|g| {
                g.ansible_managed
                    .as_ref()
                    .map(|h| format!("{} {} (inventory host {h})", g.vmid, g.name))
            })
            .collect();
        if !managed.is_empty() {
            notes.push(format!(
                "Ansible-managed, the fleet's playbooks expect them: {}; tell the user",
                managed.join(", ")
            ));
        }
        report.message = format!(
            "preview, nothing changed: {} guest(s) carry all the tags [{}] and would be stopped and deleted with their disks{}{}",
            report.guests.len(),
            p.tags.join(", "),
            if report.archived_state.is_some() {
                "; the local Talos/kube state would be archived"
            } else {
                ""
            },
            if notes.is_empty() {
                ". Show the list to the user; call again with confirm: true".to_string()
            } else {
                format!(". {}", notes.join(". "))
            }
        );
        return Ok(report);
    }
    if !blocked.is_empty() {
        return Err(Error::refused(format!(
            "nothing was deleted: {}",
            blocked.join("; ")
        )));
    }
    if let Some(b) = partial_block {
        return Err(Error::refused(format!("nothing was deleted: {b}")));
    }
    let limits = BatchLimits::from(&ctx.config.limits);
    let steps: Vec<Step<()>> = report
        .guests
        .iter()
        .map(|g| {
            let ctx = ctx.clone();
            let vmid = g.vmid;
            Step::new(
                format!("{} {}", g.vmid, g.name),
                Some(&g.node),
                async move |run: Run| {
                    vm_delete(
                        &ctx,
                        &run,
                        &VmDeleteArgs {
                            vmid,
                            confirm: true,
                            stop: true,
                            allow_outside_ranges: false,
                        },
                    )
                    .await?;
                    Ok(())
                },
            )
        })
        .collect();
    let batch = run_batch(steps, limits, Policy::Continue, run).await;
    report.executed = true;
    let mut failed = Vec::new();
    for (r, g) in batch.results.into_iter().zip(report.guests.iter_mut()) {
        g.outcome = Some(match r.outcome {
            StepOutcome::Done { .. } => "deleted".into(),
            StepOutcome::Failed { error } => {
                failed.push(format!("{} {}: {error}", g.vmid, g.name));
                format!("failed: {error}")
            }
            StepOutcome::NotStarted { reason } => {
                failed.push(format!("{} {}: {reason}", g.vmid, g.name));
                format!("not started: {reason}")
            }
        });
    }
    if !failed.is_empty() {
        return Err(Error::refused(format!(
            "tear-down of {} incomplete: {}; the other guests were deleted. Call profile_down again with confirm: true to retry (the local state was kept)",
            p.name,
            failed.join("; ")
        )));
    }
    if let Some(a) = &archive {
        if let Some(parent) = a.parent() {
            private_dir(parent).map_err(|e| super::talos::io_error(parent, &e))?;
        }
        std::fs::rename(&state, a).map_err(|e| super::talos::io_error(&state, &e))?;
    }
    report.message = format!(
        "{} torn down: {} guest(s) deleted with their disks{}",
        p.name,
        report.guests.len(),
        archive
            .as_ref()
            .map(|a| format!("; local state archived to {}", a.display()))
            .unwrap_or_default()
    );
    Ok(report)
}

fn archive_path(ctx: &Context, name: &str) -> std::path::PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    state_root(&ctx.config)
        .join("archive")
        .join(format!("{name}-{stamp}"))
}

/// `profile_rebuild` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRebuildArgs {
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub profile: String,
    /// As profile_down's.
    #[serde(default)]
    pub ignore_partial: bool,
    /// New Talos secrets instead of the archived secrets.yaml.
    #[serde(default)]
    pub rotate_secrets: bool,
    #[serde(default)]
    #[schemars(range(min = 1, max = 32))]
    pub max_parallel: Option<u32>,
    #[serde(default)]
    pub confirm: bool,
}

/// `profile_rebuild` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileRebuildReport {
    pub executed: bool,
    pub down: ProfileDownReport,
    pub up: ProfileUpReport,
    pub message: String,
}

/// Tear-down then spin-up; one preview covering both.
///
/// # Errors
/// As [`profile_down`], then as `profile_up`.
pub async fn profile_rebuild(
    ctx: &Context,
    run: &Run,
    a: &ProfileRebuildArgs,
) -> Result<ProfileRebuildReport, Error> {
    let (p, source) = find(&ctx.config, &a.profile)?;
    let f = gather(ctx, &p).await?;
    if !a.confirm {
        let down = down_with(ctx, run, &p, &f, a.ignore_partial, false).await?;
        // The spin-up as it will be once the members are gone.
        let mut after = Facts {
            snap: f.snap.clone(),
            template: f.template.clone(),
            copies: f.copies.clone(),
            members: vec![],
            partial: f.partial.clone(),
        };
        let gone: Vec<u32> = f.members.iter().map(|m| m.vmid).collect();
        after.snap.guests.retain(|g| !gone.contains(&g.vmid));
        let up = up_with(ctx, run, &p, source, after, a.max_parallel, false).await?;
        let message = format!(
            "preview, nothing changed: delete {} guest(s), then create {} ({}). {}Call again with confirm: true",
            down.guests.len(),
            up.guests.len(),
            if a.rotate_secrets {
                "new Talos secrets"
            } else {
                "the Talos secrets are reused"
            },
            if down.message.contains("refused") || down.message.contains("ignore_partial") {
                format!("{} ", down.message)
            } else {
                String::new()
            }
        );
        return Ok(ProfileRebuildReport {
            executed: false,
            down,
            up,
            message,
        });
    }
    run.note(format!("rebuild {}: tearing down", p.name));
    // The secrets to reuse: the current ones, else the latest archived ones.
    let kept = if a.rotate_secrets {
        None
    } else {
        latest_secrets(ctx, &p.name).and_then(|f| std::fs::read_to_string(f).ok())
    };
    let down = down_with(ctx, run, &p, &f, a.ignore_partial, true).await?;
    if let Some(text) = kept {
        let dir = state_root(&ctx.config).join(&p.name);
        private_dir(&dir).map_err(|e| super::talos::io_error(&dir, &e))?;
        super::store::write_private(&dir.join("secrets.yaml"), &text)
            .map_err(|e| super::talos::io_error(&dir, &e))?;
        run.note("rebuild: the Talos secrets are reused (rotate_secrets: true makes new ones)");
    }
    run.note(format!("rebuild {}: spinning up", p.name));
    let f = gather(ctx, &p).await?;
    let up = up_with(ctx, run, &p, source, f, a.max_parallel, true)
        .await
        .map_err(|e| Error::Partial {
            done: format!(
                "{} was torn down ({} guest(s) deleted)",
                p.name,
                down.guests.len()
            ),
            step: "the spin-up".into(),
            source: Box::new(e),
            next: "call profile_up with confirm: true to continue the spin-up".into(),
        })?;
    let message = format!(
        "{} rebuilt: {} guest(s) deleted, {}",
        p.name,
        down.guests.len(),
        up.message
    );
    Ok(ProfileRebuildReport {
        executed: true,
        down,
        up,
        message,
    })
}

/// `secrets.yaml` of the profile's current state, else of its latest archive.
fn latest_secrets(ctx: &Context, name: &str) -> Option<std::path::PathBuf> {
    let root = state_root(&ctx.config);
    let current = root.join(name).join("secrets.yaml");
    if current.is_file() {
        return Some(current);
    }
    let prefix = format!("{name}-");
    std::fs::read_dir(root.join("archive"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().to_string();
            let stamp: u128 = file.strip_prefix(&prefix)?.parse().ok()?;
            let secrets = e.path().join("secrets.yaml");
            secrets.is_file().then_some((stamp, secrets))
        })
        .max_by_key(|(stamp, _)| *stamp)
        .map(|(_, p)| p)
}
