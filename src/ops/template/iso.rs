//! `template_from_iso`: a VM with the cluster defaults, an empty boot disk and the installer
//! ISO attached, optionally started; the user installs the OS on the console and then runs
//! `template_convert`. The ISO is a volume already in storage, a URL (downloaded through the
//! API when the token may, else with wget on the node over SSH), or a file on the machine
//! running this server (uploaded through the API when the token may, else over SFTP).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::StartQemu;

use crate::ops::error::quote;
use crate::ops::run::Run;
use crate::ops::template::create::{
    PathChoice, check_url, checksum, choose_path, default_config, download, first_online_node,
    preview_vmid, storage_for, template_preflight, template_vmid,
};
use crate::ops::template::manage::TemplateDeleteReport;
use crate::ops::template::replace::{NameUse, preview_replace, replaces_marker};
use crate::ops::template::ssh as template_ssh;
use crate::ops::validate::{self, SCHEMA_DNS_NAME, SCHEMA_NODE, SCHEMA_SIZE, SCHEMA_STORAGE};
use crate::ops::vm::edit::parse_size;
use crate::ops::{Context, Error};

/// `template_from_iso` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFromIsoArgs {
    /// A volume (`local:iso/x.iso`), an http(s) URL to download, or an absolute path of an `.iso`
    /// on this server's machine to upload.
    #[schemars(length(min = 1, max = 4096), regex(pattern = r"^[^\x00-\x1f]*$"))]
    pub iso: String,
    /// `sha256:HEX` or `sha512:HEX` of a transferred ISO.
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
    /// Default: the node holding the ISO, else the first online.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Default `defaults.storage`.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// For a transferred ISO; default the first `iso` storage.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub iso_storage: Option<String>,
    /// Default 32G.
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = SCHEMA_SIZE))]
    pub disk_size: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 512))]
    pub cores: Option<u32>,
    /// MiB; default 2048.
    #[serde(default)]
    #[schemars(range(min = 16, max = 16_777_216))]
    pub memory: Option<u64>,
    #[serde(default)]
    pub start: bool,
    /// Added to the `templates` tag group.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub tags: Vec<String>,
    /// The same-named template is deleted when `template_convert` turns this VM into a template;
    /// needs `confirm`.
    #[serde(default)]
    pub replace: bool,
    /// Confirms `replace`.
    #[serde(default)]
    pub confirm: bool,
}

/// `template_from_iso` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateFromIsoReport {
    /// The VMID (in a preview: the one it would get now).
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// The ISO volume attached as `ide2`.
    pub iso: String,
    /// Set when the ISO was downloaded or uploaded: which path ran and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<PathChoice>,
    pub started: bool,
    /// True when nothing was changed: `replace` without `confirm`.
    pub preview: bool,
    /// The template that `template_convert` will delete once this VM is converted (in a
    /// preview: the one that would be); it is kept until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<TemplateDeleteReport>,
    /// Where to reach the installer's console.
    pub console: String,
    pub upids: Vec<String>,
    pub warnings: Vec<String>,
    pub next: String,
}

