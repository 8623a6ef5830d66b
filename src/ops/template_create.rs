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

use super::allocate::Reservation;
use super::guard::normalize_tags;
use super::run::Run;
use super::vm_edit::{format_size, parse_size};
use super::{Context, Error};

/// Why the API path may or may not be used on a node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PathChoice {
    /// `api` or `ssh`.
    pub path: String,
    pub reason: String,
}

/// PVE version `major.minor` of a version string like `9.1.1`.
fn version_at_least(v: &str, major: u32, minor: u32) -> bool {
    let mut it = v.split(['.', '-']).filter_map(|p| p.parse::<u32>().ok());
    let (ma, mi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

/// Decides between the API and SSH paths for downloading into `storage` on `node`.
async fn choose_path(ctx: &Context, node: &str, storage: &str) -> Result<PathChoice, Error> {
    let version = ctx.client.get_node_version(node).await?.version;
    if !version_at_least(&version, 8, 4) {
        return Ok(PathChoice {
            path: "ssh".into(),
            reason: format!(
                "{node} runs PVE {version}; importing images through the API needs 8.4 or later"
            ),
        });
    }
    let storage_path = format!("/storage/{storage}");
    let node_path = format!("/nodes/{node}");
    let perms = ctx.client.get_permissions(None).await?;
    let has = |path: &str, p: &str| {
        // Effective privileges propagate from parents: look at the path and its ancestors.
        let mut cur = path.to_string();
        loop {
            if perms.get(&cur).is_some_and(|m| m.contains_key(p)) {
                return true;
            }
            match cur.rfind('/') {
                Some(0) if cur != "/" => cur = "/".into(),
                Some(i) if i > 0 => cur.truncate(i),
                _ => return false,
            }
        }
    };
    let mut missing = Vec::new();
    if !has(&storage_path, "Datastore.AllocateTemplate") {
        missing.push(format!("Datastore.AllocateTemplate on {storage_path}"));
    }
    if !has("/", "Sys.Modify") && !has(&node_path, "Sys.AccessNetwork") {
        missing.push(format!(
            "Sys.AccessNetwork on {node_path} (or Sys.Modify on /)"
        ));
    }
    if missing.is_empty() {
        Ok(PathChoice {
            path: "api".into(),
            reason: format!("{node} runs PVE {version} and the token may download into {storage}"),
        })
    } else {
        Ok(PathChoice {
            path: "ssh".into(),
            reason: format!("the token lacks {}", missing.join(" and ")),
        })
    }
}

/// The API path, or a refusal naming the missing privileges or the too-old version.
pub(crate) async fn api_path(
    ctx: &Context,
    node: &str,
    storage: &str,
) -> Result<PathChoice, Error> {
    let path = choose_path(ctx, node, storage).await?;
    if path.path != "api" {
        return Err(Error::refused(format!(
            "cannot download through the API: {}. Grant those privileges to the token's role (for example `pveum role modify ClaudeCodeManager --append 1 --privs \"Datastore.AllocateTemplate Sys.AccessNetwork\"`); the SSH path for least-privilege tokens is not available in this version yet",
            path.reason
        )));
    }
    Ok(path)
}

/// What every template build checks before it changes anything: an explicit VMID inside
/// `vmid_ranges.templates`, valid tags (given plus the configured `groups`), and a free name.
/// Returns the normalised tags.
pub(crate) async fn template_preflight(
    ctx: &Context,
    name: &str,
    vmid: Option<u32>,
    tags: &[String],
    groups: &[&str],
) -> Result<Vec<String>, Error> {
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
    refuse_duplicate_name(ctx, name).await?;
    Ok(all)
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

/// Refuses a template name a guest already has.
async fn refuse_duplicate_name(ctx: &Context, name: &str) -> Result<(), Error> {
    let rows = ctx
        .client
        .get_cluster_resources(Some(ResourceType::Vm))
        .await?;
    if let Some(r) = rows.iter().find(|r| r.name.as_deref() == Some(name)) {
        return Err(Error::refused(format!(
            "a guest named {name} already exists (vmid {} on {}); pick another name or delete the old template with template_delete",
            r.vmid.unwrap_or(0),
            r.node.clone().unwrap_or_default()
        )));
    }
    Ok(())
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
                what: format!("storage {a} on {node}"),
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
                "cannot take a file name from '{url}'; it must end in a name like noble-server-cloudimg-amd64.img"
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
                format!("algorithm `{alg}` is not supported here; give sha256:HEX or sha512:HEX"),
            ));
        }
    };
    if hex.len() != len || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            "checksum",
            format!("'{s}' is not a {alg} digest ({len} hex digits)"),
        ));
    }
    Ok((hex, alg))
}

