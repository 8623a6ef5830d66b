//! Templates from images over the API: `template_from_cloud_image` (the seed's cloud-init
//! runbook as one operation) and `template_from_iso` (a VM with the ISO attached, to install
//! and then convert with `template_convert`).
//!
//! Path choice: downloading and importing through the API needs PVE 8.4+ and privileges the
//! seed's least-privilege role does not have (Datastore.AllocateTemplate on the storage, and
//! Sys.Modify on `/` or Sys.AccessNetwork on the node). The report says which path ran and
//! why; when the API path is not allowed the call names the missing privileges. The SSH path
//! (`qm disk import` on the node) is the other half of this design and comes with the SSH
//! layer's wiring.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::{DownloadUrl, ResourceType, Upid, encode_sshkeys};

use crate::ops::allocate::Reservation;
use crate::ops::error::quote;
use crate::ops::guard::normalize_tags;
use crate::ops::run::Run;
use crate::ops::template::manage::TemplateDeleteReport;
use crate::ops::template::replace::{NameUse, check_name, delete_replaced, preview_replace};
use crate::ops::template::ssh as template_ssh;
use crate::ops::validate::{self, SCHEMA_DNS_NAME, SCHEMA_NODE, SCHEMA_SIZE, SCHEMA_STORAGE};
use crate::ops::vm::edit::{format_size, parse_size};
use crate::ops::{Context, Error};

/// Why the API path may or may not be used on a node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PathChoice {
    /// `api` or `ssh`.
    pub path: String,
    pub reason: String,
}

