//! `ansible_playbooks`: the playbooks under the configured directory, read as YAML (nothing is
//! run): their plays with `hosts` patterns and tags, the variables they expect (`vars_prompt`,
//! and the ones documented in the leading comment under a `Variables:` line), a one-line
//! purpose (the leading comment's first line), and a note when check mode would not show the
//! whole truth (tasks forced to run, or skipped, in check mode).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use yaml_serde::Value;

use super::Setup;
use super::run::resolve_playbook;
use crate::ops::{Context, Error};

/// Directories under the playbook directory that hold no playbooks.
const NOT_PLAYBOOKS: &[&str] = &[
    "roles",
    "inventories",
    "inventory",
    "group_vars",
    "host_vars",
    "collections",
    "files",
    "templates",
    "vars",
    "tasks",
    "handlers",
    "defaults",
    "meta",
    "library",
    "filter_plugins",
    "module_utils",
    "plugins",
];
/// How deep, how many, how large.
const MAX_DEPTH: usize = 3;
const MAX_FILES: usize = 500;
const MAX_BYTES: u64 = 1024 * 1024;

/// `ansible_playbooks` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnsiblePlaybooksArgs {
    /// Path relative to the playbook directory, e.g. `touch.yaml`.
    #[serde(default)]
    #[schemars(length(min = 1, max = 256))]
    pub playbook: Option<String>,
}

/// One play of a playbook.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Play {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The `hosts` pattern.
    pub hosts: String,
    /// Tags of the play and of its tasks.
    pub tags: Vec<String>,
    /// Tasks written in the play (pre_tasks, tasks, post_tasks, handlers, inside blocks).
    pub tasks: usize,
    /// Roles the play applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A variable a playbook expects.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PromptVar {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `vars_prompt` or `documented` (the leading comment).
    pub source: String,
}

/// One playbook.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PlaybookSummary {
    /// Path relative to the playbook directory: what `ansible_run` takes.
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    pub plays: Vec<Play>,
    /// Playbooks it imports (`import_playbook`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    pub variables: Vec<PromptVar>,
    /// What check mode would not show (tasks that run for real, or are skipped, in check mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_mode_note: Option<String>,
}

/// `ansible_playbooks` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AnsiblePlaybooksReport {
    pub repository: String,
    pub playbook_dir: String,
    pub playbooks: Vec<PlaybookSummary>,
    /// YAML files that could not be read or parsed (path and reason).
    pub problems: Vec<String>,
    pub message: String,
}

/// Lists (or shows one of) the playbooks.
///
/// # Errors
/// Not configured; the directory missing; `playbook` refused or not a playbook.
pub async fn ansible_playbooks(
    ctx: &Context,
    a: &AnsiblePlaybooksArgs,
) -> Result<AnsiblePlaybooksReport, Error> {
    let setup = Setup::required(&ctx.config)?;
    let args = a.clone();
    tokio::task::spawn_blocking(move || list(&setup, &args))
        .await
        .map_err(|e| Error::Setup(format!("listing the playbooks failed: {e}")))?
}

fn list(setup: &Setup, a: &AnsiblePlaybooksArgs) -> Result<AnsiblePlaybooksReport, Error> {
    if !setup.playbook_dir.is_dir() {
        return Err(Error::Setup(format!(
            "the playbook directory {} does not exist; set ansible.playbook_dir (relative to fleet_infra)",
            setup.playbook_dir.display()
        )));
    }
    let root = setup
        .playbook_dir
        .canonicalize()
        .map_err(|e| Error::Setup(format!("{}: {e}", setup.playbook_dir.display())))?;
    let mut problems = Vec::new();
    let mut playbooks = Vec::new();
    let files = match &a.playbook {
        Some(p) => vec![resolve_playbook(setup, p)?],
        None => {
            let mut files = Vec::new();
            walk(&root, &root, 0, &mut files);
            files
        }
    };
    for path in files {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        match read_playbook(&path) {
            Ok(Some(mut pb)) => {
                pb.file = rel;
                playbooks.push(pb);
            }
            Ok(None) if a.playbook.is_some() => {
                return Err(Error::invalid(
                    "playbook",
                    format!("{rel} is YAML but not a playbook (no play with `hosts`)"),
                ));
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("{rel}: {e}")),
        }
    }
    playbooks.sort_by(|x, y| x.file.cmp(&y.file));
    let message = format!(
        "{} playbook(s) in {}{}",
        playbooks.len(),
        setup.playbook_dir.display(),
        if problems.is_empty() {
            String::new()
        } else {
            format!("; {} file(s) could not be read", problems.len())
        }
    );
    Ok(AnsiblePlaybooksReport {
        repository: setup.repo.display().to_string(),
        playbook_dir: setup.playbook_dir.display().to_string(),
        playbooks,
        problems,
        message,
    })
}

