//! The SSH half of the template builds: what a least-privilege token cannot do through the
//! API, done on the node as the seed's runbooks do it — `wget` into a staging file, checksum
//! with `sha256sum`/`sha512sum`, `qemu-img info`/`resize`, `qm disk import`, the vendor snippet
//! written over SFTP, `rm` of the staging file. Every command is built from quoted words.

use std::time::Duration;

use serde_json::Value;

use crate::ssh::Command;

use crate::ops::node_ssh::NodeShell;
use crate::ops::run::Run;
use crate::ops::{Context, Error};

/// Longest a download or an import may take on the node.
const LONG: Duration = Duration::from_secs(60 * 60);
/// Bookkeeping commands (info, checksums of small files, rm, pvesm).
const SHORT: Duration = Duration::from_secs(120);
/// Checksums of multi-GiB images read the whole file.
const HASH: Duration = Duration::from_secs(15 * 60);

/// Where a download is staged on the node: `/var/tmp` exists on every Debian (and so PVE)
/// host and survives reboots long enough for an import; the random part keeps concurrent
/// builds apart. `filename` is already restricted to `[A-Za-z0-9._+-]`.
pub(crate) fn stage_path(filename: &str) -> String {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("/var/tmp/proxmox-manager-{}-{filename}", &tag[..8])
}

/// The shell, or a refusal saying why neither path can run.
pub(crate) fn shell<'a>(ctx: &'a Context, api_reason: &str) -> Result<&'a NodeShell, Error> {
    ctx.ssh.as_deref().ok_or_else(|| {
        Error::refused(format!(
            "the API path cannot be used ({api_reason}) and {}. Either grant the token's role Datastore.AllocateTemplate and Sys.AccessNetwork (for example `pveum role modify ClaudeCodeManager --append 1 --privs \"Datastore.AllocateTemplate Sys.AccessNetwork\"`) or configure ssh",
            crate::ops::node_ssh::unavailable_reason(&ctx.config)
        ))
    })
}

/// Downloads `url` to `dest` on `node` with `wget` and checks its digest. On any failure the
/// staging file is removed (wget leaves an empty one behind) and the error says whether that
/// worked.
pub(crate) async fn download(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    url: &str,
    dest: &str,
    sum: Option<&(String, String)>,
) -> Result<(), Error> {
    run.note(format!("{node}: downloading to {dest}"));
    let get = Command::new("wget")
        .arg("-nv")
        .arg("-O")
        .arg(dest)
        .arg("--")
        .arg(url);
    let result = async {
        sh.run(run, node, &get, LONG).await.map_err(explain_wget)?;
        verify(sh, run, node, dest, url, sum).await
    }
    .await;
    if let Err(e) = result {
        return Err(discard(sh, run, node, dest, "download", "downloading the image", e).await);
    }
    Ok(())
}

/// Adds what wget's exit status means (its manual's EXIT STATUS) to a failed download.
fn explain_wget(e: Error) -> Error {
    match e {
        Error::NodeCommand {
            node,
            command,
            status,
            stderr,
        } => {
            let meaning = match status.as_str() {
                "exit 4" => {
                    "network failure: the node cannot reach the URL's host (DNS, routing, proxy)"
                }
                "exit 5" => "TLS certificate verification failed on the node",
                "exit 6" => "the server asked for credentials",
                "exit 8" => "the server answered with an error (wrong URL, or the file moved)",
                "exit 3" => "the file could not be written on the node (disk full or permissions)",
                _ => "",
            };
            let stderr = if meaning.is_empty() {
                stderr
            } else {
                format!("{meaning}; wget said: {stderr}")
            };
            Error::NodeCommand {
                node,
                command,
                status,
                stderr,
            }
        }
        other => other,
    }
}

/// Compares the digest of `path` on the node with `sum`, when given.
pub(crate) async fn verify(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    path: &str,
    origin: &str,
    sum: Option<&(String, String)>,
) -> Result<(), Error> {
    let Some((hex, alg)) = sum else {
        return Ok(());
    };
    let out = sh
        .run(
            run,
            node,
            &Command::new(format!("{alg}sum")).arg("--").arg(path),
            HASH,
        )
        .await?;
    let got = out
        .stdout
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_lowercase();
    if got != *hex {
        return Err(Error::refused(format!(
            "checksum mismatch for {origin}: expected {alg} {hex}, the file has {got}; check the source and the checksum (a mirror may serve a newer image)"
        )));
    }
    Ok(())
}

/// The file path of volume `volid` on `node` (`pvesm path`).
pub(crate) async fn volume_path(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    volid: &str,
) -> Result<String, Error> {
    let out = sh
        .run(
            run,
            node,
            &Command::new("pvesm").arg("path").arg(volid),
            SHORT,
        )
        .await?;
    Ok(out.stdout.trim().to_string())
}

