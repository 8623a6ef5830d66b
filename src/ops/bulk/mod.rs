//! Bulk operations over a selection of guests (tags, node, status, name glob, vmids — the
//! selector `vm_list` filters with): power actions, snapshots. Each previews exactly the guests
//! it matched and what would happen to each; `confirm: true` runs them through the one bounded
//! batch executor and reports every guest. Templates, guests outside `vmid_ranges.vms` and
//! protected guests are skipped with the reason.

mod power;
mod select;
mod snapshot;

pub use power::{BulkAction, BulkPowerArgs, BulkPowerReport, bulk_power};
pub use select::{BulkGuest, BulkResult, Skipped};
pub use snapshot::{BulkSnapshotArgs, BulkSnapshotReport, bulk_snapshot, expand_name};
