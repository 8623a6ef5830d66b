//! Changing an existing VM: CPU, memory and disk size (`vm_resize`), tags (`vm_set_tags`).

pub(crate) mod resize;
mod size;
mod tags;

pub(crate) use resize::fits;
pub use resize::{DiskResize, VmResizeArgs, VmResizeReport, vm_resize};
pub use size::{DiskChange, boot_disk, format_size, parse_size, plan_disk_change};
pub use tags::{VmSetTagsArgs, VmSetTagsReport, vm_set_tags};