/// PVE version `major.minor` of a version string like `9.1.1`.
pub(crate) fn version_at_least(v: &str, major: u32, minor: u32) -> bool {
    let mut it = v.split(['.', '-']).filter_map(|p| p.parse::<u32>().ok());
    let (ma, mi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

/// Decides between the API and SSH paths for downloading into `storage` (a storage with the
/// content type on `node`, `None` when there is none) and returns the node's PVE version too.
pub(crate) async fn choose_path(
    ctx: &Context,
    node: &str,
    storage: Option<&str>,
    content: &str,
    network: bool,
) -> Result<(PathChoice, String), Error> {
    let version = ctx.client.get_node_version(node).await?.version;
    let ssh = |reason: String| {
        Ok((
            PathChoice {
                path: "ssh".into(),
                reason,
            },
            version.clone(),
        ))
    };
    if content == "import" && !version_at_least(&version, 8, 4) {
        return ssh(format!(
            "{node} runs PVE {version}; importing images through the API needs 8.4 or later"
        ));
    }
    let Some(storage) = storage else {
        return ssh(format!(
            "no storage on {node} holds `{content}` content, which the API download needs"
        ));
    };
    let storage_path = format!("/storage/{storage}");
    let node_path = format!("/nodes/{node}");
    let perms = ctx.client.get_permissions(None).await?;
    let missing: Vec<String> =
        crate::ops::access::check::download_missing(&perms, &storage_path, &node_path, network)
            .into_iter()
            .map(|m| {
                if m.privilege == "Sys.AccessNetwork" {
                    format!("Sys.AccessNetwork on {} (or Sys.Modify on /)", m.path)
                } else {
                    format!("{} on {}", m.privilege, m.path)
                }
            })
            .collect();
    if missing.is_empty() {
        Ok((
            PathChoice {
                path: "api".into(),
                reason: format!(
                    "{node} runs PVE {version} and the token may {} {storage}",
                    if network {
                        "download into"
                    } else {
                        "upload to"
                    }
                ),
            },
            version.clone(),
        ))
    } else {
        ssh(format!("the token lacks {}", missing.join(" and ")))
    }
}

/// What every template build checks before it changes anything: a valid name, an explicit
/// VMID inside `vmid_ranges.templates`, valid tags (given plus the configured `groups`), and
/// the name free — or, with `replace`, held by exactly one template that may be deleted.
/// Returns the normalised tags and what happens to the name.
pub(crate) async fn template_preflight(
    ctx: &Context,
    name: &str,
    vmid: Option<u32>,
    tags: &[String],
    groups: &[&str],
    replace: bool,
) -> Result<(Vec<String>, NameUse), Error> {
    validate::vm_name("name", name)?;
    if let Some(v) = vmid.filter(|v| !ctx.config.vmid_ranges.templates.contains(*v)) {
        return Err(Error::refused(format!(
            "vmid {v} is outside vmid_ranges.templates ({})",
            ctx.config.vmid_ranges.templates
        )));
    }
    let mut all = tags.to_vec();
    for g in groups {
        all.extend(ctx.config.tags.get(*g).cloned().unwrap_or_default());
    }
    let all = normalize_tags(all)?;
    let name_use = check_name(ctx, name, replace).await?;
    Ok((all, name_use))
}

/// The template's VMID: the one asked for, or the lowest free one in `vmid_ranges.templates`,
/// reserved until the create has landed (drop the reservation then).
pub(crate) async fn template_vmid(
    ctx: &Context,
    vmid: Option<u32>,
) -> Result<(u32, Option<Reservation>), Error> {
    match vmid {
        Some(v) => Ok((v, None)),
        None => {
            let r = ctx
                .allocator
                .reserve(
                    ctx,
                    &ctx.config.vmid_ranges.templates,
                    "templates",
                    &Default::default(),
                )
                .await?;
            Ok((r.vmid, Some(r)))
        }
    }
}

/// Downloads `url` into `storage` on `node` through the API (PVE verifies the checksum and
/// removes a bad file) and waits for the task; returns the new volume id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn download(
    ctx: &Context,
    run: &Run,
    node: &str,
    storage: &str,
    url: &str,
    content: &str,
    filename: &str,
    sum: Option<(String, String)>,
) -> Result<String, Error> {
    let dl = DownloadUrl {
        url: url.to_string(),
        content: content.into(),
        filename: filename.to_string(),
        checksum: sum.as_ref().map(|(h, _)| h.clone()),
        checksum_algorithm: sum.map(|(_, alg)| alg),
    };
    let upid: Upid = ctx.client.download_url(node, storage, &dl).await?;
    run.wait(ctx, &upid, &format!("download {filename}"))
        .await?;
    Ok(format!("{storage}:{content}/{filename}"))
}

/// First online node of the cluster, by name.
pub(crate) async fn first_online_node(ctx: &Context) -> Result<String, Error> {
    let rows = ctx
        .client
        .get_cluster_resources(Some(ResourceType::Node))
        .await?;
    let mut online: Vec<String> = rows
        .iter()
        .filter(|r| r.status.as_deref() == Some("online"))
        .filter_map(|r| r.node.clone())
        .collect();
    online.sort();
    online
        .into_iter()
        .next()
        .ok_or_else(|| Error::refused("no node of the cluster is online"))
}

/// The storage on `node` that can hold `content` (first by name), or the one asked for.
pub(crate) async fn storage_for(
    ctx: &Context,
    node: &str,
    content: &str,
    asked: Option<&str>,
) -> Result<String, Error> {
    let pools = ctx.client.list_node_storage(node).await?;
    let fits = |s: &crate::pve::NodeStorage| {
        s.content
            .as_deref()
            .unwrap_or("")
            .split(',')
            .any(|c| c == content)
            && s.active != Some(false)
    };
    match asked {
        Some(a) => match pools.iter().find(|s| s.storage == a) {
            Some(s) if fits(s) => Ok(a.to_string()),
            Some(_) => Err(Error::refused(format!(
                "storage {a} on {node} does not hold `{content}` content; enable it or pick another storage"
            ))),
            None => Err(Error::NotFound {
                what: format!("storage {} on {node}", quote(a)),
                hint: "run storage_list".into(),
            }),
        },
        None => {
            let mut names: Vec<String> = pools
                .iter()
                .filter(|s| fits(s))
                .map(|s| s.storage.clone())
                .collect();
            names.sort();
            names.into_iter().next().ok_or_else(|| {
                Error::refused(format!(
                    "no storage on {node} holds `{content}` content; enable it on one (e.g. local)"
                ))
            })
        }
    }
}

/// Config every template starts from: the cluster defaults.
pub(crate) fn default_config(
    ctx: &Context,
    name: &str,
    storage: &str,
    tags: &[String],
) -> Vec<(String, String)> {
    let d = &ctx.config.defaults;
    let mut c: Vec<(String, String)> = vec![
        ("name".into(), name.into()),
        ("ostype".into(), "l26".into()),
        ("bios".into(), d.bios.as_str().into()),
        ("machine".into(), d.machine.clone()),
        ("cpu".into(), d.cpu.clone()),
        ("scsihw".into(), d.scsi_controller.as_str().into()),
        ("cores".into(), "2".into()),
        ("memory".into(), "2048".into()),
        ("net0".into(), format!("virtio,bridge={}", d.network_bridge)),
    ];
    if d.guest_agent {
        c.push(("agent".into(), "1".into()));
    }
    if d.bios.as_str() == "ovmf" {
        let keys = if d.efidisk_pre_enrolled_keys { 1 } else { 0 };
        c.push((
            "efidisk0".into(),
            format!("{storage}:1,efitype=4m,pre-enrolled-keys={keys}"),
        ));
    }
    if !tags.is_empty() {
        c.push(("tags".into(), tags.join(";")));
    }
    c
}

fn filename_of(url: &str) -> Result<String, Error> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or("");
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
        && !name.starts_with('.');
    if !ok {
        return Err(Error::invalid(
            "image_url",
            format!(
                "cannot take a file name from '{}'; it must end in a name like noble-server-cloudimg-amd64.img",
                quote(url)
            ),
        ));
    }
    // PVE's `import` content accepts .qcow2, .raw, .vmdk and .ova only; cloud images published
    // as `.img` (Ubuntu's) are qcow2 files, so they are stored under a .qcow2 name.
    Ok(match name.strip_suffix(".img") {
        Some(stem) => format!("{stem}.qcow2"),
        None => name.to_string(),
    })
}

