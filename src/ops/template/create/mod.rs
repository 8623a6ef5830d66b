//! Templates from disk images: `template_from_cloud_image` (the seed's cloud-init runbook as
//! one operation) and `template_import_disk` (a pre-built image, no cloud-init). This file has
//! their arguments and entry points; `common` the steps every template build shares (also
//! `template_from_iso`), `build` the build itself in the order it runs.
//!
//! Path choice: downloading and importing through the API needs PVE 8.4+ and privileges the
//! seed's least-privilege role does not have (Datastore.AllocateTemplate on the storage, and
//! Sys.Modify on `/` or Sys.AccessNetwork on the node). The report says which path ran and
//! why; when the API path is not allowed the call names the missing privileges. The SSH path
//! (`qm disk import` on the node) is the other half of this design and comes with the SSH
//! layer's wiring.

mod build;
mod common;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::run::Run;
use crate::ops::template::manage::TemplateDeleteReport;
use crate::ops::validate::{SCHEMA_DNS_NAME, SCHEMA_NODE, SCHEMA_SIZE, SCHEMA_STORAGE};
use crate::ops::{Context, Error};

use build::build_from_image;
pub use common::PathChoice;
pub(crate) use common::{
    check_url, checksum, choose_path, default_config, download, first_online_node, preview_vmid,
    storage_for, template_preflight, template_vmid, version_at_least,
};

/// `template_from_cloud_image` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFromCloudImageArgs {
    /// qcow2 or raw image.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub image_url: String,
    /// `sha256:HEX` or `sha512:HEX` (bare hex: sha256).
    #[serde(default)]
    #[schemars(
        length(max = 140),
        regex(pattern = r"^((sha256|sha512):)?[0-9A-Fa-f]+$")
    )]
    pub checksum: Option<String>,
    /// In use: refused unless `replace`.
    #[schemars(length(min = 1, max = 253), regex(pattern = SCHEMA_DNS_NAME))]
    pub name: String,
    /// Default: lowest free in `vmid_ranges.templates`.
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// Default: the first online node.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Default 32G.
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = SCHEMA_SIZE))]
    pub disk_size: Option<String>,
    /// Default `defaults.storage`.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Added to the `templates` and `cloudinit` tag groups.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub tags: Vec<String>,
    /// Build the new template, then delete the same-named one; needs `confirm`.
    #[serde(default)]
    pub replace: bool,
    /// Confirms `replace`.
    #[serde(default)]
    pub confirm: bool,
}

/// `template_from_cloud_image` / `template_import_disk` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateFromImageReport {
    /// The new template's VMID (in a preview: the one it would get now).
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub storage: String,
    /// Which execution path ran (or would run), and why.
    pub path: PathChoice,
    pub disk_size: String,
    pub config: BTreeMap<String, String>,
    /// True when nothing was changed: `replace` without `confirm`.
    pub preview: bool,
    /// The template replaced (deleted after the new one was ready), or in a preview the one
    /// that would be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<TemplateDeleteReport>,
    pub upids: Vec<String>,
    pub warnings: Vec<String>,
    pub message: String,
}

/// Where the image comes from.
pub(super) enum Source<'a> {
    /// Downloaded (through the API or with wget on the node), checked against the digest.
    Url {
        url: &'a str,
        checksum: Option<&'a str>,
    },
    /// A file already on the node, imported in place and left there.
    NodePath(&'a str),
}

/// What a template-from-image build needs; the two tools fill it from their arguments.
pub(super) struct ImageSpec<'a> {
    source: Source<'a>,
    name: &'a str,
    vmid: Option<u32>,
    node: Option<&'a str>,
    disk_size: Option<&'a str>,
    storage: Option<&'a str>,
    tags: &'a [String],
    /// Cloud-init drive, user, keys, DHCP, serial console, vendor snippet.
    cloudinit: bool,
    replace: bool,
    confirm: bool,
}

