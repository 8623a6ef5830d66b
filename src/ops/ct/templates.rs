//! `ct_templates` (the OS templates: downloaded `vztmpl` volumes and the node's appliance
//! index) and `ct_template_download` (an appliance of the index into a `vztmpl` storage:
//! `POST /nodes/{node}/aplinfo`, or `pveam download` over SSH when the token may not).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::{Appliance, ClusterResource};
use crate::ssh::Command;

use crate::ops::error::quote;
use crate::ops::run::Run;
use crate::ops::validate::{SCHEMA_NODE, SCHEMA_STORAGE};
use crate::ops::{Context, Error};

use super::{online_nodes, require_online, require_storage, storage_rows};
use crate::ops::cluster::snapshot::StorageInfo;

/// An appliance file name or the start of one: `debian-12-standard_12.7-1_amd64.tar.zst`,
/// `debian-12-standard`.
pub const SCHEMA_APPLIANCE: &str = r"^[\w.+-]+$";
/// Longest `pveam download` may take on the node.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Downloaded templates listed at most (the rest counted).
const MAX_DOWNLOADED: usize = 20;
/// Index entries per page.
const PAGE_SIZE: u32 = 20;
/// Characters of an appliance description kept.
const DESCRIPTION_CHARS: usize = 90;

/// `ct_templates` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtTemplatesArgs {
    /// Default the first online node.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub section: Option<String>,
    /// Name substring.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub name: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 10_000))]
    pub page: Option<u32>,
}

/// A downloaded OS template.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DownloadedTemplate {
    pub volid: String,
    /// The node holding it; absent for a shared storage (every node sees it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// One entry of the appliance index.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ApplianceSummary {
    pub template: String,
    pub section: String,
    pub os: String,
    pub version: String,
    pub description: String,
    /// Downloaded on some storage the index node sees.
    pub downloaded: bool,
}

/// `ct_templates` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CtTemplatesReport {
    pub downloaded: Vec<DownloadedTemplate>,
    /// Downloaded templates matching but not listed (the list is bounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downloaded_more: Option<usize>,
    /// The node whose appliance index is listed.
    pub index_node: String,
    pub appliances: Vec<ApplianceSummary>,
    /// Index entries matching the filters, over all pages.
    pub total: u32,
    pub page: u32,
    pub page_size: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
}

/// The downloaded `vztmpl` volumes: each local storage read on every online node, each shared
/// storage once, up to `limits.max_parallel` listings at a time.
pub(crate) async fn downloaded(
    ctx: &Context,
    rows: &[ClusterResource],
) -> Result<Vec<DownloadedTemplate>, Error> {
    use futures::StreamExt;

    let online = online_nodes(rows);
    let mut seen_shared = std::collections::BTreeSet::new();
    let stores: Vec<StorageInfo> = storage_rows(rows)
        .into_iter()
        .filter(|s| s.active && s.holds("vztmpl") && online.contains(&s.node))
        .filter(|s| !s.shared || seen_shared.insert(s.id.clone()))
        .collect();
    let listings: Vec<Result<Vec<DownloadedTemplate>, Error>> = futures::stream::iter(stores)
        .map(|s: StorageInfo| async move {
            let items = ctx
                .client
                .list_storage_content(&s.node, &s.id, Some("vztmpl"))
                .await?;
            Ok(items
                .into_iter()
                .filter(|i| i.content.as_deref().is_none_or(|c| c == "vztmpl"))
                .map(|i| DownloadedTemplate {
                    volid: i.volid,
                    node: (!s.shared).then(|| s.node.clone()),
                    size: i.size,
                })
                .collect::<Vec<_>>())
        })
        .buffered(ctx.config.limits.max_parallel.max(1) as usize)
        .collect()
        .await;
    let mut out = Vec::new();
    for l in listings {
        out.extend(l?);
    }
    out.sort_by(|a, b| (&a.volid, &a.node).cmp(&(&b.volid, &b.node)));
    Ok(out)
}

/// The asked node (checked: known and online), else the first online one.
fn pick_node(rows: &[ClusterResource], asked: Option<&str>) -> Result<String, Error> {
    match asked {
        Some(n) => {
            crate::ops::validate::node("node", n)?;
            require_online(rows, n)?;
            Ok(n.to_string())
        }
        None => online_nodes(rows)
            .into_iter()
            .next()
            .ok_or_else(|| Error::refused("no node of the cluster is online")),
    }
}

