//! Storage pools and their content.

pub mod iso_upload;
pub mod orphans;
pub(crate) mod pools;