/// Builds a cloud-init template from an image URL: through the API when the node and the
/// token allow it, otherwise over SSH.
///
/// # Errors
/// Refusals before anything is downloaded (name taken, checksum malformed, range, neither
/// path possible — naming the missing privileges and the SSH setup); a failed download leaves
/// nothing behind; a later failure is `Error::Partial` naming what exists.
pub async fn template_from_cloud_image(
    ctx: &Context,
    run: &Run,
    a: &TemplateFromCloudImageArgs,
) -> Result<TemplateFromImageReport, Error> {
    let spec = ImageSpec {
        source: Source::Url {
            url: &a.image_url,
            checksum: a.checksum.as_deref(),
        },
        name: &a.name,
        vmid: a.vmid,
        node: a.node.as_deref(),
        disk_size: Some(a.disk_size.as_deref().unwrap_or("32G")),
        storage: a.storage.as_deref(),
        tags: &a.tags,
        cloudinit: true,
        replace: a.replace,
        confirm: a.confirm,
    };
    build_from_image(ctx, run, &spec).await
}

/// `template_import_disk` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateImportDiskArgs {
    /// `.qcow2`, `.raw` or `.vmdk`; or `image_path`.
    #[serde(default)]
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub image_url: Option<String>,
    /// Image file on the node (over SSH, left in place); or `image_url`.
    #[serde(default)]
    #[schemars(length(max = 4096), regex(pattern = r"^/[^\x00-\x1f]*$"))]
    pub image_path: Option<String>,
    /// `sha256:HEX` or `sha512:HEX` of a downloaded image.
    #[serde(default)]
    #[schemars(
        length(max = 140),
        regex(pattern = r"^((sha256|sha512):)?[0-9A-Fa-f]+$")
    )]
    pub checksum: Option<String>,
    /// In use: refused unless `replace`.
    #[schemars(length(min = 1, max = 253), regex(pattern = SCHEMA_DNS_NAME))]
    pub name: String,
    /// Default: lowest free in `vmid_ranges.templates`.
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// Default: the first online node; required with `image_path`.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Grow to this size; default the image's.
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = SCHEMA_SIZE))]
    pub disk_size: Option<String>,
    /// Default `defaults.storage`.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Added to the `templates` tag group.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub tags: Vec<String>,
    /// Build the new template, then delete the same-named one; needs `confirm`.
    #[serde(default)]
    pub replace: bool,
    /// Confirms `replace`.
    #[serde(default)]
    pub confirm: bool,
}

/// Imports a pre-built disk image as the boot disk of a new template (no cloud-init).
///
/// # Errors
/// As [`template_from_cloud_image`]; neither or both of `image_url` and `image_path`.
pub async fn template_import_disk(
    ctx: &Context,
    run: &Run,
    a: &TemplateImportDiskArgs,
) -> Result<TemplateFromImageReport, Error> {
    let source = match (&a.image_url, &a.image_path) {
        (Some(url), None) => Source::Url {
            url,
            checksum: a.checksum.as_deref(),
        },
        (None, Some(path)) => {
            if a.checksum.is_some() {
                return Err(Error::invalid(
                    "checksum",
                    "checksums are checked on downloads; a file already on the node is imported as it is",
                ));
            }
            if a.node.is_none() {
                return Err(Error::invalid(
                    "node",
                    "give the node that holds image_path",
                ));
            }
            Source::NodePath(path)
        }
        _ => {
            return Err(Error::invalid(
                "image_url",
                "give exactly one of image_url (to download) and image_path (a file on the node)",
            ));
        }
    };
    let spec = ImageSpec {
        source,
        name: &a.name,
        vmid: a.vmid,
        node: a.node.as_deref(),
        disk_size: a.disk_size.as_deref(),
        storage: a.storage.as_deref(),
        tags: &a.tags,
        cloudinit: false,
        replace: a.replace,
        confirm: a.confirm,
    };
    build_from_image(ctx, run, &spec).await
}

impl Source<'_> {
    fn url(&self) -> Option<&str> {
        match self {
            Source::Url { url, .. } => Some(url),
            Source::NodePath(_) => None,
        }
    }
    fn node_path(&self) -> Option<&str> {
        match self {
            Source::NodePath(p) => Some(p),
            Source::Url { .. } => None,
        }
    }
}
