//! `/nodes/{node}/storage/...`: content listings, volumes, upload and download-url.

pub(crate) mod content;
pub(crate) mod download;
pub(crate) mod upload;
pub(crate) mod volume;
