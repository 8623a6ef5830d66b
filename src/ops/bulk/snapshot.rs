//! `bulk_snapshot`: one snapshot of every guest a selector matches, named from a pattern
//! (`pre-upgrade-{date}`), previewed first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::select::{BulkGuest, BulkResult, Skipped, resolve, results};
use crate::ops::batch::{BatchLimits, Policy, Step, run_batch};
use crate::ops::snapshot::{SnapshotCreateArgs, check_name, snapshot_create};
use crate::ops::vm::select::{Selector, TagsMatch};
use crate::ops::{Context, Error, Run};

/// `bulk_snapshot` arguments. The selector's criteria combine (AND); at least one is needed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkSnapshotArgs {
    /// `{date}` → YYYYMMDD, `{time}` → HHMM UTC, `{vmid}`; the result: a letter, then 1-39 of
    /// `A-Za-z0-9_-`.
    #[schemars(length(max = 40), regex(pattern = r"^[A-Za-z][A-Za-z0-9_{}-]{1,39}$"))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Include running guests' RAM.
    #[serde(default)]
    pub vmstate: bool,
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_LINE)))]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub tags_match: Option<TagsMatch>,
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 16), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub status: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 128), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub name_glob: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 1000), inner(range(min = 100, max = 999_999_999)))]
    pub vmids: Option<Vec<u32>>,
    /// Default `limits.max_parallel`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 32))]
    pub max_parallel: Option<u32>,
    /// Start nothing more after a failure.
    #[serde(default)]
    pub stop_on_error: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// `bulk_snapshot` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BulkSnapshotReport {
    pub executed: bool,
    /// Each guest with the snapshot name it gets (in `action`).
    pub guests: Vec<BulkGuest>,
    pub skipped: Vec<Skipped>,
    pub results: Vec<BulkResult>,
    pub message: String,
}

/// `{date}`, `{time}` and `{vmid}` filled in, at unix time `now`.
pub fn expand_name(pattern: &str, vmid: u32, now: i64) -> String {
    let (y, m, d, hh, mm) = utc(now);
    pattern
        .replace("{date}", &format!("{y:04}{m:02}{d:02}"))
        .replace("{time}", &format!("{hh:02}{mm:02}"))
        .replace("{vmid}", &vmid.to_string())
}

/// Year, month, day, hour, minute of a unix time, UTC (Howard Hinnant's civil_from_days).
fn utc(t: i64) -> (i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60)
}

/// Previews, or with `confirm` takes, one snapshot of every selected guest.
///
/// # Errors
/// A selector without criteria or with a bad value, a name pattern that expands to a name PVE
/// refuses — all before anything is sent. Per-guest failures are results.
pub async fn bulk_snapshot(
    ctx: &Context,
    run: &Run,
    args: &BulkSnapshotArgs,
) -> Result<BulkSnapshotReport, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    check_name(&expand_name(&args.name, 100, now))?;
    let tags = args.tags.clone().unwrap_or_default();
    let selector = Selector {
        tags: &tags,
        tags_match: args.tags_match.unwrap_or_default(),
        node: args.node.as_deref(),
        status: args.status.as_deref(),
        name: args.name_glob.as_deref(),
        vmids: args.vmids.as_deref(),
        include_templates: false,
    };
    let (targets, skipped) = resolve(ctx, &selector).await?;
    let inventory = crate::ops::ansible::hooks::inventory_for_previews(ctx).await;
    let guests: Vec<BulkGuest> = targets
        .iter()
        .map(|v| BulkGuest {
            vmid: v.vmid,
            guest_type: v.kind.clone(),
            name: v.name.clone(),
            node: v.node.clone(),
            status: v.status.clone(),
            action: expand_name(&args.name, v.vmid, now),
            ansible_managed: crate::ops::ansible::hooks::managed_host(
                inventory.as_deref(),
                v.vmid,
                &v.name,
            ),
        })
        .collect();
    for g in &guests {
        check_name(&g.action)?;
    }
    let mut report = BulkSnapshotReport {
        executed: false,
        guests,
        skipped,
        results: vec![],
        message: String::new(),
    };
    if !args.confirm {
        report.message = format!(
            "preview, nothing changed: {} guest(s) would get a snapshot, {} skipped; call again with confirm: true to take them",
            report.guests.len(),
            report.skipped.len()
        );
        return Ok(report);
    }
    let steps: Vec<Step<BulkResult>> = report
        .guests
        .iter()
        .map(|g| {
            let ctx = ctx.clone();
            let g = g.clone();
            let a = SnapshotCreateArgs {
                vmid: g.vmid,
                name: g.action.clone(),
                description: args.description.clone(),
                // A container has no RAM state: its snapshot is of its volumes only.
                vmstate: args.vmstate && g.guest_type != "lxc",
                allow_outside_ranges: false,
            };
            Step::new(
                format!("{} {}", g.vmid, g.name),
                Some(&g.node.clone()),
                async move |run: Run| {
                    let r = snapshot_create(&ctx, &run, &a).await?;
                    Ok(BulkResult {
                        vmid: g.vmid,
                        name: g.name.clone(),
                        node: g.node.clone(),
                        outcome: "done".into(),
                        message: r.message,
                        upid: Some(r.upid),
                    })
                },
            )
        })
        .collect();
    let limits = BatchLimits {
        global: args
            .max_parallel
            .unwrap_or(ctx.config.limits.max_parallel)
            .max(1) as usize,
        per_node: ctx.config.limits.per_node_parallel.max(1) as usize,
    };
    let policy = if args.stop_on_error {
        Policy::StopOnFirstSurprise
    } else {
        Policy::Continue
    };
    let batch = run_batch(steps, limits, policy, run).await;
    report.executed = true;
    report.results = results(batch, &report.guests);
    let count = |o: &str| report.results.iter().filter(|r| r.outcome == o).count();
    report.message = format!(
        "{} snapshot(s) taken, {} failed, {} not started, {} skipped",
        count("done"),
        count("failed"),
        count("not_started"),
        report.skipped.len()
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_expand_in_utc() {
        // 2026-12-02 21:30:00 UTC
        assert_eq!(
            expand_name("pre-upgrade-{date}-{time}-{vmid}", 1003, 1_796_247_000),
            "pre-upgrade-20261202-2130-1003"
        );
        assert_eq!(utc(0), (1970, 1, 1, 0, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0));
    }
}
