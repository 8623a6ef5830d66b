//! The build of a template from a disk image, in the order it runs: fetch the image (API
//! download or wget over SSH, or a file already on the node), create the VM with the cluster
//! defaults, import and attach the disk, grow it, add cloud-init, convert, clean up, and
//! delete the template it replaces.

use std::collections::BTreeMap;

use crate::pve::encode_sshkeys;

use crate::ops::error::quote;
use crate::ops::run::Run;
use crate::ops::template::replace::{NameUse, delete_replaced, preview_replace};
use crate::ops::template::ssh as template_ssh;
use crate::ops::validate::{self};
use crate::ops::vm::edit::{format_size, parse_size};
use crate::ops::{Context, Error};

use super::common::*;
use super::{ImageSpec, Source, TemplateFromImageReport};

/// An absolute path without `..` or control characters, naming an image file.
pub(super) fn check_node_path(path: &str) -> Result<String, Error> {
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

pub(super) async fn build_from_image(
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
    // The template's disk storage and its NIC's bridge are checked before anything is
    // downloaded.
    validate::vm_storage(&ctx.client.list_node_storage(&node).await?, &storage, &node)?;
    crate::ops::vm::create::plan::require_bridge(ctx, &node, &ctx.config.defaults.network_bridge)
        .await?;
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
    let object = format!("vm {vmid} ({}) on {node}", a.name);
    run.task_locked(ctx, &object, &format!("create {object}"), || async {
        Ok(Some(ctx.client.create_qemu(&node, vmid, &config).await?))
    })
    .await
    .map_err(|e| early(&format!("creating {object}"), e))?;
    drop(reservation);
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

/// A node path without a shell cannot happen: `template_ssh::shell` refused it already.
fn unreachable_source() -> Result<Staged, Error> {
    Err(Error::refused(
        "a file on the node can only be imported over ssh, which is not configured",
    ))
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
    fn node_paths_are_checked_before_anything_runs() {
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
}