/// `sha256:HEX` (or bare hex, taken as sha256) into PVE's checksum + algorithm.
pub(crate) fn checksum(s: &str) -> Result<(String, String), Error> {
    let (alg, hex) = match s.split_once(':') {
        Some((a, h)) => (a.to_lowercase(), h.to_lowercase()),
        None => ("sha256".to_string(), s.to_lowercase()),
    };
    let len = match alg.as_str() {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(Error::invalid(
                "checksum",
                format!(
                    "algorithm `{}` is not supported here; give sha256:HEX or sha512:HEX",
                    quote(&alg)
                ),
            ));
        }
    };
    if hex.len() != len || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            "checksum",
            format!("'{}' is not a {alg} digest ({len} hex digits)", quote(s)),
        ));
    }
    Ok((hex, alg))
}

/// `template_from_cloud_image` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFromCloudImageArgs {
    /// http(s) URL of the cloud image (qcow2 or raw, e.g. an Ubuntu `...-cloudimg-amd64.img`).
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub image_url: String,
    /// Expected digest: `sha256:HEX` or `sha512:HEX` (bare hex means sha256).
    #[serde(default)]
    #[schemars(
        length(max = 140),
        regex(pattern = r"^((sha256|sha512):)?[0-9A-Fa-f]+$")
    )]
    pub checksum: Option<String>,
    /// Template name, e.g. `ubuntu-noble-tmpl`. A name already in use is refused unless
    /// `replace` is set.
    #[schemars(length(min = 1, max = 253), regex(pattern = SCHEMA_DNS_NAME))]
    pub name: String,
    /// VMID; default the lowest free id in `vmid_ranges.templates`.
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// Node to build it on; default the first online node.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Boot disk size (default 32G).
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = SCHEMA_SIZE))]
    pub disk_size: Option<String>,
    /// Storage for the template's disks (default `defaults.storage`).
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Extra tags, merged with the configured `templates` and `cloudinit` tag groups.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub tags: Vec<String>,
    /// Replace the template that has this name: the new one is built first, then the old one
    /// is deleted. Destructive: needs `confirm: true`, otherwise only the preview is returned.
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
enum Source<'a> {
    /// Downloaded (through the API or with wget on the node), checked against the digest.
    Url {
        url: &'a str,
        checksum: Option<&'a str>,
    },
    /// A file already on the node, imported in place and left there.
    NodePath(&'a str),
}

