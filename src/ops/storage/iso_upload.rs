//! `iso_upload`: put an installer ISO into a storage — a file on the machine running this
//! server (uploaded through the API with its checksum, or over SFTP) or a URL (the API's
//! `download-url`, or wget on the node over SSH), the same two paths the template builds use.
//! An existing ISO of that name is refused unless `replace` (then previewed until `confirm`);
//! one a VM has in its CD drive is never replaced.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::template::create::{
    PathChoice, checksum, choose_path, first_online_node, storage_for,
};
use crate::ops::template::iso::{IsoSource, fetch_iso};
use crate::ops::template::ssh as template_ssh;
use crate::ops::validate::{self, SCHEMA_NODE, SCHEMA_STORAGE};
use crate::ops::{Context, Error, Run};

/// `iso_upload` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsoUploadArgs {
    /// http(s) URL or absolute path of a file here under `paths.uploads`; name ends `.iso`/`.img`.
    #[schemars(length(min = 1, max = 4096), regex(pattern = r"^[^\x00-\x1f]*$"))]
    pub source: String,
    /// `sha256:HEX`/`sha512:HEX` (bare hex: by length), checked after transfer.
    #[serde(default)]
    #[schemars(
        length(max = 140),
        regex(pattern = r"^((sha256|sha512):)?[0-9A-Fa-f]+$")
    )]
    pub checksum: Option<String>,
    /// Default: the first online node.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Default: the node's first `iso` storage.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Overwrite a same-named ISO; needs `confirm`.
    #[serde(default)]
    pub replace: bool,
    /// Confirms `replace`.
    #[serde(default)]
    pub confirm: bool,
}

/// `iso_upload` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IsoUploadReport {
    pub volid: String,
    pub node: String,
    pub storage: String,
    /// Which path carried it (API or SSH) and why.
    pub path: PathChoice,
    /// True when nothing was done (a `replace` without `confirm`).
    pub preview: bool,
    /// The ISO of the same name that was (or would be) deleted first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    pub upids: Vec<String>,
    pub message: String,
}

/// Uploads or downloads an ISO.
///
/// # Errors
/// A bad source, name, storage or checksum, an existing ISO without `replace`, an ISO in a VM's
/// CD drive, neither path possible — before anything is sent; then the transfer's failure
/// (a failed transfer leaves no partial file).
pub async fn iso_upload(
    ctx: &Context,
    run: &Run,
    a: &IsoUploadArgs,
) -> Result<IsoUploadReport, Error> {
    if let Some(n) = &a.node {
        validate::node("node", n)?;
    }
    if let Some(s) = &a.storage {
        validate::storage("storage", s)?;
    }
    let source = IsoSource::parse(&a.source, &ctx.config)?;
    if matches!(source, IsoSource::Volume(_)) {
        return Err(Error::invalid(
            "source",
            "that is already a volume in storage; give a URL or a local file to upload",
        ));
    }
    let filename = source.filename()?;
    let sum = a.checksum.as_deref().map(checksum).transpose()?;
    let node = match &a.node {
        Some(n) => {
            crate::ops::require_cluster_node(ctx, n).await?;
            n.clone()
        }
        None => first_online_node(ctx).await?,
    };
    let store = storage_for(ctx, &node, "iso", a.storage.as_deref()).await?;
    let volid = format!("{store}:iso/{filename}");
    let exists = ctx
        .client
        .list_storage_content(&node, &store, Some("iso"))
        .await?
        .iter()
        .any(|i| i.volid == volid);
    if exists && !a.replace {
        return Err(Error::refused(format!(
            "{volid} already exists on {node}; use it as it is, or pass replace: true to overwrite it"
        )));
    }
    if exists {
        refuse_in_use(ctx, &volid).await?;
    }
    let network = matches!(source, IsoSource::Url(_));
    let (choice, _) = choose_path(ctx, &node, Some(&store), "iso", network).await?;
    if choice.path == "ssh" {
        template_ssh::shell(ctx, &choice.reason)?;
    }
    let replaced = exists.then(|| volid.clone());
    if exists && !a.confirm {
        return Ok(IsoUploadReport {
            volid: volid.clone(),
            node,
            storage: store,
            path: choice,
            preview: true,
            replaced,
            upids: vec![],
            message: format!(
                "preview, nothing changed: {volid} exists and would be deleted, then replaced by {}; call again with confirm: true after the user agreed",
                a.source
            ),
        });
    }
    if exists {
        run.note(format!("deleting the old {volid} on {node}"));
        if let Some(upid) = ctx.client.delete_volume(&node, &store, &volid).await? {
            run.wait(ctx, &upid, &format!("delete {volid}")).await?;
        }
    }
    fetch_iso(
        ctx, run, &source, &node, &store, &volid, &filename, sum, &choice,
    )
    .await
    .map_err(|e| match &replaced {
        Some(old) => Error::Partial {
            done: format!("the old {old} was deleted"),
            step: "the transfer of the new one".into(),
            source: Box::new(e),
            next: "run iso_upload again (without replace) once the cause is fixed".into(),
        },
        None => e,
    })?;
    Ok(IsoUploadReport {
        message: format!(
            "{volid} is on {node} (through the {}: {})",
            choice.path, choice.reason
        ),
        volid,
        node,
        storage: store,
        path: choice,
        preview: false,
        replaced,
        upids: run.upids(),
    })
}

/// Refuses to replace an ISO a VM has in its CD drive.
async fn refuse_in_use(ctx: &Context, volid: &str) -> Result<(), Error> {
    let rows = ctx
        .client
        .get_cluster_resources(Some(crate::pve::ResourceType::Vm))
        .await?;
    for r in rows
        .iter()
        .filter(|r| matches!(r.kind, crate::pve::ResourceKind::Qemu))
    {
        let (Some(node), Some(vmid)) = (r.node.as_deref(), r.vmid) else {
            continue;
        };
        let Ok(config) = ctx.client.get_qemu_config(node, vmid).await else {
            continue;
        };
        if config.disks().iter().any(|d| d.volume == volid) {
            return Err(Error::refused(format!(
                "{volid} is in the CD drive of vm {vmid}; detach it there before replacing it"
            )));
        }
    }
    Ok(())
}
