//! Operations: what each tool *means*, without MCP types.
//!
//! Every function here takes a [`Context`] (the PVE client plus the validated configuration),
//! talks to the cluster through [`crate::pve`], and returns a typed report that serialises to the
//! tool's structured output. The node of a VM is always resolved from `/cluster/resources`,
//! never taken from the caller. Pure helpers (filters, glob matching, overcommit arithmetic) are
//! kept free of I/O so they are unit-tested on hand-built data.
//!
//! May use: `pve`, `config`. Must not use: `server`, `sim`.

pub mod access;
mod allocate;
pub mod ansible;
pub mod approval;
pub mod audit;
pub mod backup;
pub mod batch;
pub mod bulk;
pub mod cluster;
mod connect;
pub mod ct;
mod doctor;
mod error;
mod guard;
pub mod migrate;
mod node_ssh;
pub mod paging;
pub mod plan;
pub mod profile;
mod round;
mod run;
mod runbook;
pub mod snapshot;
pub mod storage;
pub mod template;
pub mod validate;
pub mod vm;

pub mod spec;
pub use access::check::{
    AccessCheckReport, AccessInput, MANAGER_ROLE, MissingPrivilege, Permissions, ToolAccess,
    ToolsetAccess, access_check, evaluate as evaluate_access, grant_command, has_privilege,
};
pub use access::rbac::{
    RbacBootstrapArgs, RbacBootstrapReport, RbacStep, rbac_bootstrap, role_privileges,
};
pub use allocate::{Allocator, Reservation, lowest_free};
pub use batch::{BatchLimits, BatchReport, Outcome, Policy, Step, StepResult, run_batch};
pub use cluster::snapshot::ClusterSnapshot;
pub use cluster::status::{
    ClusterStatusArgs, ClusterStatusReport, NodeStatusArgs, NodeStatusReport, NodeSummary,
    Overcommit, cluster_status, node_status,
};
pub use cluster::tasks::{
    TaskLogArgs, TaskLogReport, TaskStatusArgs, TaskStatusReport, task_log, task_status,
};
pub use connect::{Context, client_options, from_config};
pub use doctor::{CheckItem, CheckReport, CheckStatus, check};
pub use error::Error;
pub use guard::{check_range, normalize_tags};
pub use node_ssh::{NodeShell, unavailable_reason as ssh_unavailable_reason};
pub use run::{LineFormat, ProgressFn, Run, Timeouts};
pub use runbook::{
    ImageType, Problem as RunbookProblem, RUNBOOK_TEMPLATE, RenderedParameter, RenderedStep,
    Requirement, RunbookGetArgs, RunbookGetReport, RunbookListArgs, RunbookListReport,
    RunbookSaveArgs, RunbookSaveReport, RunbookSource, RunbookSummary, ToolCall, ToolCatalog,
    runbook_get, runbook_list, runbook_name, runbook_save, runbook_text, user_runbook_dir,
    validate as validate_runbook,
};
pub use storage::pools::{
    StorageContentArgs, StorageContentItem, StorageContentReport, StorageListArgs,
    StorageListReport, StorageSummary, storage_content, storage_list,
};
pub use template::create::{
    PathChoice, TemplateFromCloudImageArgs, TemplateFromImageReport, TemplateImportDiskArgs,
    template_from_cloud_image, template_import_disk,
};
pub use template::iso::{TemplateFromIsoArgs, TemplateFromIsoReport, template_from_iso};
pub use template::manage::{
    TemplateConvertArgs, TemplateConvertReport, TemplateDeleteArgs, TemplateDeleteReport,
    TemplateListArgs, TemplateListReport, TemplateSummary, template_convert, template_delete,
    template_list,
};
pub use vm::agent::addresses_for;
pub use vm::create::{VmCreateArgs, VmCreateReport, vm_create};
pub use vm::delete::{VmDeleteArgs, VmDeleteReport, vm_delete};
pub use vm::edit::{
    DiskChange, DiskResize, VmResizeArgs, VmResizeReport, VmSetTagsArgs, VmSetTagsReport,
    format_size, parse_size, plan_disk_change, vm_resize, vm_set_tags,
};
pub use vm::inventory::{
    VmDetail, VmDisk, VmGetArgs, VmListArgs, VmListReport, VmNic, VmSummary, glob_match, vm_get,
    vm_list,
};
pub use vm::power::{
    PowerAction, PowerArgs, PowerReport, PowerRequest, ShutdownArgs, StopArgs, power,
};

/// Bytes in one MiB / GiB, for reports that speak the units PVE's GUI uses.
pub(crate) const MIB: u64 = 1024 * 1024;
pub(crate) const GIB: u64 = 1024 * MIB;

/// Percentage with one decimal, 0 when the total is unknown.
pub(crate) fn pct(used: f64, total: f64) -> f64 {
    if total <= 0.0 {
        0.0
    } else {
        (used / total * 1000.0).round() / 10.0
    }
}

/// Refuses a node name the cluster itself does not have (from `/nodes`, not only the
/// configuration), naming the ones it has, so a filter on a typo is an error, not an empty list.
pub(crate) async fn require_cluster_node(ctx: &Context, node: &str) -> Result<(), Error> {
    let nodes = ctx.client.list_nodes().await?;
    if nodes.iter().any(|n| n.node == node) {
        return Ok(());
    }
    let mut known: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    known.sort_unstable();
    Err(Error::NotFound {
        what: format!("node {node}"),
        hint: format!(
            "the cluster has {}; use one of those names",
            known.join(", ")
        ),
    })
}

/// Row kinds of `/cluster/resources`, in one place.
pub(crate) fn is_node(r: &crate::pve::ClusterResource) -> bool {
    matches!(r.kind, crate::pve::ResourceKind::Node)
}

pub(crate) fn is_guest(r: &crate::pve::ClusterResource) -> bool {
    matches!(
        r.kind,
        crate::pve::ResourceKind::Qemu | crate::pve::ResourceKind::Lxc
    )
}

pub(crate) fn is_storage(r: &crate::pve::ClusterResource) -> bool {
    matches!(r.kind, crate::pve::ResourceKind::Storage)
}