/// What a template-from-image build needs; the two tools fill it from their arguments.
struct ImageSpec<'a> {
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
    /// http(s) URL of a pre-built disk image (`.qcow2`, `.raw`, `.vmdk`). Give this or
    /// `image_path`.
    #[serde(default)]
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub image_url: Option<String>,
    /// Absolute path of an image file already on the node (imported over SSH, left in place).
    #[serde(default)]
    #[schemars(length(max = 4096), regex(pattern = r"^/[^\x00-\x1f]*$"))]
    pub image_path: Option<String>,
    /// Expected digest of a downloaded image: `sha256:HEX` or `sha512:HEX`.
    #[serde(default)]
    #[schemars(
        length(max = 140),
        regex(pattern = r"^((sha256|sha512):)?[0-9A-Fa-f]+$")
    )]
    pub checksum: Option<String>,
    /// Template name. A name already in use is refused unless `replace` is set.
    #[schemars(length(min = 1, max = 253), regex(pattern = SCHEMA_DNS_NAME))]
    pub name: String,
    /// VMID; default the lowest free id in `vmid_ranges.templates`.
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// Node to build it on; default the first online node (required with `image_path`).
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Grow the imported disk to this size (default: keep the image's size).
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = SCHEMA_SIZE))]
    pub disk_size: Option<String>,
    /// Storage for the template's disks (default `defaults.storage`).
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Extra tags, merged with the configured `templates` tag group.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub tags: Vec<String>,
    /// Replace the template that has this name (built first, then the old one deleted).
    /// Destructive: needs `confirm: true`, otherwise only the preview is returned.
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

/// `http://` or `https://` with a host.
pub(crate) fn check_url(arg: &str, url: &str) -> Result<(), Error> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(Error::invalid(
            arg,
            format!("'{}' is not an http(s) URL", quote(url)),
        )),
    }
}

/// An absolute path without `..` or control characters, naming an image file.
fn check_node_path(path: &str) -> Result<String, Error> {
    let bad = !path.starts_with('/')
        || path.split('/').any(|c| c == "..")
        || path.chars().any(char::is_control);
    let name = path.rsplit('/').next().unwrap_or("");
    let ext_ok = [".qcow2", ".raw", ".img", ".vmdk"]
        .iter()
        .any(|e| name.len() > e.len() && name.ends_with(e));
    if bad || !ext_ok {
        return Err(Error::invalid(
            "image_path",
            format!(
                "'{}' is not an absolute path to a .qcow2, .raw, .img or .vmdk file on the node",
                quote(path)
            ),
        ));
    }
    Ok(name.to_string())
}

/// Where the image is once fetched.
enum Staged {
    /// A volume in an `import` storage (API path); removed after the build.
    Volume { storage: String, volid: String },
    /// A file on the node (SSH path); removed after the build when we downloaded it.
    NodeFile { path: String, ours: bool },
}

impl Staged {
    fn describe(&self) -> String {
        match self {
            Staged::Volume { volid, .. } => volid.clone(),
            Staged::NodeFile { path, .. } => path.clone(),
        }
    }
    fn cleanup_hint(&self, node: &str) -> String {
        match self {
            Staged::Volume { volid, .. } => format!(
                "the downloaded image {volid} is still on {node}; remove it with the PVE GUI or `pvesm free {volid}`"
            ),
            Staged::NodeFile { path, ours: true } => {
                format!("the downloaded image {path} is still on {node}; remove it there")
            }
            Staged::NodeFile { path, ours: false } => {
                format!("{path} on {node} was left as it was")
            }
        }
    }
}

