//! Templates: list, convert, delete, and builds from cloud images, disk images and ISOs (API or SSH).

pub(crate) mod create;
pub(crate) mod iso;
pub(crate) mod local_source;
pub(crate) mod manage;
pub(crate) mod replace;
pub(crate) mod ssh;
