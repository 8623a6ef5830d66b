//! Toolset `template`: list, convert, delete.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::{
    self, TemplateConvertArgs, TemplateConvertReport, TemplateDeleteArgs, TemplateDeleteReport,
    TemplateFromCloudImageArgs, TemplateFromImageReport, TemplateFromIsoArgs,
    TemplateFromIsoReport, TemplateImportDiskArgs, TemplateListArgs, TemplateListReport,
};

use crate::ops::access::endpoints as api;
use crate::ops::spec::{Endpoint, ToolSpec};
use crate::server::{ProxmoxServer, tool_error};

pub(crate) const TEMPLATE_LIST: ToolSpec = ToolSpec::read("template_list", "List templates")
    .toolset("template")
    .calls(&[
        api::NODES,
        api::RESOURCES_ALL,
        api::QEMU_CONFIG,
        api::STORAGE_CONTENT,
    ]);
pub(crate) const TEMPLATE_CONVERT: ToolSpec =
    ToolSpec::write("template_convert", "Convert VM to template")
        .toolset("template")
        .calls(&[
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
            api::RESOURCES_GUESTS,
            api::QEMU_CONFIG,
            api::QEMU_STATUS,
            api::QEMU_TEMPLATE,
        ]);
pub(crate) const TEMPLATE_DELETE: ToolSpec =
    ToolSpec::destructive("template_delete", "Delete template")
        .toolset("template")
        .calls(&[
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
            api::RESOURCES_GUESTS,
            api::QEMU_CONFIG,
            api::QEMU_STATUS,
            api::STORAGE_CONTENT,
            api::QEMU_DELETE,
        ]);
/// The endpoints of an image build through the API (or, lacking the download privileges, the
/// same VM calls after the image was fetched over SSH); `replace` also deletes the old template.
const IMAGE_BUILD: &[Endpoint] = &[
    api::TASK_WAIT,
    api::TASK_WAIT_LOG,
    api::RESOURCES_ALL,
    api::PERMISSIONS,
    api::NODE_STORAGE,
    api::STORAGE_CONTENT,
    api::STORAGE_DOWNLOAD,
    api::NEXTID,
    api::QEMU_CREATE,
    api::QEMU_CONFIG,
    api::QEMU_CONFIG_BUILD,
    api::QEMU_RESIZE,
    api::QEMU_TEMPLATE,
    api::STORAGE_DELETE_VOLUME,
    api::QEMU_STATUS,
    api::QEMU_DELETE,
    api::NODE_NETWORK,
    api::SDN_VNETS,
];
pub(crate) const TEMPLATE_FROM_CLOUD_IMAGE: ToolSpec =
    ToolSpec::write("template_from_cloud_image", "Template from cloud image")
        .toolset("template")
        .open_world()
        .confirm_args(&["replace"])
        .calls(IMAGE_BUILD);
pub(crate) const TEMPLATE_IMPORT_DISK: ToolSpec =
    ToolSpec::write("template_import_disk", "Template from disk image")
        .toolset("template")
        .open_world()
        .confirm_args(&["replace"])
        .calls(IMAGE_BUILD);
