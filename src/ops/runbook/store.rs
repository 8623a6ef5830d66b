//! Where runbooks come from (embedded shipped ones, the user's directory): list, get, text.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Config;

use super::parse::{Problem, valid_name};
use super::render::{RunbookGetArgs, RunbookGetReport, render};
use super::validate::check;
use super::{Error, ImageType, Requirement, RunbookSource, ToolCatalog, user_runbook_dir};

/// The shipped runbooks, `(name, markdown)`, embedded so an installed binary has them.
pub(super) const SHIPPED: [(&str, &str); 3] = [
    (
        "create-cloudinit-template",
        include_str!("../../../runbooks/create-cloudinit-template.md"),
    ),
    (
        "create-iso-template",
        include_str!("../../../runbooks/create-iso-template.md"),
    ),
    (
        "import-qcow2-template",
        include_str!("../../../runbooks/import-qcow2-template.md"),
    ),
];

/// `runbooks/_template.md`: the format explained as a fill-in example (not a runbook itself;
/// a server may show it, e.g. as a resource, to whoever writes a new runbook).
pub const RUNBOOK_TEMPLATE: &str = include_str!("../../../runbooks/_template.md");

/// `runbook_list` arguments (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookListArgs {}

/// One runbook in the listing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunbookSummary {
    /// Runbook name: pass it to `runbook_get`.
    pub name: String,
    /// One-line description (empty when the file could not be parsed).
    pub description: String,
    /// What the runbook starts from: `cloudinit`, `iso`, `qcow2`, `none`; absent when unreadable.
    pub image_type: Option<ImageType>,
    /// What it needs: `api` (PVE API) and/or `ssh` (SSH to the nodes).
    pub requires: Vec<Requirement>,
    /// `shipped` (built in) or `user` (a file in `user_dir`).
    pub source: RunbookSource,
    /// True when this user runbook replaces a shipped runbook of the same name.
    pub overrides_shipped: bool,
    /// What is wrong with the file, as `FILE:LINE: REASON`; empty when it is valid. An invalid
    /// runbook cannot be used by `runbook_get` until it is fixed.
    pub problems: Vec<String>,
}

/// The runbooks available.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunbookListReport {
    /// Every runbook (a user runbook replaces a shipped one of the same name), sorted by name.
    pub runbooks: Vec<RunbookSummary>,
    /// The directory user runbooks are read from and `runbook_save` writes to.
    pub user_dir: String,
}

struct Loaded {
    name: String,
    source: RunbookSource,
    /// File path for user runbooks; `shipped:NAME` otherwise (used in problems).
    origin: String,
    text: Result<String, String>,
}

pub(super) fn shipped(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn setup_dir_error(dir: &Path, e: &std::io::Error) -> Error {
    Error::Setup(format!(
        "cannot read the runbook directory {}: {e}; fix its permissions or set paths.runbooks in cluster-config.yaml",
        dir.display()
    ))
}

/// Longest wait for one runbook file; a read that takes longer (a FIFO swapped in after the
/// type check, a stuck network mount) is abandoned and reported.
pub(super) const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Largest runbook file read (a runbook is a page of markdown).
const MAX_RUNBOOK_BYTES: u64 = 1024 * 1024;

/// Reads one user runbook file, refusing anything but a regular file: a symlink is reported,
/// not followed (as `runbook_save` refuses to write through one), and a FIFO, socket or device
/// is never opened (opening a FIFO blocks until a writer appears). The read itself runs on its
/// own thread and is abandoned after [`READ_TIMEOUT`]. `Err` is the reason, for a problem.
pub(super) fn read_user_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(
            "is a symbolic link; links in the user runbook directory are not followed: replace it with the file itself"
                .into(),
        );
    }
    if !kind.is_file() {
        return Err(format!(
            "is not a regular file ({}); skipped: remove it or move it out of the runbook directory",
            describe_kind(&meta)
        ));
    }
    if meta.len() > MAX_RUNBOOK_BYTES {
        return Err(format!(
            "is {} bytes, larger than the {MAX_RUNBOOK_BYTES} a runbook may be; skipped",
            meta.len()
        ));
    }
    let owned = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("runbook-read".into())
        .spawn(move || {
            let _ = tx.send(read_regular(&owned));
        })
        .map_err(|e| format!("cannot read: {e}"))?;
    match rx.recv_timeout(READ_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(format!(
            "could not be read within {} s; skipped (is it a FIFO or on a stuck mount?)",
            READ_TIMEOUT.as_secs()
        )),
    }
}

/// Opens `path` and reads it only if what was opened is still a regular file.
fn read_regular(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "is not a regular file ({}); skipped",
            describe_kind(&meta)
        ));
    }
    let mut text = String::new();
    f.take(MAX_RUNBOOK_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(text)
}