/// After a failed transfer (`what`: download or upload) into `path`: removes the partial file
/// and returns `e` as a partial result saying whether the file is gone or still there.
pub(crate) async fn discard(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    path: &str,
    what: &str,
    step: &str,
    e: Error,
) -> Error {
    let (done, next) = match remove(sh, run, node, path).await {
        Ok(()) => (
            format!("nothing was created; the partial {what} {path} on {node} was removed"),
            "fix the cause and run the tool again".to_string(),
        ),
        Err(rm) => (
            format!("nothing was created, but the partial {what} {path} is still on {node} ({rm})"),
            format!("remove {path} on {node} by hand, fix the cause and run the tool again"),
        ),
    };
    Error::Partial {
        done,
        step: step.into(),
        source: Box::new(e),
        next,
    }
}

/// `rm -f PATH` on the node.
pub(crate) async fn remove(sh: &NodeShell, run: &Run, node: &str, path: &str) -> Result<(), Error> {
    sh.run(
        run,
        node,
        &Command::new("rm").arg("-f").arg("--").arg(path),
        SHORT,
    )
    .await
    .map(|_| ())
}

/// An image file's format and virtual size, from `qemu-img info --output=json`.
pub(crate) async fn image_info(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    path: &str,
) -> Result<(String, u64), Error> {
    let out = sh
        .run(
            run,
            node,
            &Command::new("qemu-img")
                .arg("info")
                .arg("--output=json")
                .arg(path),
            SHORT,
        )
        .await?;
    let v: Value = serde_json::from_str(&out.stdout).map_err(|e| Error::NodeCommand {
        node: node.into(),
        command: "qemu-img info".into(),
        status: "unreadable output".into(),
        stderr: e.to_string(),
    })?;
    let format = v["format"].as_str().unwrap_or("raw").to_string();
    let size = v["virtual-size"].as_u64().unwrap_or(0);
    Ok((format, size))
}

/// Grows the image file to `bytes` with `qemu-img resize`.
pub(crate) async fn grow_image(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    path: &str,
    format: &str,
    bytes: u64,
) -> Result<(), Error> {
    sh.run(
        run,
        node,
        &Command::new("qemu-img")
            .arg("resize")
            .arg("-f")
            .arg(format)
            .arg(path)
            .arg(bytes.to_string()),
        SHORT,
    )
    .await
    .map(|_| ())
}

/// Imports the image at `path` on `node` as a new unused disk of `vmid` on `storage`
/// (`qm disk import`; `qm importdisk` before PVE 7.2). Returns nothing: the caller reads the
/// config to find the `unusedN` entry.
pub(crate) async fn import(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    version: &str,
    vmid: u32,
    path: &str,
    storage: &str,
) -> Result<(), Error> {
    let qm = if crate::ops::template::create::version_at_least(version, 7, 2) {
        Command::new("qm").arg("disk").arg("import")
    } else {
        Command::new("qm").arg("importdisk")
    };
    let cmd = qm.arg(vmid.to_string()).arg(path).arg(storage);
    run.note(format!(
        "{node}: importing {path} into {storage} for vm {vmid}"
    ));
    sh.run(run, node, &cmd, LONG).await.map(|_| ())
}

/// The vendor data every cloud-init template gets: the guest agent, installed and running,
/// so addresses show up in PVE (`vm_get`, `vm_create`'s wait for an IP).
pub(crate) const VENDOR_DATA: &str = "#cloud-config\n# written by proxmox-manager: the guest agent lets PVE see the VM's addresses\npackages:\n  - qemu-guest-agent\nruncmd:\n  - systemctl enable --now qemu-guest-agent\n";

/// Writes the vendor snippet for template `name` into `cloudinit.vendor_snippet_path` on
/// `node` and returns the `cicustom` value referencing it (`vendor=STORAGE:snippets/FILE`).
/// The storage is the one whose `snippets/` directory is that path (asked of `pvesm path`).
pub(crate) async fn vendor_snippet(
    ctx: &Context,
    sh: &NodeShell,
    run: &Run,
    node: &str,
    name: &str,
) -> Result<String, Error> {
    let dir = ctx
        .config
        .cloudinit
        .vendor_snippet_path
        .trim_end_matches('/');
    let file = format!("{name}-vendor.yaml");
    let path = format!("{dir}/{file}");
    let pools = ctx.client.list_node_storage(node).await?;
    let mut storage = None;
    for s in pools.iter().filter(|s| {
        s.content
            .as_deref()
            .unwrap_or("")
            .split(',')
            .any(|c| c == "snippets")
    }) {
        let volid = format!("{}:snippets/{file}", s.storage);
        let out = sh
            .run_status(
                run,
                node,
                &Command::new("pvesm").arg("path").arg(&volid),
                SHORT,
            )
            .await?;
        if out.success() && out.stdout.trim() == path {
            storage = Some(s.storage.clone());
            break;
        }
    }
    let storage = storage.ok_or_else(|| {
        Error::refused(format!(
            "no storage on {node} with `snippets` content keeps its snippets in {dir}; enable snippets on it (e.g. `pvesm set local --content iso,vztmpl,backup,snippets,import`) or set cloudinit.vendor_snippet_path to such a directory"
        ))
    })?;
    sh.write_file(node, VENDOR_DATA.as_bytes(), &path, 0o644)
        .await?;
    run.note(format!("{node}: wrote the vendor snippet {path}"));
    Ok(format!("vendor={storage}:snippets/{file}"))
}