/// The file name of a `vztmpl` volid (`local:vztmpl/x.tar.zst` -> `x.tar.zst`).
pub(crate) fn file_of(volid: &str) -> &str {
    volid.rsplit('/').next().unwrap_or(volid)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn check_filter(arg: &str, v: Option<&str>) -> Result<(), Error> {
    if let Some(v) = v {
        let ok = v.len() <= 128
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
        if !ok {
            return Err(Error::invalid(
                arg,
                format!("'{}' may hold only letters, digits and . _ + -", quote(v)),
            ));
        }
    }
    Ok(())
}

/// Lists downloaded templates and one page of the appliance index.
///
/// # Errors
/// An unknown or offline node, bad filters, PVE read errors.
pub async fn ct_templates(ctx: &Context, a: &CtTemplatesArgs) -> Result<CtTemplatesReport, Error> {
    check_filter("name", a.name.as_deref())?;
    check_filter("section", a.section.as_deref())?;
    let rows = super::nodes_and_storages(ctx).await?;
    let node = pick_node(&rows, a.node.as_deref())?;
    let name = a.name.as_deref().unwrap_or("").to_lowercase();
    let all = downloaded(ctx, &rows).await?;
    let mut down: Vec<DownloadedTemplate> = all
        .iter()
        .filter(|d| file_of(&d.volid).to_lowercase().contains(&name))
        .cloned()
        .collect();
    let more = down.len().saturating_sub(MAX_DOWNLOADED);
    down.truncate(MAX_DOWNLOADED);
    let here: Vec<&str> = all
        .iter()
        .filter(|d| d.node.as_deref().is_none_or(|n| n == node))
        .map(|d| file_of(&d.volid))
        .collect();
    let index = ctx.client.list_appliances(&node).await?;
    let matching: Vec<&Appliance> = index
        .iter()
        .filter(|x| x.kind.as_deref().is_none_or(|k| k == "lxc"))
        .filter(|x| {
            a.section
                .as_deref()
                .is_none_or(|s| x.section.as_deref() == Some(s))
        })
        .filter(|x| x.template.to_lowercase().contains(&name))
        .collect();
    let page_size = PAGE_SIZE;
    let page = a.page.unwrap_or(1).max(1);
    let start = ((page - 1) * page_size) as usize;
    let total = matching.len() as u32;
    let appliances = matching
        .iter()
        .skip(start)
        .take(page_size as usize)
        .map(|x| ApplianceSummary {
            template: x.template.clone(),
            section: x.section.clone().unwrap_or_default(),
            os: x.os.clone().unwrap_or_default(),
            version: x.version.clone().unwrap_or_default(),
            description: truncate(
                x.headline
                    .as_deref()
                    .or(x.description.as_deref())
                    .unwrap_or(""),
                DESCRIPTION_CHARS,
            ),
            downloaded: here.contains(&x.template.as_str()),
        })
        .collect();
    let next_page = (start + page_size as usize) < matching.len();
    Ok(CtTemplatesReport {
        downloaded: down,
        downloaded_more: (more > 0).then_some(more),
        index_node: node,
        appliances,
        total,
        page,
        page_size,
        next_page: next_page.then_some(page + 1),
    })
}

/// `ct_template_download` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtTemplateDownloadArgs {
    /// Name from ct_templates, or its unique start.
    #[schemars(length(min = 1, max = 255), regex(pattern = SCHEMA_APPLIANCE))]
    pub template: String,
    /// Content `vztmpl`.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
}

/// `ct_template_download` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CtTemplateDownloadReport {
    pub template: String,
    pub volid: String,
    pub node: String,
    pub storage: String,
    /// `api`, `ssh`, or `none` (already there).
    pub path: String,
    pub already_present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    pub message: String,
}