fn describe_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The user's runbooks: every `*.md` not starting with `_` or `.`; a missing dir is empty.
/// Entries that are not regular files are listed with the reason they were skipped.
fn user_runbooks(dir: &Path) -> Result<Vec<Loaded>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(setup_dir_error(dir, &e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| setup_dir_error(dir, &e))?;
        let file_name = entry.file_name();
        let Some(stem) = file_name.to_str().and_then(|f| f.strip_suffix(".md")) else {
            continue;
        };
        if stem.starts_with('_') || stem.starts_with('.') || stem.is_empty() {
            continue;
        }
        let path = entry.path();
        out.push(Loaded {
            name: stem.to_string(),
            source: RunbookSource::User,
            origin: path.display().to_string(),
            text: read_user_file(&path),
        });
    }
    Ok(out)
}

/// The names of the user's runbook files, without reading them.
fn user_runbook_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".md")?.to_string();
            (!name.is_empty() && !name.starts_with(['_', '.'])).then_some(name)
        })
        .collect()
}

/// The effective runbook `name`: the user's file if there is one, else the shipped one.
fn effective(config: &Config, name: &str) -> Result<Loaded, Error> {
    let dir = user_runbook_dir(config);
    if valid_name(name) {
        let path = dir.join(format!("{name}.md"));
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {
                return read_user_file(&path)
                    .map(|text| Loaded {
                        name: name.to_string(),
                        source: RunbookSource::User,
                        origin: path.display().to_string(),
                        text: Ok(text),
                    })
                    .map_err(|reason| {
                        Error::Setup(format!("runbook {name}: {} {reason}", path.display()))
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Setup(format!(
                    "cannot read runbook {}: {e}; fix its permissions or remove it",
                    path.display()
                )));
            }
        }
        if let Some(text) = shipped(name) {
            return Ok(Loaded {
                name: name.to_string(),
                source: RunbookSource::Shipped,
                origin: format!("shipped:{name}"),
                text: Ok(text.to_string()),
            });
        }
    }
    let mut names: Vec<String> = SHIPPED.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(user_runbook_names(&dir));
    names.sort();
    names.dedup();
    Err(Error::NotFound {
        what: format!("runbook {name}"),
        hint: format!(
            "available runbooks: {}; runbook_list describes them",
            names.join(", ")
        ),
    })
}

/// Every runbook, user ones overriding shipped ones, with their problems.
///
/// # Errors
/// [`Error::Setup`] when the user runbook directory exists but cannot be read. One bad file
/// never fails the listing: it is listed with its problems.
pub fn runbook_list(config: &Config, catalog: &ToolCatalog) -> Result<RunbookListReport, Error> {
    let dir = user_runbook_dir(config);
    let mut loaded: Vec<Loaded> = user_runbooks(&dir)?;
    for (name, text) in SHIPPED {
        if !loaded.iter().any(|l| l.name == name) {
            loaded.push(Loaded {
                name: name.to_string(),
                source: RunbookSource::Shipped,
                origin: format!("shipped:{name}"),
                text: Ok(text.to_string()),
            });
        }
    }
    let mut runbooks: Vec<RunbookSummary> = loaded
        .into_iter()
        .map(|l| {
            let overrides_shipped = l.source == RunbookSource::User && shipped(&l.name).is_some();
            let (rb, problems) = match &l.text {
                Ok(text) => check(&l.origin, text, catalog, Some(&l.name)),
                Err(reason) => (
                    Default::default(),
                    vec![Problem {
                        file: l.origin.clone(),
                        line: 1,
                        reason: reason.clone(),
                    }],
                ),
            };
            RunbookSummary {
                name: l.name,
                description: rb.description,
                image_type: rb.image_type,
                requires: rb.requires,
                source: l.source,
                overrides_shipped,
                problems: problems.iter().map(ToString::to_string).collect(),
            }
        })
        .collect();
    runbooks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RunbookListReport {
        runbooks,
        user_dir: dir.display().to_string(),
    })
}

/// Renders runbook `args.name` with `args.parameters` (see [`RunbookGetReport`]).
///
/// # Errors
/// [`Error::NotFound`] for an unknown name (the hint lists the available ones);
/// [`Error::InvalidArgument`] for undeclared parameters; [`Error::Setup`] when the runbook file
/// cannot be read or has problems.
pub fn runbook_get(
    config: &Config,
    catalog: &ToolCatalog,
    args: &RunbookGetArgs,
) -> Result<RunbookGetReport, Error> {
    let l = effective(config, &args.name)?;
    let text = l.text.map_err(Error::Setup)?;
    let (rb, problems) = check(&l.origin, &text, catalog, Some(&l.name));
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Error::Setup(format!(
            "runbook {} has problems and cannot be used until they are fixed (edit the file, or save a corrected version with runbook_save):\n{}",
            l.name,
            list.join("\n")
        )));
    }
    render(&rb, l.source, config, catalog, &args.parameters)
}

/// The effective runbook's markdown and its source, for MCP resources (`runbook://NAME`).
///
/// # Errors
/// [`Error::NotFound`] for an unknown name; [`Error::Setup`] for an unreadable user file.
pub fn runbook_text(config: &Config, name: &str) -> Result<(String, RunbookSource), Error> {
    let l = effective(config, name)?;
    Ok((l.text.map_err(Error::Setup)?, l.source))
}
