//! Cluster lifecycle: a cluster defined once as a profile (`clusters/*.yaml`), then spun up,
//! torn down and rebuilt as a unit — clones in parallel (bounded globally and per node), no
//! interactive questions, tear-down by tags.
//!
//! - [`store`]: where profiles and their local state live.
//! - [`plan`]: the pure planner (VMIDs, names, spread placement, addresses).
//! - [`validate`]: the isolation rules across profiles and the checks against the cluster.
//! - [`up`], [`down`], [`status`]: the operations; [`talos`] and [`external`]: the Talos and
//!   Flux phases and the programs they run.

pub mod down;
pub mod external;
pub mod plan;
pub mod status;
pub mod store;
pub mod talos;
pub mod up;
pub mod validate;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::profile::{ClusterProfile, ProfileKind};
use crate::ops::plan::ClusterSnapshot;
use crate::ops::{Context, Error};

pub use down::{
    DownGuest, ProfileDownArgs, ProfileDownReport, ProfileRebuildArgs, ProfileRebuildReport,
    profile_down, profile_rebuild,
};
pub use status::{ProfileStatusArgs, ProfileStatusReport, StatusGuest, profile_status};
pub use store::{ProfileSource, state_root, user_profile_dir};
pub use up::{ProfileUpArgs, ProfileUpReport, profile_up};

/// `profile_list` arguments (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileListArgs {}

/// One profile in the listing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileSummary {
    pub name: String,
    /// `talos` or `vms`; absent when the file does not parse.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ProfileKind>,
    pub source: ProfileSource,
    /// The file (or `shipped:clusters/NAME.yaml`).
    pub file: String,
    pub tags: Vec<String>,
    pub controlplane: u32,
    pub workers: u32,
    /// The template, as written.
    pub template: String,
    pub flux: bool,
    /// `FILE:LINE: REASON` for a file that does not parse; empty otherwise (profile_validate
    /// checks the rest).
    pub problems: Vec<String>,
}

/// `profile_list` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileListReport {
    pub profiles: Vec<ProfileSummary>,
    /// The directory user profiles are read from.
    pub user_dir: String,
}

/// Lists the profiles.
pub fn profile_list(ctx: &Context) -> ProfileListReport {
    let profiles = store::load_all(&ctx.config)
        .into_iter()
        .map(|l| match l.profile {
            Ok(p) => ProfileSummary {
                name: l.name,
                kind: Some(p.kind),
                source: l.source,
                file: l.origin,
                tags: p.tags.clone(),
                controlplane: count(&p, crate::config::profile::Role::Controlplane),
                workers: count(&p, crate::config::profile::Role::Worker),
                template: p.template.to_string(),
                flux: p.flux.is_some(),
                problems: vec![],
            },
            Err(problems) => ProfileSummary {
                name: l.name,
                kind: None,
                source: l.source,
                file: l.origin,
                tags: vec![],
                controlplane: 0,
                workers: 0,
                template: String::new(),
                flux: false,
                problems: problems.iter().map(ToString::to_string).collect(),
            },
        })
        .collect();
    ProfileListReport {
        profiles,
        user_dir: user_profile_dir(&ctx.config).display().to_string(),
    }
}

fn count(p: &ClusterProfile, role: crate::config::profile::Role) -> u32 {
    p.roles
        .iter()
        .filter(|r| r.role == role)
        .map(|r| r.count)
        .sum()
}

/// `profile_validate` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileValidateArgs {
    /// Default: every profile.
    #[serde(default)]
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub profile: Option<String>,
}

/// One profile's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileCheck {
    pub name: String,
    pub source: ProfileSource,
    pub valid: bool,
    /// Every problem as `FILE:LINE: REASON`.
    pub problems: Vec<String>,
    /// Guests of the profile that already exist (found by its tags).
    pub existing_guests: u32,
}

/// `profile_validate` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileValidateReport {
    pub valid: bool,
    pub profiles: Vec<ProfileCheck>,
    pub message: String,
}

/// Checks profiles: the file, the isolation rules against every user profile, and the cluster
/// (template, VMID room, capacity for `placement: spread`).
///
/// # Errors
/// An unknown profile name; PVE unreachable.
pub async fn profile_validate(
    ctx: &Context,
    a: &ProfileValidateArgs,
) -> Result<ProfileValidateReport, Error> {
    let all = store::load_all(&ctx.config);
    if let Some(name) = &a.profile
        && !all.iter().any(|l| &l.name == name)
    {
        store::find(&ctx.config, name)?;
    }
    let users: Vec<&ClusterProfile> = all
        .iter()
        .filter(|l| l.source == ProfileSource::User)
        .filter_map(|l| l.profile.as_ref().ok())
        .collect();
    let chosen: Vec<&store::Loaded> = all
        .iter()
        .filter(|l| a.profile.as_ref().is_none_or(|n| *n == l.name))
        .collect();
    // One read of the cluster for every profile checked (a 3 MB listing at 10,000 guests),
    // not one per profile; not read at all when no chosen profile parses.
    let mut cluster: Option<Result<ClusterSnapshot, String>> = None;
    let mut checks = Vec::new();
    for l in chosen {
        let mut problems: Vec<String> = Vec::new();
        let mut existing = 0;
        match &l.profile {
            Err(ps) => problems.extend(ps.iter().map(ToString::to_string)),
            Ok(p) => {
                problems.extend(
                    validate::isolation(p, &users)
                        .iter()
                        .map(ToString::to_string),
                );
                let read = match cluster.take() {
                    Some(r) => r,
                    None => crate::ops::migrate::read_snapshot(ctx, &[])
                        .await
                        .map(|(snap, _)| snap)
                        .map_err(|e| e.to_string()),
                };
                cluster = Some(match read {
                    Ok(snap) => {
                        let (snap, members) = check_on(ctx, p, snap, &mut problems).await;
                        existing = members;
                        Ok(snap)
                    }
                    Err(e) => {
                        problems.push(p.problem("template", e.clone()).to_string());
                        Err(e)
                    }
                });
            }
        }
        checks.push(ProfileCheck {
            name: l.name.clone(),
            source: l.source,
            valid: problems.is_empty(),
            problems,
            existing_guests: existing,
        });
    }
    let bad = checks.iter().filter(|c| !c.valid).count();
    Ok(ProfileValidateReport {
        valid: bad == 0,
        message: if bad == 0 {
            format!("{} profile(s) valid", checks.len())
        } else {
            format!(
                "{bad} of {} profile(s) have problems (each as FILE:LINE: REASON)",
                checks.len()
            )
        },
        profiles: checks,
    })
}

/// Checks `p` against the cluster `snap` (its template, the VMID room, capacity for its
/// placement), adding what is wrong to `problems`; gives the snapshot back for the next
/// profile (with the template configs read kept in it) and how many guests `p` already has.
async fn check_on(
    ctx: &Context,
    p: &ClusterProfile,
    mut snap: ClusterSnapshot,
    problems: &mut Vec<String>,
) -> (ClusterSnapshot, u32) {
    let found = match up::find_in(ctx, p, &mut snap).await {
        Ok(found) => found,
        Err(e) => {
            problems.push(p.problem("template", e.to_string()).to_string());
            return (snap, 0);
        }
    };
    let f = found.on(snap);
    if let Some(why) = validate::template_problem(p, &f.template) {
        problems.push(p.problem("template", why).to_string());
    }
    let plan = up::plan_for(ctx, p, &f);
    problems.extend(
        validate::plan_problems(p, &plan)
            .iter()
            .map(ToString::to_string),
    );
    let members = f.members.len() as u32;
    (f.snap, members)
}