/// The index entry `wanted` names: the exact file name, or the only one starting with it.
pub(crate) fn resolve_appliance<'a>(
    index: &'a [Appliance],
    wanted: &str,
    node: &str,
) -> Result<&'a Appliance, Error> {
    if let Some(x) = index.iter().find(|x| x.template == wanted) {
        return Ok(x);
    }
    let starts: Vec<&Appliance> = index
        .iter()
        .filter(|x| x.template.starts_with(wanted))
        .collect();
    match starts.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::NotFound {
            what: format!("appliance {} in {node}'s index", quote(wanted)),
            hint: "list the index with ct_templates (filter with name)".into(),
        }),
        many => Err(Error::invalid(
            "template",
            format!(
                "{} matches several appliances ({}); give the full name",
                quote(wanted),
                many.iter()
                    .take(6)
                    .map(|x| x.template.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The storage for templates on `node`: the asked one (checked), else `local` when it holds
/// `vztmpl`, else the first that does.
pub(crate) fn template_storage(
    stores: &[StorageInfo],
    node: &str,
    asked: Option<&str>,
) -> Result<String, Error> {
    if let Some(s) = asked {
        require_storage(stores, node, s, "vztmpl", "OS templates")?;
        return Ok(s.to_string());
    }
    let fit = super::storages_with(stores, node, "vztmpl");
    if fit.iter().any(|s| s == "local") {
        return Ok("local".into());
    }
    fit.into_iter().next().ok_or_else(|| {
        Error::refused(format!(
            "no storage of {node} holds OS templates (content `vztmpl`); add `vztmpl` to a storage's content (e.g. `pvesm set local --content iso,vztmpl,backup`)"
        ))
    })
}

/// Downloads an appliance into a `vztmpl` storage; a no-op when it is already there.
///
/// # Errors
/// Bad arguments, unknown node/storage/appliance (all before any write); the download task's
/// failure; with a token lacking Datastore.AllocateTemplate and no SSH, a refusal naming both.
pub async fn ct_template_download(
    ctx: &Context,
    run: &Run,
    a: &CtTemplateDownloadArgs,
) -> Result<CtTemplateDownloadReport, Error> {
    check_filter("template", Some(&a.template))?;
    if a.template.is_empty() {
        return Err(Error::invalid("template", "name an appliance"));
    }
    if let Some(s) = &a.storage {
        crate::ops::validate::storage("storage", s)?;
    }
    let rows = super::nodes_and_storages(ctx).await?;
    let node = pick_node(&rows, a.node.as_deref())?;
    let stores = storage_rows(&rows);
    let storage = template_storage(&stores, &node, a.storage.as_deref())?;
    let index = ctx.client.list_appliances(&node).await?;
    let app = resolve_appliance(&index, &a.template, &node)?;
    let template = app.template.clone();
    let volid = format!("{storage}:vztmpl/{template}");
    let present = |items: &[crate::pve::StorageContentItem]| items.iter().any(|i| i.volid == volid);
    let mut report = CtTemplateDownloadReport {
        template: template.clone(),
        volid: volid.clone(),
        node: node.clone(),
        storage: storage.clone(),
        path: "none".into(),
        already_present: false,
        upid: None,
        message: String::new(),
    };
    if present(
        &ctx.client
            .list_storage_content(&node, &storage, Some("vztmpl"))
            .await?,
    ) {
        report.already_present = true;
        report.message = format!("{volid} is already on {storage} ({node}); nothing to do");
        return Ok(report);
    }
    run.note(format!("downloading {template} to {storage} on {node}"));
    let what = format!("download of {template} to {storage} on {node}");
    let api = run
        .task_locked(
            ctx,
            &format!("storage {storage} on {node}"),
            &what,
            || async {
                Ok(Some(
                    ctx.client
                        .download_appliance(&node, &storage, &template)
                        .await?,
                ))
            },
        )
        .await;
    match api {
        Ok(done) => {
            report.path = "api".into();
            report.upid = done.map(|(u, _)| u.to_string());
        }
        Err(Error::Pve(crate::pve::Error::Forbidden { .. })) => {
            let sh = ctx.ssh.as_deref().ok_or_else(|| {
                Error::refused(format!(
                    "the token lacks Datastore.AllocateTemplate on /storage/{storage}, and {}. Grant it (`pveum acl modify /storage/{storage} --tokens <token> --roles PVEDatastoreAdmin`) or configure ssh",
                    crate::ops::node_ssh::unavailable_reason(&ctx.config)
                ))
            })?;
            run.note(format!(
                "the token may not download templates to {storage}: running pveam on {node} over ssh"
            ));
            let cmd = Command::new("pveam")
                .arg("download")
                .arg(&storage)
                .arg(&template);
            sh.run(run, &node, &cmd, DOWNLOAD_TIMEOUT).await?;
            report.path = "ssh".into();
        }
        Err(e) => return Err(e),
    }
    if !present(
        &ctx.client
            .list_storage_content(&node, &storage, Some("vztmpl"))
            .await?,
    ) {
        return Err(Error::Setup(format!(
            "{what} finished, but {volid} is not listed on {storage}; check the task log with task_log"
        )));
    }
    report.message = format!(
        "{volid} downloaded on {node} ({}); create containers from it with ct_create template: {volid}",
        if report.path == "ssh" {
            "pveam over ssh"
        } else {
            "API"
        }
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(t: &str) -> Appliance {
        serde_json::from_value(serde_json::json!({"template": t, "section": "system"}))
            .expect("row")
    }

    #[test]
    fn appliances_resolve_by_name_or_unique_start() {
        let index = vec![
            app("debian-12-standard_12.7-1_amd64.tar.zst"),
            app("debian-13-standard_13.1-1_amd64.tar.zst"),
            app("alpine-3.20-default_20240908_amd64.tar.xz"),
        ];
        assert_eq!(
            resolve_appliance(&index, "debian-12-standard", "pve01")
                .expect("prefix")
                .template,
            "debian-12-standard_12.7-1_amd64.tar.zst"
        );
        let e = resolve_appliance(&index, "debian", "pve01")
            .expect_err("ambiguous")
            .to_string();
        assert!(e.contains("several"), "{e}");
        assert!(resolve_appliance(&index, "fedora", "pve01").is_err());
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