/// Where the ISO comes from.
pub(crate) enum IsoSource<'a> {
    Volume(&'a str),
    Url(&'a str),
    /// A local file, checked by [`super::local_source::check_local_source`]: the resolved path.
    LocalFile(std::path::PathBuf),
}

impl<'a> IsoSource<'a> {
    pub(crate) fn parse(iso: &'a str, config: &crate::config::Config) -> Result<Self, Error> {
        if iso.starts_with("http://") || iso.starts_with("https://") {
            check_url("iso", iso)?;
            return Ok(IsoSource::Url(iso));
        }
        if iso.starts_with('/') {
            let p =
                super::local_source::check_local_source(config, &crate::config::process_env, iso)?;
            return Ok(IsoSource::LocalFile(p));
        }
        if iso
            .split_once(':')
            .is_some_and(|(s, v)| !s.is_empty() && v.starts_with("iso/"))
        {
            return Ok(IsoSource::Volume(iso));
        }
        Err(Error::invalid(
            "iso",
            format!(
                "'{}' is neither a volume (STORAGE:iso/NAME), an http(s) URL nor an absolute path of a local file",
                quote(iso)
            ),
        ))
    }

    /// The file name the ISO gets in storage.
    pub(crate) fn filename(&self) -> Result<String, Error> {
        let raw = match self {
            IsoSource::Url(u) => u.split(['?', '#']).next().unwrap_or("").rsplit('/').next(),
            IsoSource::LocalFile(p) => p.file_name().and_then(|n| n.to_str()),
            IsoSource::Volume(v) => v.rsplit('/').next(),
        }
        .unwrap_or("");
        let lower = raw.to_ascii_lowercase();
        if !(lower.ends_with(".iso") || lower.ends_with(".img"))
            || raw.starts_with('.')
            || raw.contains(|c: char| !(c.is_ascii_alphanumeric() || "._-+".contains(c)))
        {
            return Err(Error::invalid(
                "iso",
                format!(
                    "'{}' is not a plain .iso file name (letters, digits, . _ - +)",
                    quote(raw)
                ),
            ));
        }
        Ok(raw.to_string())
    }
}

/// Creates the installation VM.
///
/// # Errors
/// Refusals before anything is created (name, range, unknown ISO, neither path possible);
/// PVE errors; a failed start after the create is reported as partial.
pub async fn template_from_iso(
    ctx: &Context,
    run: &Run,
    a: &TemplateFromIsoArgs,
) -> Result<TemplateFromIsoReport, Error> {
    if let Some(n) = &a.node {
        validate::node("node", n)?;
    }
    for (arg, s) in [("storage", &a.storage), ("iso_storage", &a.iso_storage)] {
        if let Some(s) = s {
            validate::storage(arg, s)?;
        }
    }
    let size = parse_size(a.disk_size.as_deref().unwrap_or("32G"))
        .filter(|s| *s >= 1 << 30)
        .ok_or_else(|| Error::invalid("disk_size", "give a size of at least 1G, such as 32G"))?;
    let source = IsoSource::parse(&a.iso, &ctx.config)?;
    let filename = source.filename()?;
    let sum = a.checksum.as_deref().map(checksum).transpose()?;
    if sum.is_some() && matches!(source, IsoSource::Volume(_)) {
        return Err(Error::invalid(
            "checksum",
            "checksums are checked on downloads and uploads; an ISO already in storage is used as it is",
        ));
    }
    let (tags, name_use) =
        template_preflight(ctx, &a.name, a.vmid, &a.tags, &["templates"], a.replace).await?;
    let storage = a
        .storage
        .clone()
        .unwrap_or_else(|| ctx.config.defaults.storage.clone());
    // The boot disk's storage is checked before an ISO is fetched or anything is created.
    // The disk storage, the NIC's bridge and the VM's size are checked on the node before
    // any transfer or create.
    let disk_storage = |node: String| async {
        let pools = ctx.client.list_node_storage(&node).await?;
        validate::vm_storage(&pools, &storage, &node)?;
        crate::ops::vm::create::plan::require_bridge(
            ctx,
            &node,
            &ctx.config.defaults.network_bridge,
        )
        .await?;
        crate::ops::vm::edit::resize::fits_node(ctx, &node, a.cores, None, a.memory).await?;
        Ok::<String, Error>(node)
    };
    let (node, transfer) = match source {
        IsoSource::Volume(v) => {
            let store = v.split_once(':').map(|(s, _)| s).unwrap_or("");
            validate::storage("iso", store)?;
            let node = match &a.node {
                Some(n) => n.clone(),
                None => iso_node(ctx, store, v).await?,
            };
            let node = disk_storage(node).await?;
            require_iso(ctx, &node, store, v).await?;
            (node, None)
        }
        IsoSource::Url(_) | IsoSource::LocalFile(_) => {
            let node = match &a.node {
                Some(n) => n.clone(),
                None => first_online_node(ctx).await?,
            };
            let node = disk_storage(node).await?;
            let store = storage_for(ctx, &node, "iso", a.iso_storage.as_deref()).await?;
            let volid = format!("{store}:iso/{filename}");
            refuse_existing_iso(ctx, &node, &store, &volid).await?;
            let network = matches!(source, IsoSource::Url(_));
            let (choice, _) = choose_path(ctx, &node, Some(&store), "iso", network).await?;
            if choice.path == "ssh" {
                template_ssh::shell(ctx, &choice.reason)?;
            }
            (node, Some((store, volid, choice)))
        }
    };
    let replaced = match name_use {
        NameUse::Replaces(old) => Some(preview_replace(ctx, run, old, a.vmid).await?),
        NameUse::Free => None,
    };
    let iso_volid = transfer
        .as_ref()
        .map(|(_, v, _)| v.clone())
        .unwrap_or_else(|| a.iso.clone());
    if replaced.is_some() && !a.confirm {
        let old = replaced.as_ref().map(|r| r.vmid).unwrap_or(0);
        let vmid = match a.vmid {
            Some(v) => v,
            None => preview_vmid(ctx).await?,
        };
        return Ok(TemplateFromIsoReport {
            vmid,
            name: a.name.clone(),
            node: node.clone(),
            iso: iso_volid,
            download: transfer.map(|(_, _, c)| c),
            started: false,
            preview: true,
            replaced,
            console: String::new(),
            upids: vec![],
            warnings: vec![],
            next: format!(
                "preview only, nothing was changed: this would create the installation VM {} on {node}; the old template {old} is kept until template_convert turns the new VM into a template, and is deleted then; call again with confirm: true",
                a.name
            ),
        });
    }
    let download_choice = match (&source, transfer) {
        (IsoSource::Volume(_), _) | (_, None) => None,
        (src, Some((store, volid, choice))) => {
            fetch_iso(
                ctx, run, src, &node, &store, &volid, &filename, sum, &choice,
            )
            .await?;
            Some(choice)
        }
    };
    let iso = iso_volid;
    let (vmid, reservation) = template_vmid(ctx, a.vmid).await?;
    let mut config = default_config(ctx, &a.name, &storage, &tags);
    config.retain(|(k, _)| k != "cores" && k != "memory");
    config.push(("cores".into(), a.cores.unwrap_or(2).to_string()));
    config.push(("memory".into(), a.memory.unwrap_or(2048).to_string()));
    config.push(("scsi0".into(), format!("{storage}:{}", size >> 30)));
    config.push(("ide2".into(), format!("{iso},media=cdrom")));
    config.push(("boot".into(), "order=scsi0;ide2;net0".into()));
    if let NameUse::Replaces(old) = name_use {
        config.push(("description".into(), replaces_marker(old)));
    }
    let object = format!("vm {vmid} ({}) on {node}", a.name);
    run.task_locked(ctx, &object, &format!("create {object}"), || async {
        Ok(Some(ctx.client.create_qemu(&node, vmid, &config).await?))
    })
    .await?;
    drop(reservation);
    if a.start {
        let what = format!("start {object}");
        let start = run.task_locked(ctx, &object, &what, || async {
            Ok(Some(
                ctx.client
                    .start_qemu(&node, vmid, &StartQemu::default())
                    .await?,
            ))
        });
        start.await.map_err(|e| Error::Partial {
            done: format!("{object} was created with {iso} attached"),
            step: "starting it".into(),
            source: Box::new(e),
            next: "start it with vm_start once the cause is fixed".into(),
        })?;
    }
    let host = ctx
        .config
        .cluster
        .nodes
        .iter()
        .find(|n| n.name == node)
        .map(|n| n.host.clone())
        .unwrap_or_else(|| node.clone());
    let warnings = Vec::new();
    Ok(TemplateFromIsoReport {
        vmid,
        name: a.name.clone(),
        node: node.clone(),
        iso,
        download: download_choice,
        started: a.start,
        preview: false,
        replaced,
        warnings,
        console: format!(
            "https://{host}:{}/?console=kvm&novnc=1&vmid={vmid}&node={node} (the PVE web UI's noVNC console)",
            ctx.config.api.port
        ),
        upids: run.upids(),
        next: format!(
            "install the OS on the console{}, shut the VM down (vm_shutdown {vmid}), then run template_convert {vmid}{}",
            if a.start {
                ""
            } else {
                " after starting it with vm_start"
            },
            match name_use {
                NameUse::Replaces(old) => format!(
                    "; the old template {old} stays until then and template_convert deletes it"
                ),
                NameUse::Free => String::new(),
            }
        ),
    })
}

/// Puts the ISO into `store` on `node` as `volid`: downloaded or uploaded through the API, or
/// with wget / SFTP on the node, as `choice` says; checked against `sum`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fetch_iso(
    ctx: &Context,
    run: &Run,
    source: &IsoSource<'_>,
    node: &str,
    store: &str,
    volid: &str,
    filename: &str,
    sum: Option<(String, String)>,
    choice: &PathChoice,
) -> Result<(), Error> {
    match (source, choice.path.as_str()) {
        (IsoSource::Url(url), "api") => {
            download(ctx, run, node, store, url, "iso", filename, sum).await?;
        }
        (IsoSource::LocalFile(p), "api") => {
            run.note(format!("uploading {} to {store} on {node}", p.display()));
            let upid = ctx
                .client
                .upload_file(node, store, "iso", filename, p, sum)
                .await?;
            run.wait(ctx, &upid, &format!("upload {filename}")).await?;
        }
        (src, _) => {
            let sh = template_ssh::shell(ctx, &choice.reason)?;
            let dest = template_ssh::volume_path(sh, run, node, volid).await?;
            match src {
                IsoSource::Url(url) => {
                    template_ssh::download(sh, run, node, url, &dest, sum.as_ref()).await?
                }
                IsoSource::LocalFile(p) => {
                    run.note(format!(
                        "{node}: uploading {} to {dest} over sftp",
                        p.display()
                    ));
                    let sent = async {
                        sh.upload_file(node, p, &dest, 0o644).await?;
                        template_ssh::verify(
                            sh,
                            run,
                            node,
                            &dest,
                            &p.display().to_string(),
                            sum.as_ref(),
                        )
                        .await
                    }
                    .await;
                    if let Err(e) = sent {
                        let step = "uploading the ISO";
                        return Err(
                            template_ssh::discard(sh, run, node, &dest, "upload", step, e).await,
                        );
                    }
                }
                IsoSource::Volume(_) => {}
            }
        }
    }
    Ok(())
}

