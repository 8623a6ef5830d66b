//! `/nodes/{node}/qemu/...`: reads, create, clone, config writes, power.

pub(crate) mod clone;
pub(crate) mod create;
pub(crate) mod power;
pub(crate) mod read;
pub(crate) mod write;
pub(crate) mod write_spec;