/// YAML files under `dir` (no symlinks, no hidden or known non-playbook directories).
fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if name.starts_with('.') || meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            if depth + 1 < MAX_DEPTH && !NOT_PLAYBOOKS.contains(&name.as_str()) {
                walk(root, &e.path(), depth + 1, out);
            }
        } else if (name.ends_with(".yml") || name.ends_with(".yaml")) && meta.len() <= MAX_BYTES {
            out.push(e.path());
        }
    }
    let _ = root;
}

/// A playbook's summary, `None` when the YAML is not a playbook.
///
/// # Errors
/// Unreadable or not YAML.
pub fn read_playbook(path: &Path) -> Result<Option<PlaybookSummary>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_BYTES {
        return Err(format!("larger than {MAX_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    summarize(&text)
}

/// [`read_playbook`] on text; pure.
///
/// # Errors
/// Not YAML.
pub fn summarize(text: &str) -> Result<Option<PlaybookSummary>, String> {
    let doc: Value = yaml_serde::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let Value::Sequence(items) = doc else {
        return Ok(None);
    };
    let mut plays = Vec::new();
    let mut imports = Vec::new();
    let mut variables = Vec::new();
    let mut forced = 0usize;
    let mut skipped = 0usize;
    for item in &items {
        let Value::Mapping(_) = item else {
            return Ok(None);
        };
        if let Some(target) = ["import_playbook", "ansible.builtin.import_playbook"]
            .iter()
            .find_map(|k| item.get(*k).and_then(as_text))
        {
            imports.push(target);
            continue;
        }
        let Some(hosts) = item.get("hosts").map(hosts_text) else {
            return Ok(None);
        };
        let mut tags = BTreeSet::new();
        tags.extend(tag_list(item.get("tags")));
        let mut tasks = 0usize;
        let play_forced = item.get("check_mode") == Some(&Value::Bool(false));
        for section in ["pre_tasks", "tasks", "post_tasks", "handlers"] {
            if let Some(Value::Sequence(ts)) = item.get(section) {
                scan_tasks(
                    ts,
                    &mut tags,
                    &mut tasks,
                    &mut forced,
                    &mut skipped,
                    play_forced,
                );
            }
        }
        let roles = match item.get("roles") {
            Some(Value::Sequence(rs)) => rs
                .iter()
                .filter_map(|r| as_text(r).or_else(|| r.get("role").and_then(as_text)))
                .collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Sequence(prompts)) = item.get("vars_prompt") {
            for p in prompts {
                if let Some(name) = p.get("name").and_then(as_text) {
                    variables.push(PromptVar {
                        name,
                        description: p.get("prompt").and_then(as_text),
                        default: p.get("default").and_then(as_text),
                        source: "vars_prompt".into(),
                    });
                }
            }
        }
        plays.push(Play {
            name: item.get("name").and_then(as_text),
            hosts,
            tags: tags.into_iter().collect(),
            tasks,
            roles,
        });
    }
    if plays.is_empty() && imports.is_empty() {
        return Ok(None);
    }
    let (purpose, documented) = leading_comment(text);
    for d in documented {
        if !variables.iter().any(|v| v.name == d.name) {
            variables.push(d);
        }
    }
    let mut notes = Vec::new();
    if forced > 0 {
        notes.push(format!(
            "{forced} task(s) have check_mode: false and change things for real even with check: true"
        ));
    }
    if skipped > 0 {
        notes.push(format!(
            "{skipped} command/shell/raw/script task(s) are skipped in check mode, so its report is incomplete"
        ));
    }
    if plays.iter().any(|p| !p.roles.is_empty()) || !imports.is_empty() {
        notes.push("roles and imported playbooks were not inspected for check-mode support".into());
    }
    Ok(Some(PlaybookSummary {
        file: String::new(),
        purpose,
        plays,
        imports,
        variables,
        check_mode_note: (!notes.is_empty()).then(|| notes.join("; ")),
    }))
}

const SKIPPED_IN_CHECK: &[&str] = &[
    "command",
    "shell",
    "raw",
    "script",
    "ansible.builtin.command",
    "ansible.builtin.shell",
    "ansible.builtin.raw",
    "ansible.builtin.script",
];

fn scan_tasks(
    ts: &[Value],
    tags: &mut BTreeSet<String>,
    tasks: &mut usize,
    forced: &mut usize,
    skipped: &mut usize,
    inherited_forced: bool,
) {
    for t in ts {
        tags.extend(tag_list(t.get("tags")));
        let this_forced = match t.get("check_mode") {
            Some(Value::Bool(b)) => !b,
            _ => inherited_forced,
        };
        let mut nested = false;
        for key in ["block", "rescue", "always"] {
            if let Some(Value::Sequence(inner)) = t.get(key) {
                nested = true;
                scan_tasks(inner, tags, tasks, forced, skipped, this_forced);
            }
        }
        if nested {
            continue;
        }
        *tasks += 1;
        if this_forced {
            *forced += 1;
        } else if SKIPPED_IN_CHECK.iter().any(|m| t.get(*m).is_some()) {
            *skipped += 1;
        }
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn hosts_text(v: &Value) -> String {
    match v {
        Value::Sequence(s) => s.iter().filter_map(as_text).collect::<Vec<_>>().join(","),
        other => as_text(other).unwrap_or_default(),
    }
}

fn tag_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(s)) => s.iter().filter_map(as_text).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The leading comment's first line (the purpose) and the variables documented under a
/// `Variables:` (or `Vars:`, `Extra vars:`, `Parameters:`) line: `name: description` or
/// `- name: description`.
fn leading_comment(text: &str) -> (Option<String>, Vec<PromptVar>) {
    let mut lines = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if t.is_empty() && lines.is_empty() || t == "---" || t.starts_with("#!") {
            continue;
        }
        match t.strip_prefix('#') {
            Some(c) => lines.push(c.trim().to_string()),
            None => break,
        }
    }
    let purpose = lines
        .iter()
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(300).collect());
    let mut vars = Vec::new();
    let mut in_vars = false;
    for l in &lines {
        let lower = l.to_ascii_lowercase();
        if ["variables:", "vars:", "extra vars:", "parameters:"].contains(&lower.as_str()) {
            in_vars = true;
            continue;
        }
        if !in_vars {
            continue;
        }
        if l.is_empty() {
            in_vars = false;
            continue;
        }
        let item = l.trim_start_matches(['-', '*', ' ']);
        let Some((name, desc)) = item.split_once(':').or_else(|| item.split_once(" - ")) else {
            continue;
        };
        let name = name.trim();
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            vars.push(PromptVar {
                name: name.to_string(),
                description: Some(desc.trim().to_string()).filter(|d| !d.is_empty()),
                default: None,
                source: "documented".into(),
            });
        }
    }
    (purpose, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_tags_prompts_and_documented_variables_are_read() {
        let text = "---\n# Provision the VMs.\n#\n# Variables:\n#   out_dir: where to write\n#   - count: how many\n- name: P\n  hosts: [a, b]\n  tags: web\n  vars_prompt:\n    - name: version\n      prompt: Which version\n      default: \"1.8\"\n  tasks:\n    - block:\n        - debug: {msg: x}\n          tags: [setup]\n        - command: \"true\"\n    - shell: \"true\"\n      check_mode: false\n- import_playbook: other.yaml\n";
        let pb = summarize(text).expect("yaml").expect("a playbook");
        assert_eq!(pb.purpose.as_deref(), Some("Provision the VMs."));
        assert_eq!(pb.plays[0].hosts, "a,b");
        assert_eq!(pb.plays[0].tags, ["setup", "web"]);
        assert_eq!(pb.plays[0].tasks, 3);
        assert_eq!(pb.imports, ["other.yaml"]);
        let names: Vec<&str> = pb.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["version", "out_dir", "count"]);
        assert_eq!(pb.variables[0].default.as_deref(), Some("1.8"));
        let note = pb.check_mode_note.expect("note");
        assert!(note.contains("1 task(s) have check_mode: false"), "{note}");
        assert!(note.contains("1 command/shell"), "{note}");
        assert!(summarize("all:\n  hosts: {}\n").expect("yaml").is_none());
        assert!(
            summarize("- name: x\n  debug: {}\n")
                .expect("yaml")
                .is_none()
        );
    }
}