/// Refuses a download or upload whose target volume already exists (it would be overwritten).
async fn refuse_existing_iso(
    ctx: &Context,
    node: &str,
    store: &str,
    volid: &str,
) -> Result<(), Error> {
    let items = ctx
        .client
        .list_storage_content(node, store, Some("iso"))
        .await?;
    if items.iter().any(|i| i.volid == volid) {
        return Err(Error::refused(format!(
            "{volid} already exists on {node}; pass iso: \"{volid}\" to use it, or remove it first"
        )));
    }
    Ok(())
}

/// Refuses an ISO volume that `node` does not see.
async fn require_iso(ctx: &Context, node: &str, store: &str, volid: &str) -> Result<(), Error> {
    let items = ctx
        .client
        .list_storage_content(node, store, Some("iso"))
        .await?;
    if !items.iter().any(|i| i.volid == volid) {
        let known: Vec<String> = items.into_iter().map(|i| i.volid).collect();
        return Err(Error::NotFound {
            what: format!("ISO {} on {node}", quote(volid)),
            hint: format!("ISOs there: {}", known.join(", ")),
        });
    }
    Ok(())
}

/// The node whose local storage holds the ISO (any online node for shared storage).
async fn iso_node(ctx: &Context, store: &str, volid: &str) -> Result<String, Error> {
    let rows = ctx
        .client
        .get_cluster_resources(Some(crate::pve::ResourceType::Storage))
        .await?;
    let mut candidates: Vec<String> = rows
        .iter()
        .filter(|r| r.storage.as_deref() == Some(store) && r.status.as_deref() == Some("available"))
        .filter_map(|r| r.node.clone())
        .collect();
    candidates.sort();
    for node in &candidates {
        if ctx
            .client
            .list_storage_content(node, store, Some("iso"))
            .await?
            .iter()
            .any(|i| i.volid == volid)
        {
            return Ok(node.clone());
        }
    }
    Err(Error::NotFound {
        what: format!("ISO {}", quote(volid)),
        hint: format!(
            "no online node has it on {}; list ISOs with storage_content",
            quote(store)
        ),
    })
}