/// `template_from_cloud_image` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFromCloudImageArgs {
    /// URL of the cloud image (qcow2 or raw, e.g. an Ubuntu `...-cloudimg-amd64.img`).
    pub image_url: String,
    /// Expected digest: `sha256:HEX` or `sha512:HEX` (bare hex means sha256).
    #[serde(default)]
    pub checksum: Option<String>,
    /// Template name, e.g. `ubuntu-noble-tmpl`. A name already in use is refused.
    pub name: String,
    /// VMID; default the lowest free id in `vmid_ranges.templates`.
    #[serde(default)]
    pub vmid: Option<u32>,
    /// Node to build it on; default the first online node.
    #[serde(default)]
    pub node: Option<String>,
    /// Boot disk size (default 32G).
    #[serde(default)]
    pub disk_size: Option<String>,
    /// Storage for the template's disks (default `defaults.storage`).
    #[serde(default)]
    pub storage: Option<String>,
    /// Extra tags, merged with the configured `templates` and `cloudinit` tag groups.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `template_from_cloud_image` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateFromImageReport {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub storage: String,
    /// Which execution path ran, and why.
    pub path: PathChoice,
    pub disk_size: String,
    pub config: BTreeMap<String, String>,
    pub upids: Vec<String>,
    pub warnings: Vec<String>,
    pub message: String,
}

/// What a template-from-image build needs; the two tools fill it from their arguments.
struct ImageSpec<'a> {
    image_url: &'a str,
    checksum: Option<&'a str>,
    name: &'a str,
    vmid: Option<u32>,
    node: Option<&'a str>,
    disk_size: Option<&'a str>,
    storage: Option<&'a str>,
    tags: &'a [String],
    /// Cloud-init drive, user, keys, DHCP, serial console.
    cloudinit: bool,
}

/// Builds a cloud-init template from an image URL over the API.
///
/// # Errors
/// Refusals before anything is downloaded (name taken, checksum malformed, range, API path not
/// allowed — naming the missing privileges); a failed download leaves nothing behind; a later
/// failure is `Error::Partial` naming what exists.
pub async fn template_from_cloud_image(
    ctx: &Context,
    run: &Run,
    a: &TemplateFromCloudImageArgs,
) -> Result<TemplateFromImageReport, Error> {
    let spec = ImageSpec {
        image_url: &a.image_url,
        checksum: a.checksum.as_deref(),
        name: &a.name,
        vmid: a.vmid,
        node: a.node.as_deref(),
        disk_size: Some(a.disk_size.as_deref().unwrap_or("32G")),
        storage: a.storage.as_deref(),
        tags: &a.tags,
        cloudinit: true,
    };
    build_from_image(ctx, run, &spec).await
}

/// `template_import_disk` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateImportDiskArgs {
    /// URL of a pre-built disk image (`.qcow2`, `.raw`, `.vmdk`).
    pub image_url: String,
    /// Expected digest: `sha256:HEX` or `sha512:HEX` (bare hex means sha256).
    #[serde(default)]
    pub checksum: Option<String>,
    /// Template name. A name already in use is refused.
    pub name: String,
    /// VMID; default the lowest free id in `vmid_ranges.templates`.
    #[serde(default)]
    pub vmid: Option<u32>,
    /// Node to build it on; default the first online node.
    #[serde(default)]
    pub node: Option<String>,
    /// Grow the imported disk to this size (default: keep the image's size).
    #[serde(default)]
    pub disk_size: Option<String>,
    /// Storage for the template's disks (default `defaults.storage`).
    #[serde(default)]
    pub storage: Option<String>,
    /// Extra tags, merged with the configured `templates` tag group.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Imports a pre-built disk image as the boot disk of a new template (no cloud-init).
///
/// # Errors
/// As [`template_from_cloud_image`].
pub async fn template_import_disk(
    ctx: &Context,
    run: &Run,
    a: &TemplateImportDiskArgs,
) -> Result<TemplateFromImageReport, Error> {
    let spec = ImageSpec {
        image_url: &a.image_url,
        checksum: a.checksum.as_deref(),
        name: &a.name,
        vmid: a.vmid,
        node: a.node.as_deref(),
        disk_size: a.disk_size.as_deref(),
        storage: a.storage.as_deref(),
        tags: &a.tags,
        cloudinit: false,
    };
    build_from_image(ctx, run, &spec).await
}