async fn build_from_image(
    ctx: &Context,
    run: &Run,
    a: &ImageSpec<'_>,
) -> Result<TemplateFromImageReport, Error> {
    // Everything that can be refused is refused before anything changes.
    if let Some(n) = a.node {
        validate::node("node", n)?;
    }
    if let Some(s) = a.storage {
        validate::storage("storage", s)?;
    }
    let (filename, sum) = match a.source {
        Source::Url { url, checksum: c } => {
            check_url("image_url", url)?;
            (filename_of(url)?, c.map(checksum).transpose()?)
        }
        Source::NodePath(p) => (check_node_path(p)?, None),
    };
    let want = match a.disk_size {
        Some(d) => parse_size(d)
            .filter(|s| *s > 0 && d.len() <= 32)
            .ok_or_else(|| {
                Error::invalid(
                    "disk_size",
                    format!("'{}' is not a size; give one such as 32G", quote(d)),
                )
            })?,
        None => 0,
    };
    let groups: &[&str] = if a.cloudinit {
        &["templates", "cloudinit"]
    } else {
        &["templates"]
    };
    let (tags, name_use) =
        template_preflight(ctx, a.name, a.vmid, a.tags, groups, a.replace).await?;
    let node = match a.node {
        Some(n) => n.to_string(),
        None => first_online_node(ctx).await?,
    };
    let storage = a
        .storage
        .map(str::to_string)
        .unwrap_or_else(|| ctx.config.defaults.storage.clone());
    // The template's disk storage is checked before anything is downloaded.
    validate::vm_storage(&ctx.client.list_node_storage(&node).await?, &storage, &node)?;
    let import_storage = match storage_for(ctx, &node, "import", None).await {
        Ok(s) => Some(s),
        Err(Error::Refused { .. }) => None,
        Err(e) => return Err(e),
    };
    let (path, version) = match a.source {
        Source::Url { .. } => choose_path(ctx, &node, import_storage.as_deref(), "import", true).await?,
        Source::NodePath(_) => (
            PathChoice {
                path: "ssh".into(),
                reason: "a file on the node is imported with `qm disk import` over ssh (the API's import-from takes absolute paths from root@pam only)".into(),
            },
            ctx.client.get_node_version(&node).await?.version,
        ),
    };
    let sh = match path.path.as_str() {
        "ssh" => Some(template_ssh::shell(ctx, &path.reason)?),
        _ => None,
    };
    let replaced = match name_use {
        NameUse::Replaces(old) => Some(preview_replace(ctx, run, old, a.vmid).await?),
        NameUse::Free => None,
    };
    if replaced.is_some() && !a.confirm {
        let vmid = match a.vmid {
            Some(v) => v,
            None => preview_vmid(ctx).await?,
        };
        let old = replaced.as_ref().map(|r| r.vmid).unwrap_or(0);
        return Ok(TemplateFromImageReport {
            vmid,
            name: a.name.to_string(),
            node: node.clone(),
            storage,
            path,
            disk_size: if want > 0 {
                format_size(want)
            } else {
                "the image's size".into()
            },
            config: BTreeMap::new(),
            preview: true,
            replaced,
            upids: vec![],
            warnings: vec![],
            message: format!(
                "preview only, nothing was changed: this would build template {} as vmid {vmid} on {node}, then delete the old template {old}; call again with confirm: true",
                a.name
            ),
        });
    }

    // 1. Fetch the image.
    let staged = match (a.source.url(), &sh) {
        (Some(url), None) => {
            let import_storage = import_storage.clone().unwrap_or_default();
            run.note(format!(
                "downloading {filename} to {import_storage} on {node}"
            ));
            let volid = download(
                ctx,
                run,
                &node,
                &import_storage,
                url,
                "import",
                &filename,
                sum,
            )
            .await?;
            Staged::Volume {
                storage: import_storage,
                volid,
            }
        }
        (Some(url), Some(sh)) => {
            let dest = template_ssh::stage_path(&filename);
            template_ssh::download(sh, run, &node, url, &dest, sum.as_ref()).await?;
            Staged::NodeFile {
                path: dest,
                ours: true,
            }
        }
        (None, Some(_)) => Staged::NodeFile {
            path: a.source.node_path().unwrap_or_default().to_string(),
            ours: false,
        },
        (None, None) => unreachable_source()?,
    };
    let cleanup_hint = staged.cleanup_hint(&node);
    let fetched = format!("the image is at {} on {node}", staged.describe());
    let early = |step: &str, e: Error| Error::Partial {
        done: fetched.clone(),
        step: step.into(),
        source: Box::new(e),
        next: cleanup_hint.clone(),
    };
    // Grow the file we downloaded (the seed's order); files we do not own are grown after import.
    if let (Some(sh), Staged::NodeFile { path: p, .. }) = (&sh, &staged) {
        let (format, size) = template_ssh::image_info(sh, run, &node, p)
            .await
            .map_err(|e| early("reading the image with qemu-img info", e))?;
        if !["qcow2", "raw", "vmdk"].contains(&format.as_str()) {
            return Err(early(
                "checking the image",
                Error::refused(format!(
                    "{p} is a {format} image; qcow2, raw and vmdk can be imported"
                )),
            ));
        }
        if let (Staged::NodeFile { ours: true, .. }, true) = (&staged, want > size) {
            template_ssh::grow_image(sh, run, &node, p, &format, want)
                .await
                .map_err(|e| early("growing the image with qemu-img resize", e))?;
        }
    }

    // 2. Create the VM with the cluster defaults (the API path imports the disk in the same call).
    let (vmid, reservation) = template_vmid(ctx, a.vmid).await?;
    let mut config = default_config(ctx, a.name, &storage, &tags);
    let iothread = if ctx.config.defaults.scsi_controller.as_str() == "virtio-scsi-single" {
        ",iothread=1"
    } else {
        ""
    };
    if let Staged::Volume { volid, .. } = &staged {
        config.push((
            "scsi0".into(),
            format!("{storage}:0,import-from={volid}{iothread}"),
        ));
        config.push(("boot".into(), "order=scsi0".into()));
    }
    let mut warnings = Vec::new();
    if a.cloudinit {
        config.extend(cloudinit_config(ctx, &storage, &mut warnings));
    }
    let created = ctx
        .client
        .create_qemu(&node, vmid, &config)
        .await
        .map_err(|e| early(&format!("creating vm {vmid}"), e.into()))?;
    drop(reservation);
    let object = format!("vm {vmid} ({}) on {node}", a.name);
    run.wait(ctx, &created, &format!("create {object}"))
        .await
        .map_err(|e| early(&format!("creating {object}"), e))?;
    let partial = |step: &str, e: Error| Error::Partial {
        done: format!("{object} exists"),
        step: step.into(),
        source: Box::new(e),
        next: format!(
            "fix the cause, then finish by hand (vm_resize, template_convert) or remove it with vm_delete; {cleanup_hint}"
        ),
    };

    // 3. SSH path: import the file as an unused disk, then attach it as the boot disk.
    if let (Some(sh), Staged::NodeFile { path: p, .. }) = (&sh, &staged) {
        template_ssh::import(sh, run, &node, &version, vmid, p, &storage)
            .await
            .map_err(|e| partial("importing the disk with qm disk import", e))?;
        let cfg = ctx
            .client
            .get_qemu_config(&node, vmid)
            .await
            .map_err(|e| partial("reading its config", e.into()))?;
        let volume = cfg
            .0
            .iter()
            .filter(|(k, _)| k.starts_with("unused"))
            .filter_map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{storage}:")))
            .map(str::to_string)
            .ok_or_else(|| {
                partial(
                    "finding the imported disk",
                    Error::refused(
                        "qm disk import reported success but no unused disk appeared in the config",
                    ),
                )
            })?;
        let attach = vec![
            ("scsi0".to_string(), format!("{volume}{iothread}")),
            ("boot".to_string(), "order=scsi0".to_string()),
        ];
        ctx.client
            .set_qemu_config_sync(&node, vmid, &attach, None)
            .await
            .map_err(|e| partial("attaching the imported disk as scsi0", e.into()))?;
        config.extend(attach);
    }

    // 4. Grow the boot disk to the asked size.
    let current = grow_boot_disk(ctx, run, &node, vmid, &object, want, &mut warnings)
        .await
        .map_err(|e| partial("growing the disk", e))?;

    // 5. The vendor snippet (SSH only: the API cannot write snippets).
    if a.cloudinit {
        match ctx.ssh.as_deref() {
            Some(sh) => {
                let written = async {
                    let cicustom =
                        template_ssh::vendor_snippet(ctx, sh, run, &node, a.name).await?;
                    let set = vec![("cicustom".to_string(), cicustom)];
                    ctx.client
                        .set_qemu_config_sync(&node, vmid, &set, None)
                        .await?;
                    Ok::<_, Error>(set)
                }
                .await;
                match written {
                    Ok(set) => config.extend(set),
                    Err(e) => warnings.push(format!(
                        "no vendor snippet: {e}; the template works, but the guest agent is not installed by cloud-init"
                    )),
                }
            }
            None => warnings.push(format!(
                "no vendor snippet written to {}: snippets can only be written over ssh ({})",
                ctx.config.cloudinit.vendor_snippet_path,
                crate::ops::node_ssh::unavailable_reason(&ctx.config)
            )),
        }
    }

    // 6. Convert, then remove the download.
    run.task_locked(ctx, &object, &format!("convert {object}"), || async {
        Ok(ctx.client.convert_qemu_to_template(&node, vmid).await?)
    })
    .await
    .map_err(|e| partial("converting it to a template", e))?;
    cleanup(ctx, run, sh, &node, &staged, &mut warnings).await;

    // 7. Replace: the old template goes only now that the new one is ready.
    let replaced = match name_use {
        NameUse::Replaces(old) => delete_replaced(ctx, run, old, &mut warnings).await,
        NameUse::Free => None,
    };
    let shown: BTreeMap<String, String> = config
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "sshkeys" { "(keys)".into() } else { v };
            (k, v)
        })
        .collect();
    Ok(TemplateFromImageReport {
        vmid,
        name: a.name.to_string(),
        node: node.clone(),
        storage,
        path,
        disk_size: format_size(want.max(current)),
        config: shown,
        preview: false,
        replaced,
        upids: run.upids(),
        warnings,
        message: format!(
            "template {vmid} ({}) is ready on {node}; clone it with vm_create",
            a.name
        ),
    })
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

