//! The cluster as a whole: status, node detail, PVE tasks.

pub mod snapshot;
pub(crate) mod status;
pub(crate) mod tasks;
