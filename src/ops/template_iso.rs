//! `template_from_iso`: a VM with the cluster defaults, an empty boot disk and the installer
//! ISO attached, optionally started; the user installs the OS on the console and then runs
//! `template_convert`. The ISO is a volume already in storage, or a URL downloaded through the
//! API when the token may.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::StartQemu;

use super::run::Run;
use super::template_create::{
    PathChoice, api_path, checksum, default_config, download, first_online_node, storage_for,
    template_preflight, template_vmid,
};
use super::vm_edit::parse_size;
use super::{Context, Error};

/// `template_from_iso` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFromIsoArgs {
    /// The installer: a volume already in storage (`local:iso/debian-12.12.0-amd64-netinst.iso`)
    /// or an http(s) URL of an `.iso` to download first.
    pub iso: String,
    /// Expected digest of a downloaded ISO: `sha256:HEX` or `sha512:HEX`.
    #[serde(default)]
    pub checksum: Option<String>,
    /// Name of the VM (and later the template). A name already in use is refused.
    pub name: String,
    /// VMID; default the lowest free id in `vmid_ranges.templates`.
    #[serde(default)]
    pub vmid: Option<u32>,
    /// Node; default the node holding the ISO (local storage) or the first online node.
    #[serde(default)]
    pub node: Option<String>,
    /// Storage for the boot disk (default `defaults.storage`).
    #[serde(default)]
    pub storage: Option<String>,
    /// Boot disk size (default 32G).
    #[serde(default)]
    pub disk_size: Option<String>,
    #[serde(default)]
    pub cores: Option<u32>,
    /// Memory in MiB (default 2048).
    #[serde(default)]
    pub memory: Option<u64>,
    /// Start it so the installer runs (default false).
    #[serde(default)]
    pub start: bool,
    /// Extra tags, merged with the configured `templates` tag group.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `template_from_iso` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateFromIsoReport {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// The ISO volume attached as `ide2`.
    pub iso: String,
    /// Set when the ISO was downloaded: which path ran and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<PathChoice>,
    pub started: bool,
    /// Where to reach the installer's console.
    pub console: String,
    pub upids: Vec<String>,
    pub next: String,
}

/// Creates the installation VM.
///
/// # Errors
/// Refusals before anything is created (name, range, unknown ISO, download not allowed);
/// PVE errors; a failed start after the create is reported as partial.
pub async fn template_from_iso(
    ctx: &Context,
    run: &Run,
    a: &TemplateFromIsoArgs,
) -> Result<TemplateFromIsoReport, Error> {
    let size = parse_size(a.disk_size.as_deref().unwrap_or("32G"))
        .filter(|s| *s >= 1 << 30)
        .ok_or_else(|| Error::invalid("disk_size", "give a size of at least 1G, such as 32G"))?;
    let tags = template_preflight(ctx, &a.name, a.vmid, &a.tags, &["templates"]).await?;
    let is_url = a.iso.starts_with("http://") || a.iso.starts_with("https://");
    let (node, iso, download) = if is_url {
        let node = match &a.node {
            Some(n) => n.clone(),
            None => first_online_node(ctx).await?,
        };
        let store = storage_for(ctx, &node, "iso", None).await?;
        let name = a
            .iso
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        if !(name.ends_with(".iso") || name.ends_with(".img"))
            || name.contains(|c: char| !(c.is_ascii_alphanumeric() || "._-+".contains(c)))
        {
            return Err(Error::invalid(
                "iso",
                format!("'{}' does not end in a plain .iso file name", a.iso),
            ));
        }
        let choice = api_path(ctx, &node, &store).await?;
        let sum = a.checksum.as_deref().map(checksum).transpose()?;
        let iso = download(ctx, run, &node, &store, &a.iso, "iso", &name, sum).await?;
        (node, iso, Some(choice))
    } else {
        let (store, _) = a.iso.split_once(':').ok_or_else(|| {
            Error::invalid(
                "iso",
                format!(
                    "'{}' is neither a volume (STORAGE:iso/NAME) nor a URL",
                    a.iso
                ),
            )
        })?;
        let node = match &a.node {
            Some(n) => n.clone(),
            None => iso_node(ctx, store, &a.iso).await?,
        };
        let items = ctx
            .client
            .list_storage_content(&node, store, Some("iso"))
            .await?;
        if !items.iter().any(|i| i.volid == a.iso) {
            let known: Vec<String> = items.into_iter().map(|i| i.volid).collect();
            return Err(Error::NotFound {
                what: format!("ISO {} on {node}", a.iso),
                hint: format!("ISOs there: {}", known.join(", ")),
            });
        }
        (node, a.iso.clone(), None)
    };
    let storage = a
        .storage
        .clone()
        .unwrap_or_else(|| ctx.config.defaults.storage.clone());
    let (vmid, reservation) = template_vmid(ctx, a.vmid).await?;
    let mut config = default_config(ctx, &a.name, &storage, &tags);
    config.retain(|(k, _)| k != "cores" && k != "memory");
    config.push(("cores".into(), a.cores.unwrap_or(2).to_string()));
    config.push(("memory".into(), a.memory.unwrap_or(2048).to_string()));
    config.push(("scsi0".into(), format!("{storage}:{}", size >> 30)));
    config.push(("ide2".into(), format!("{iso},media=cdrom")));
    config.push(("boot".into(), "order=scsi0;ide2;net0".into()));
    let upid = ctx.client.create_qemu(&node, vmid, &config).await?;
    drop(reservation);
    let object = format!("vm {vmid} ({}) on {node}", a.name);
    run.wait(ctx, &upid, &format!("create {object}")).await?;
    if a.start {
        let start = async {
            let u = ctx
                .client
                .start_qemu(&node, vmid, &StartQemu::default())
                .await?;
            run.wait(ctx, &u, &format!("start {object}")).await
        };
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
    Ok(TemplateFromIsoReport {
        vmid,
        name: a.name.clone(),
        node: node.clone(),
        iso,
        download,
        started: a.start,
        console: format!(
            "https://{host}:{}/?console=kvm&novnc=1&vmid={vmid}&node={node} (the PVE web UI's noVNC console)",
            ctx.config.api.port
        ),
        upids: run.upids(),
        next: format!(
            "install the OS on the console{}, shut the VM down (vm_shutdown {vmid}), then run template_convert {vmid}",
            if a.start {
                ""
            } else {
                " after starting it with vm_start"
            }
        ),
    })
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
        what: format!("ISO {volid}"),
        hint: format!("no online node has it on {store}; list ISOs with storage_content"),
    })
}