/// A node path without a shell cannot happen: `template_ssh::shell` refused it already.
fn unreachable_source() -> Result<Staged, Error> {
    Err(Error::refused(
        "a file on the node can only be imported over ssh, which is not configured",
    ))
}

/// The lowest free template VMID right now (a preview does not reserve it).
pub(crate) async fn preview_vmid(ctx: &Context) -> Result<u32, Error> {
    let rows = ctx
        .client
        .get_cluster_resources(Some(ResourceType::Vm))
        .await?;
    let used: std::collections::BTreeSet<u32> = rows.iter().filter_map(|r| r.vmid).collect();
    crate::ops::allocate::lowest_free(&ctx.config.vmid_ranges.templates, &used).ok_or_else(|| {
        Error::refused(format!(
            "vmid_ranges.templates ({}) is full",
            ctx.config.vmid_ranges.templates
        ))
    })
}

/// Cloud-init drive, serial console, user, SSH keys (from `cloudinit.ssh_keys_source`) and DHCP.
fn cloudinit_config(
    ctx: &Context,
    storage: &str,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut config = vec![
        ("ide2".to_string(), format!("{storage}:cloudinit")),
        ("serial0".into(), "socket".into()),
        ("vga".into(), "serial0".into()),
        ("ciuser".into(), ctx.config.cloudinit.default_user.clone()),
        ("ipconfig0".into(), "ip=dhcp".into()),
    ];
    if let Some(src) = &ctx.config.cloudinit.ssh_keys_source {
        match std::fs::read_to_string(src) {
            Ok(k) => {
                let k: Vec<&str> = k
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect();
                if !k.is_empty() {
                    config.push(("sshkeys".into(), encode_sshkeys(&k.join("\n"))));
                }
            }
            Err(e) => warnings.push(format!(
                "no SSH keys added: {} could not be read ({e})",
                src.display()
            )),
        }
    }
    config
}

