//! Steps every template build shares (`template_from_cloud_image`, `template_import_disk`,
//! `template_from_iso`): choosing the API or SSH path, the checks before anything changes
//! (name, VMID, tags, URL, checksum), the VMID, the download through the API, the node and
//! storage picks, and the cluster-default config.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::{DownloadUrl, ResourceType, Upid};

use crate::ops::allocate::Reservation;
use crate::ops::error::quote;
use crate::ops::guard::normalize_tags;
use crate::ops::run::Run;
use crate::ops::template::replace::{NameUse, check_name};
use crate::ops::validate::{self};
use crate::ops::{Context, Error};

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

pub(crate) fn filename_of(url: &str) -> Result<String, Error> {
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
    fn urls_are_checked_before_anything_runs() {
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
