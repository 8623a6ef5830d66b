//! Storage pools and their content.

pub(crate) mod pools;