/// Grows `scsi0` to `want` bytes when it is smaller; returns its size before.
async fn grow_boot_disk(
    ctx: &Context,
    run: &Run,
    node: &str,
    vmid: u32,
    object: &str,
    want: u64,
    warnings: &mut Vec<String>,
) -> Result<u64, Error> {
    let cfg = ctx.client.get_qemu_config(node, vmid).await?;
    let current = cfg
        .disks()
        .into_iter()
        .find(|d| d.key == "scsi0")
        .and_then(|d| d.size)
        .and_then(|s| parse_size(&s))
        .unwrap_or(0);
    if want > current {
        let size = format_size(want);
        run.task_locked(
            ctx,
            object,
            &format!("resize scsi0 of {object}"),
            || async {
                Ok(ctx
                    .client
                    .resize_qemu_disk(node, vmid, "scsi0", &size, None)
                    .await?)
            },
        )
        .await?;
    } else if want > 0 && want < current {
        warnings.push(format!(
            "the image is {} already, larger than disk_size {}; kept its size",
            format_size(current),
            format_size(want)
        ));
    }
    Ok(current)
}

/// Removes what the build downloaded; a failure is a warning (the template is ready).
async fn cleanup(
    ctx: &Context,
    run: &Run,
    sh: Option<&crate::ops::node_ssh::NodeShell>,
    node: &str,
    staged: &Staged,
    warnings: &mut Vec<String>,
) {
    let result = match (staged, sh) {
        (Staged::Volume { storage, volid }, _) => {
            match ctx.client.delete_volume(node, storage, volid).await {
                Ok(Some(u)) => run
                    .wait(ctx, &u, &format!("remove {volid}"))
                    .await
                    .map(|_| ()),
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        (Staged::NodeFile { path, ours: true }, Some(sh)) => {
            template_ssh::remove(sh, run, node, path).await
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        warnings.push(format!(
            "the template is ready, but removing the download {} failed: {e}",
            staged.describe()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(version_at_least("9.1.1", 8, 4));
        assert!(version_at_least("8.4.0", 8, 4));
        assert!(!version_at_least("8.3.5", 8, 4));
    }

    #[test]
    fn urls_and_node_paths_are_checked_before_anything_runs() {
        assert!(check_url("image_url", "https://cloud-images.ubuntu.com/noble/x.img").is_ok());
        assert!(check_url("image_url", "http://127.0.0.1:8080/a.qcow2?x=$(id)").is_ok());
        for bad in [
            "ftp://x/a.img",
            "https:///a.img",
            "http://a b/c.img",
            "file:///etc/passwd",
            "-O/etc/x",
        ] {
            assert!(check_url("image_url", bad).is_err(), "{bad}");
        }
        assert_eq!(check_node_path("/root/app.qcow2").expect("ok"), "app.qcow2");
        for bad in [
            "root/app.qcow2",
            "/root/../etc/shadow.raw",
            "/root/a.qcow2\n",
            "/root/app.iso",
            "/root/.qcow2",
        ] {
            assert!(check_node_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filenames_and_checksums() {
        assert_eq!(
            filename_of(
                "https://cloud-images.example/noble/current/noble-server-cloudimg-amd64.img?x=1"
            )
            .expect("name"),
            "noble-server-cloudimg-amd64.qcow2"
        );
        assert!(filename_of("https://example/").is_err());
        assert!(filename_of("http://x/a;rm -rf").is_err());
        let h = "a".repeat(64);
        assert_eq!(checksum(&h).expect("bare"), (h.clone(), "sha256".into()));
        assert!(checksum("md5:abc").is_err());
        assert!(checksum("sha256:xyz").is_err());
    }
}
