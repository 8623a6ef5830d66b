//! Toolset `vm`: reads (list, get) and the lifecycle (create, power, resize, tags, delete).

pub(crate) mod lifecycle;
pub(crate) mod read;