pub(crate) const TEMPLATE_FROM_ISO: ToolSpec =
    ToolSpec::write("template_from_iso", "Template from ISO")
        .toolset("template")
        .open_world()
        .confirm_args(&["replace"])
        .calls(&[
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
            api::RESOURCES_ALL,
            api::PERMISSIONS,
            api::NODE_STORAGE,
            api::STORAGE_CONTENT,
            api::STORAGE_DOWNLOAD,
            api::STORAGE_UPLOAD,
            api::NEXTID,
            api::QEMU_CREATE,
            api::QEMU_CONFIG,
            api::QEMU_START,
            api::QEMU_STATUS,
            api::QEMU_DELETE,
            api::NODE_NETWORK,
            api::SDN_VNETS,
        ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[
    TEMPLATE_LIST,
    TEMPLATE_CONVERT,
    TEMPLATE_DELETE,
    TEMPLATE_FROM_CLOUD_IMAGE,
    TEMPLATE_IMPORT_DISK,
    TEMPLATE_FROM_ISO,
];

#[tool_router(router = template_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// VM templates: OS type, disk size, storages, whether clonable to any node (all disks
    /// shared), dependent linked clones.
    #[tool(
        name = "template_list",
        input_schema = crate::server::schema::input::<TemplateListArgs>(),
        output_schema = crate::server::schema::output::<TemplateListReport>()
    )]
    async fn template_list(
        &self,
        Parameters(args): Parameters<TemplateListArgs>,
    ) -> Result<Json<TemplateListReport>, String> {
        ops::template_list(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Turn an installed, stopped VM into a template (disks become read-only base images). PVE
    /// refuses one with snapshots.
    #[tool(
        name = "template_convert",
        input_schema = crate::server::schema::input::<TemplateConvertArgs>(),
        output_schema = crate::server::schema::output::<TemplateConvertReport>()
    )]
    async fn template_convert(
        &self,
        Parameters(args): Parameters<TemplateConvertArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<TemplateConvertReport>, String> {
        self.mutate(&TEMPLATE_CONVERT, &args, rc, ct, async |run, args| {
            ops::template_convert(&self.ctx, run, &args).await
        })
        .await
    }

    /// Delete a template and its disks. Without confirm: true it returns the preview (disks, linked
    /// clones). Refused while linked clones depend on it.
    #[tool(
        name = "template_delete",
        input_schema = crate::server::schema::input::<TemplateDeleteArgs>(),
        output_schema = crate::server::schema::output::<TemplateDeleteReport>()
    )]
    async fn template_delete(
        &self,
        Parameters(args): Parameters<TemplateDeleteArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<TemplateDeleteReport>, String> {
        self.mutate(&TEMPLATE_DELETE, &args, rc, ct, async |run, args| {
            ops::template_delete(&self.ctx, run, &args).await
        })
        .await
    }

    /// Build a cloud-init template from a cloud image URL in one call: download (checksum
    /// verified), create the VM with the cluster defaults, import the image as boot disk,
    /// cloud-init (user, SSH keys, agent snippet), tags, convert, clean up. PVE API on 8.4+ when
    /// the token may, else SSH (the result says which). A name in use is refused; replace: true
    /// (with confirm: true, else a preview) builds the new one, then deletes the old.
    #[tool(
        name = "template_from_cloud_image",
        input_schema = crate::server::schema::input::<TemplateFromCloudImageArgs>(),
        output_schema = crate::server::schema::output::<TemplateFromImageReport>()
    )]
    async fn template_from_cloud_image(
        &self,
        Parameters(args): Parameters<TemplateFromCloudImageArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<TemplateFromImageReport>, String> {
        self.mutate(
            &TEMPLATE_FROM_CLOUD_IMAGE,
            &args,
            rc,
            ct,
            async |run, args| ops::template_from_cloud_image(&self.ctx, run, &args).await,
        )
        .await
    }

    /// Import a pre-built disk image (URL, checksum verified, or a path on the node) as the boot
    /// disk of a new template without cloud-init: create the VM with the cluster defaults, import,
    /// optionally grow, convert, clean up. API or SSH as for template_from_cloud_image (a node path
    /// always SSH); replace: true with confirm: true replaces a same-named template.
    #[tool(
        name = "template_import_disk",
        input_schema = crate::server::schema::input::<TemplateImportDiskArgs>(),
        output_schema = crate::server::schema::output::<TemplateFromImageReport>()
    )]
    async fn template_import_disk(
        &self,
        Parameters(args): Parameters<TemplateImportDiskArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<TemplateFromImageReport>, String> {
        self.mutate(&TEMPLATE_IMPORT_DISK, &args, rc, ct, async |run, args| {
            ops::template_import_disk(&self.ctx, run, &args).await
        })
        .await
    }

    /// Prepare a template from an installer ISO: a VM with the cluster defaults, an empty boot disk
    /// and the ISO attached, optionally started; the result says how to reach the console. Install
    /// the OS, shut the VM down, then run template_convert. replace: true with confirm: true
    /// deletes a same-named template once the new VM exists.
    #[tool(
        name = "template_from_iso",
        input_schema = crate::server::schema::input::<TemplateFromIsoArgs>(),
        output_schema = crate::server::schema::output::<TemplateFromIsoReport>()
    )]
    async fn template_from_iso(
        &self,
        Parameters(args): Parameters<TemplateFromIsoArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<TemplateFromIsoReport>, String> {
        self.mutate(&TEMPLATE_FROM_ISO, &args, rc, ct, async |run, args| {
            ops::template_from_iso(&self.ctx, run, &args).await
        })
        .await
    }
}