async fn build_from_image(
    ctx: &Context,
    run: &Run,
    a: &ImageSpec<'_>,
) -> Result<TemplateFromImageReport, Error> {
    let filename = filename_of(a.image_url)?;
    let sum = a.checksum.map(checksum).transpose()?;
    let want = match a.disk_size {
        Some(d) => parse_size(d)
            .filter(|s| *s > 0)
            .ok_or_else(|| Error::invalid("disk_size", "give a size such as 32G"))?,
        None => 0,
    };
    let groups: &[&str] = if a.cloudinit {
        &["templates", "cloudinit"]
    } else {
        &["templates"]
    };
    let tags = template_preflight(ctx, a.name, a.vmid, a.tags, groups).await?;
    let node = match a.node {
        Some(n) => n.to_string(),
        None => first_online_node(ctx).await?,
    };
    let storage = a
        .storage
        .map(str::to_string)
        .unwrap_or_else(|| ctx.config.defaults.storage.clone());
    let import_storage = storage_for(ctx, &node, "import", None).await?;
    let path = api_path(ctx, &node, &import_storage).await?;
    // 1. Download into the import storage; PVE verifies the checksum and removes a bad file.
    run.note(format!(
        "downloading {filename} to {import_storage} on {node}"
    ));
    download(
        ctx,
        run,
        &node,
        &import_storage,
        a.image_url,
        "import",
        &filename,
        sum,
    )
    .await?;
    let volid = format!("{import_storage}:import/{filename}");
    let cleanup_hint = format!(
        "the downloaded image {volid} is still on {node}; remove it with storage tools or the PVE GUI"
    );
    // 2. Create the VM with the cluster defaults, importing the image as its boot disk.
    let (vmid, reservation) = template_vmid(ctx, a.vmid).await?;
    let mut config = default_config(ctx, a.name, &storage, &tags);
    let iothread = if ctx.config.defaults.scsi_controller.as_str() == "virtio-scsi-single" {
        ",iothread=1"
    } else {
        ""
    };
    config.push((
        "scsi0".into(),
        format!("{storage}:0,import-from={volid}{iothread}"),
    ));
    config.push(("boot".into(), "order=scsi0".into()));
    let mut warnings = Vec::new();
    if a.cloudinit {
        config.push(("ide2".into(), format!("{storage}:cloudinit")));
        config.push(("serial0".into(), "socket".into()));
        config.push(("vga".into(), "serial0".into()));
        config.push(("ciuser".into(), ctx.config.cloudinit.default_user.clone()));
        config.push(("ipconfig0".into(), "ip=dhcp".into()));
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
    }
    let shown: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "sshkeys" {
                    "(keys)".into()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let created = ctx
        .client
        .create_qemu(&node, vmid, &config)
        .await
        .map_err(|e| Error::Partial {
            done: format!("{filename} was downloaded to {volid}"),
            step: format!("creating vm {vmid}"),
            source: Box::new(e.into()),
            next: cleanup_hint.clone(),
        })?;
    drop(reservation);
    let object = format!("vm {vmid} ({}) on {node}", a.name);
    let partial = |step: &str, e: Error| Error::Partial {
        done: format!("{object} exists with the image imported"),
        step: step.into(),
        source: Box::new(e),
        next: format!(
            "fix the cause, then finish by hand (vm_resize, template_convert) or remove it with vm_delete; {cleanup_hint}"
        ),
    };
    run.wait(ctx, &created, &format!("create {object}"))
        .await
        .map_err(|e| Error::Partial {
            done: format!("{filename} was downloaded to {volid}"),
            step: format!("creating {object}"),
            source: Box::new(e),
            next: cleanup_hint.clone(),
        })?;
    // 3. Grow the imported disk to the asked size.
    let cfg = ctx
        .client
        .get_qemu_config(&node, vmid)
        .await
        .map_err(|e| partial("reading its config", e.into()))?;
    let current = cfg
        .disks()
        .into_iter()
        .find(|d| d.key == "scsi0")
        .and_then(|d| d.size)
        .and_then(|s| parse_size(&s))
        .unwrap_or(0);
    if want > current {
        let size = format_size(want);
        if let Some(u) = ctx
            .client
            .resize_qemu_disk(&node, vmid, "scsi0", &size, None)
            .await
            .map_err(|e| partial("growing the disk", e.into()))?
        {
            run.wait(ctx, &u, &format!("resize scsi0 of {object}"))
                .await
                .map_err(|e| partial("growing the disk", e))?;
        }
    } else if want > 0 && want < current {
        warnings.push(format!(
            "the image is {} already, larger than disk_size {}; kept its size",
            format_size(current),
            format_size(want)
        ));
    }
    if a.cloudinit {
        warnings.push(format!(
            "no vendor snippet written to {}: snippets can only be written over SSH",
            ctx.config.cloudinit.vendor_snippet_path
        ));
    }
    // 4. Convert, then remove the download.
    if let Some(u) = ctx
        .client
        .convert_qemu_to_template(&node, vmid)
        .await
        .map_err(|e| partial("converting it to a template", e.into()))?
    {
        run.wait(ctx, &u, &format!("convert {object}"))
            .await
            .map_err(|e| partial("converting it to a template", e))?;
    }
    match ctx
        .client
        .delete_volume(&node, &import_storage, &volid)
        .await
    {
        Ok(Some(u)) => {
            if let Err(e) = run.wait(ctx, &u, &format!("remove {volid}")).await {
                warnings.push(format!(
                    "the template is ready, but removing {volid} failed: {e}"
                ));
            }
        }
        Ok(None) => {}
        Err(e) => warnings.push(format!(
            "the template is ready, but removing {volid} failed: {e}"
        )),
    }
    Ok(TemplateFromImageReport {
        vmid,
        name: a.name.to_string(),
        node: node.clone(),
        storage,
        path,
        disk_size: format_size(want.max(current)),
        config: shown,
        upids: run.upids(),
        warnings,
        message: format!(
            "template {vmid} ({}) is ready on {node}; clone it with vm_create",
            a.name
        ),
    })
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
