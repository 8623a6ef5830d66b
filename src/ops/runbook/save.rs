//! `runbook_save`: validate, normalise, preview with a diff, and write atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Config;

use super::render::normalise;
use super::store::shipped;
use super::validate::check;
use super::{Error, ToolCatalog, user_runbook_dir};

/// `runbook_save` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookSaveArgs {
    /// Markdown: YAML frontmatter between `---` lines (name, description, image_type, requires;
    /// name is the file name), `# Title`, `## Parameters` of `- NAME: MEANING` lines (may end
    /// `(default: VALUE)` or `(optional)`), `## Steps` of `N. TEXT` lines ending `` — `tool_name`
    /// `` unless a person does it. Follow a shipped runbook.
    #[schemars(length(max = 262_144))]
    pub content: String,
    /// Write it; else only validate and show the diff.
    #[serde(default)]
    pub confirm: bool,
}

/// What `runbook_save` did or would do.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunbookSaveReport {
    /// Runbook name, from the frontmatter.
    pub name: String,
    /// The file it is (or would be) written to.
    pub path: String,
    /// The canonical text that is (or would be) written.
    pub normalised: String,
    /// Unified diff from the existing user runbook of that name to `normalised`; absent when
    /// there is none yet (empty when nothing changes).
    pub diff: Option<String>,
    /// True when the file was written.
    pub executed: bool,
    /// Problems found (always empty: content with problems is refused).
    pub problems: Vec<String>,
    /// What happened and what to do next.
    pub message: String,
}

/// Validates, normalises and (with `confirm`) writes a user runbook (see [`RunbookSaveReport`]).
///
/// # Errors
/// [`Error::InvalidArgument`] listing every problem of the content; [`Error::Refused`] for the
/// name of a shipped runbook or a target outside the user directory; [`Error::Setup`] when the
/// directory or file cannot be written.
pub fn runbook_save(
    config: &Config,
    catalog: &ToolCatalog,
    args: &RunbookSaveArgs,
) -> Result<RunbookSaveReport, Error> {
    let (rb, problems) = check("<content>", &args.content, catalog, None);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Error::invalid(
            "content",
            format!(
                "{} problem(s); fix them all and call runbook_save again:\n{}",
                list.len(),
                list.join("\n")
            ),
        ));
    }
    let name = rb.name.clone();
    if shipped(&name).is_some() {
        return Err(Error::refused(format!(
            "`{name}` is the name of a shipped runbook; save yours under a different name such as `{name}-local`. (To replace the shipped one anyway, a person can place {name}.md in the user runbook directory by hand.)"
        )));
    }
    let normalised = normalise(&rb);
    let dir = user_runbook_dir(config);
    let path = dir.join(format!("{name}.md"));
    let existing = match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_file() => Some(
            super::store::read_user_file(&path)
                .map_err(|e| Error::Setup(format!("{} {e}", path.display())))?,
        ),
        Ok(_) => {
            return Err(Error::refused(format!(
                "{} exists and is not a regular file (a symlink, directory or FIFO); it is not followed or replaced: remove it by hand first",
                path.display()
            )));
        }
        Err(_) => None,
    };
    let diff = existing.as_deref().map(|old| {
        similar::TextDiff::from_lines(old, normalised.as_str())
            .unified_diff()
            .header(&format!("a/{name}.md"), &format!("b/{name}.md"))
            .to_string()
    });
    let shown = path.display().to_string();
    if !args.confirm {
        if dir.exists() {
            confined(&dir, &path)?;
        }
        return Ok(RunbookSaveReport {
            name,
            path: shown.clone(),
            normalised,
            executed: false,
            problems: Vec::new(),
            message: format!(
                "preview only: nothing written. {} Show the normalised text{} to the user; call runbook_save again with the same content and `confirm: true` to write {shown}.",
                if diff.is_some() {
                    "It replaces the existing user runbook."
                } else {
                    "It is a new runbook."
                },
                if diff.is_some() { " and the diff" } else { "" }
            ),
            diff,
        });
    }
    create_dir(&dir)?;
    confined(&dir, &path)?;
    write_atomic(&dir, &path, &normalised)?;
    Ok(RunbookSaveReport {
        message: format!(
            "wrote {shown}; runbook_get with name `{name}` renders it, runbook_list shows it."
        ),
        name,
        path: shown,
        normalised,
        diff,
        executed: true,
        problems: Vec::new(),
    })
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        Error::Setup(format!(
            "cannot create the runbook directory {}: {e}",
            dir.display()
        ))
    })
}

/// Refuses unless the target's parent resolves to the user directory itself.
fn confined(dir: &Path, path: &Path) -> Result<(), Error> {
    let canon = |p: &Path| -> Result<PathBuf, Error> {
        p.canonicalize()
            .map_err(|e| Error::Setup(format!("cannot resolve {}: {e}", p.display())))
    };
    let parent = path.parent().unwrap_or(dir);
    if canon(parent)? != canon(dir)? {
        return Err(Error::refused(format!(
            "{} is not directly inside the runbook directory {}",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Writes `text` to a temporary file in `dir` (mode 0o644), then renames it over `path`.
fn write_atomic(dir: &Path, path: &Path, text: &str) -> Result<(), Error> {
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let fail = |what: &str, e: std::io::Error| {
        Error::Setup(format!("cannot {what} {}: {e}", path.display()))
    };
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o644);
        }
        let mut f = opts
            .open(&tmp)
            .map_err(|e| fail("create a temporary file for", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| fail("set the mode of", e))?;
        }
        f.write_all(text.as_bytes()).map_err(|e| fail("write", e))?;
        f.sync_all().map_err(|e| fail("sync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| fail("rename into place", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
