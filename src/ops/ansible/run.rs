//! `ansible_run`: one `ansible-playbook` run of a playbook of the configured directory.
//!
//! Without `confirm` it answers with the exact command line (the seed's
//! `ansible-playbook -i INVENTORY PLAYBOOK` shape, absolute paths), the hosts each play
//! targets (`ansible-playbook --list-hosts` with the same arguments: nothing runs) and a note
//! on what check mode would not show. With `confirm` it runs that command in the repository
//! (its `ansible.cfg` honoured) with the user's environment, in its own process group: every
//! output line is a progress message, cancellation and the timeout stop the whole group, and
//! the answer carries the parsed `PLAY RECAP` per host, the failed tasks with their messages
//! and the last lines of the log.
//!
//! Arguments never carry secrets: `extra_vars` with secret-like names are refused (use the
//! repository's vault), as the command line is shown, visible in `ps` and audited.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::process::{self, TempDir, capture, command, forward_lines, last_line, stop_group};
use super::{Setup, command_line, playbooks};
use crate::ops::error::quote;
use crate::ops::run::Run;
use crate::ops::{Context, Error};

/// Lines of the log kept for the answer.
const TAIL_LINES: usize = 60;
/// Bounds of the arguments.
const MAX_EXTRA_VARS: usize = 32;
const MAX_EXTRA_VARS_BYTES: usize = 16 * 1024;
/// How long a stopped run's processes get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// Variable names refused in `extra_vars`: secrets belong in the repository's vault.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "passphrase",
    "private_key",
    "api_key",
    "vault",
    "credential",
];

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum ExtraVar {
    Bool(bool),
    Integer(i64),
    Number(f64),
    Text(#[schemars(length(max = 4096))] String),
}

/// `ansible_run` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnsibleRunArgs {
    /// Path relative to the playbook directory, as `ansible_playbooks` lists it.
    #[schemars(length(min = 1, max = 256))]
    pub playbook: String,
    /// `--limit` host pattern, e.g. `talos:!talos-cp-01`.
    #[serde(default)]
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[^@\-\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")
    )]
    pub limit: Option<String>,
    /// `--tags`
    #[serde(default)]
    #[schemars(
        length(max = 32),
        inner(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.:-]+$"))
    )]
    pub tags: Vec<String>,
    /// `--skip-tags`
    #[serde(default)]
    #[schemars(
        length(max = 32),
        inner(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.:-]+$"))
    )]
    pub skip_tags: Vec<String>,
    /// `--extra-vars`, at most 32. Never secrets: they are shown and audited.
    #[serde(default)]
    pub extra_vars: BTreeMap<String, ExtraVar>,
    /// `--check` (tasks with `check_mode: false` still change things; the preview names them).
    #[serde(default)]
    pub check: bool,
    /// `--diff`
    #[serde(default)]
    pub diff: bool,
    /// Seconds; default `ansible.timeout_secs` (1 h).
    #[serde(default)]
    #[schemars(range(min = 1, max = 86_400))]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub confirm: bool,
}

/// One play of `--list-hosts`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ListedPlay {
    pub play: String,
    pub pattern: String,
    pub hosts: Vec<String>,
}

/// One host's line of `PLAY RECAP`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct RecapRow {
    pub host: String,
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

/// A task that failed (or could not reach its host).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct FailedTask {
    pub host: String,
    pub task: String,
    pub message: String,
    pub unreachable: bool,
    /// The playbook ignores this failure (`ignore_errors`).
    pub ignored: bool,
}

/// `ansible_run` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AnsibleRunReport {
    /// The playbook, relative to the playbook directory.
    pub playbook: String,
    /// The exact command line (shell-quoted, absolute paths).
    pub command: String,
    /// Where it runs (the repository; its `ansible.cfg` applies).
    pub working_directory: String,
    pub check: bool,
    /// True only when the playbook was run by this call.
    pub executed: bool,
    /// The hosts the run targets (preview: from `--list-hosts`; run: from the recap).
    pub hosts: Vec<String>,
    /// Preview: each play's pattern and hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plays: Vec<ListedPlay>,
    /// What check mode does not show for this playbook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_mode_note: Option<String>,
    /// Run: `succeeded`, `failed`, `unreachable` or `timed_out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub recap: Vec<RecapRow>,
    pub failed_tasks: Vec<FailedTask>,
    /// The last lines of the run's output.
    pub log_tail: Vec<String>,
    pub message: String,
}

/// The playbook file `rel` names inside the playbook directory.
///
/// # Errors
/// `InvalidArgument` for an absolute path, `..`, a path leaving the directory through a
/// symlink, a missing file or not a YAML file.
pub fn resolve_playbook(setup: &Setup, rel: &str) -> Result<PathBuf, Error> {
    let bad = |why: &str| Error::invalid("playbook", format!("'{}' {why}", quote(rel)));
    let p = Path::new(rel);
    if rel.trim().is_empty() || rel.chars().any(char::is_control) {
        return Err(bad("is not a file name"));
    }
    if p.is_absolute() {
        return Err(bad(
            "is absolute; give a path relative to the playbook directory, as ansible_playbooks lists it",
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad(
            "contains '..'; only playbooks inside the playbook directory can be run",
        ));
    }
    if !(rel.ends_with(".yml") || rel.ends_with(".yaml")) {
        return Err(bad("is not a .yml/.yaml playbook"));
    }
    let root = setup.playbook_dir.canonicalize().map_err(|e| {
        Error::Setup(format!(
            "the playbook directory {}: {e}",
            setup.playbook_dir.display()
        ))
    })?;
    let full = root.join(p);
    let real = full
        .canonicalize()
        .map_err(|_| bad("does not exist; list the playbooks with ansible_playbooks"))?;
    if !real.starts_with(&root) {
        return Err(bad("leads outside the playbook directory (a symlink)"));
    }
    if !real.is_file() {
        return Err(bad("is not a file"));
    }
    Ok(real)
}

fn check_args(a: &AnsibleRunArgs) -> Result<(), Error> {
    if let Some(l) = &a.limit
        && (l.starts_with(['@', '-']) || l.chars().any(char::is_control) || l.len() > 1024)
    {
        return Err(Error::invalid(
            "limit",
            format!("'{}' is not a host pattern (no leading @ or -)", quote(l)),
        ));
    }
    for (arg, list) in [("tags", &a.tags), ("skip_tags", &a.skip_tags)] {
        if list.len() > 32 {
            return Err(Error::invalid(arg, "at most 32 tags"));
        }
        for t in list {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
            if !ok {
                return Err(Error::invalid(
                    arg,
                    format!("'{}' is not a tag (letters, digits, _ . : -)", quote(t)),
                ));
            }
        }
    }
    if a.extra_vars.len() > MAX_EXTRA_VARS {
        return Err(Error::invalid(
            "extra_vars",
            format!("at most {MAX_EXTRA_VARS} variables"),
        ));
    }
    for (k, v) in &a.extra_vars {
        let valid = !k.is_empty()
            && k.len() <= 128
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(Error::invalid(
                "extra_vars",
                format!("'{}' is not an Ansible variable name", quote(k)),
            ));
        }
        let lower = k.to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            return Err(Error::invalid(
                "extra_vars",
                format!(
                    "'{k}' looks like a secret; secrets never go on a command line — keep them in the repository's ansible-vault"
                ),
            ));
        }
        if let ExtraVar::Text(s) = v
            && (s.chars().count() > 4096 || s.contains('\0'))
        {
            return Err(Error::invalid(
                "extra_vars",
                format!("the value of {k} is longer than 4096 characters or has a NUL"),
            ));
        }
    }
    Ok(())
}

/// The arguments of the `ansible-playbook` command (after the program).
fn build_args(setup: &Setup, a: &AnsibleRunArgs, playbook: &Path) -> Result<Vec<String>, Error> {
    let mut args = setup.inventory_args();
    args.extend(setup.settings.extra_args.iter().cloned());
    if a.check {
        args.push("--check".into());
    }
    if a.diff {
        args.push("--diff".into());
    }
    if let Some(l) = &a.limit {
        args.push(format!("--limit={l}"));
    }
    if !a.tags.is_empty() {
        args.push(format!("--tags={}", a.tags.join(",")));
    }
    if !a.skip_tags.is_empty() {
        args.push(format!("--skip-tags={}", a.skip_tags.join(",")));
    }
    if !a.extra_vars.is_empty() {
        let json = serde_json::to_string(&a.extra_vars)
            .map_err(|e| Error::invalid("extra_vars", e.to_string()))?;
        if json.len() > MAX_EXTRA_VARS_BYTES {
            return Err(Error::invalid(
                "extra_vars",
                format!("more than {MAX_EXTRA_VARS_BYTES} bytes as JSON"),
            ));
        }
        args.push(format!("--extra-vars={json}"));
    }
    args.push(playbook.display().to_string());
    Ok(args)
}

/// Parses `--list-hosts` output; pure.
pub fn parse_list_hosts(out: &str) -> Vec<ListedPlay> {
    let mut plays: Vec<ListedPlay> = Vec::new();
    let mut in_hosts = false;
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("play #") {
            in_hosts = false;
            let name = rest
                .split_once(": ")
                .map(|(_, n)| n.split('\t').next().unwrap_or(n).trim().to_string())
                .unwrap_or_default();
            plays.push(ListedPlay {
                play: name,
                pattern: String::new(),
                hosts: Vec::new(),
            });
        } else if let Some(p) = t.strip_prefix("pattern: ") {
            if let Some(last) = plays.last_mut() {
                last.pattern = p
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .replace('\'', "");
            }
        } else if t.starts_with("hosts (") {
            in_hosts = true;
        } else if in_hosts && !t.is_empty() {
            if let Some(last) = plays.last_mut() {
                last.hosts.push(t.to_string());
            }
        } else if t.is_empty() {
            in_hosts = false;
        }
    }
    for p in &mut plays {
        p.hosts.sort();
    }
    plays
}

/// What the run's output says, line by line.
#[derive(Debug, Default)]
pub struct OutputParser {
    task: String,
    in_recap: bool,
    pub recap: Vec<RecapRow>,
    pub failed: Vec<FailedTask>,
    pub tail: VecDeque<String>,
}

impl OutputParser {
    /// Takes one line of output.
    pub fn line(&mut self, line: &str) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.chars().take(1000).collect());
        let t = line.trim_end();
        if let Some(rest) = t
            .strip_prefix("TASK [")
            .or_else(|| t.strip_prefix("RUNNING HANDLER ["))
        {
            self.task = rest
                .rsplit_once(']')
                .map(|(n, _)| n)
                .unwrap_or(rest)
                .to_string();
            self.in_recap = false;
            return;
        }
        if t.starts_with("PLAY RECAP") {
            self.in_recap = true;
            return;
        }
        if t.starts_with("PLAY [") {
            self.in_recap = false;
            return;
        }
        if self.in_recap {
            if let Some(row) = recap_row(t) {
                self.recap.push(row);
            }
            return;
        }
        if t.trim() == "...ignoring" {
            if let Some(last) = self.failed.last_mut() {
                last.ignored = true;
            }
            return;
        }
        for (prefix, unreachable) in [("fatal: [", false), ("failed: [", false)] {
            if let Some(rest) = t.strip_prefix(prefix) {
                let Some((host, after)) = rest.split_once(']') else {
                    continue;
                };
                let host = host.split(" -> ").next().unwrap_or(host).to_string();
                let unreachable = unreachable || after.contains("UNREACHABLE!");
                let message = after
                    .split_once("=> ")
                    .map(|(_, j)| result_message(j))
                    .unwrap_or_default();
                self.failed.push(FailedTask {
                    host,
                    task: self.task.clone(),
                    message,
                    unreachable,
                    ignored: false,
                });
                return;
            }
        }
    }
}

/// The message of a one-line JSON task result (`msg`, else `stderr`, `reason`).
fn result_message(json: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v) => ["msg", "stderr", "module_stderr", "reason", "stdout"]
            .iter()
            .find_map(|k| match v.get(*k) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            })
            .unwrap_or_else(|| json.to_string()),
        Err(_) => json.to_string(),
    };
    text.trim().chars().take(1000).collect()
}

/// `host : ok=1 changed=0 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0`; pure.
pub fn recap_row(line: &str) -> Option<RecapRow> {
    let (host, counts) = line.split_once(" : ")?;
    let mut row = RecapRow {
        host: host.trim().to_string(),
        ..RecapRow::default()
    };
    let mut seen = false;
    for kv in counts.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        let n: u32 = v.parse().ok()?;
        seen = true;
        match k {
            "ok" => row.ok = n,
            "changed" => row.changed = n,
            "unreachable" => row.unreachable = n,
            "failed" => row.failed = n,
            "skipped" => row.skipped = n,
            "rescued" => row.rescued = n,
            "ignored" => row.ignored = n,
            _ => {}
        }
    }
    (seen && !row.host.is_empty()).then_some(row)
}

/// Previews or runs a playbook.
///
/// # Errors
/// Not configured; arguments refused; `--list-hosts` failing (the playbook does not parse,
/// the limit matches nothing); the program not startable; cancellation (the process group was
/// stopped).
pub async fn ansible_run(
    ctx: &Context,
    run: &Run,
    a: &AnsibleRunArgs,
) -> Result<AnsibleRunReport, Error> {
    let setup = Setup::required(&ctx.config)?;
    check_args(a)?;
    let playbook = resolve_playbook(&setup, &a.playbook)?;
    let args = build_args(&setup, a, &playbook)?;
    let shown = command_line(&setup.ansible_playbook, &args);
    let summary = {
        let p = playbook.clone();
        tokio::task::spawn_blocking(move || playbooks::read_playbook(&p))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let Some(summary) = summary else {
        return Err(Error::invalid(
            "playbook",
            format!("{} is not a playbook (no play with `hosts`)", a.playbook),
        ));
    };
    let mut report = AnsibleRunReport {
        playbook: a.playbook.clone(),
        command: shown.clone(),
        working_directory: setup.work_dir.display().to_string(),
        check: a.check,
        executed: false,
        hosts: Vec::new(),
        plays: Vec::new(),
        check_mode_note: summary.check_mode_note.clone(),
        outcome: None,
        exit_code: None,
        recap: Vec::new(),
        failed_tasks: Vec::new(),
        log_tail: Vec::new(),
        message: String::new(),
    };
    if !a.confirm {
        let mut list_args = vec!["--list-hosts".to_string()];
        list_args.extend(args.iter().cloned());
        let c = capture(
            &setup,
            &setup.ansible_playbook,
            &list_args,
            &[],
            Some(&run.cancel),
        )
        .await
        .map_err(Error::Setup)?;
        if c.status != Some(0) {
            return Err(Error::refused(format!(
                "`ansible-playbook --list-hosts` for {} failed (exit {}): {} — fix the playbook, inventory or limit; nothing was run",
                a.playbook,
                c.status.map_or("signal".into(), |s| s.to_string()),
                last_line(if c.stderr.trim().is_empty() {
                    &c.stdout
                } else {
                    &c.stderr
                })
            )));
        }
        report.plays = parse_list_hosts(&c.stdout);
        let mut hosts: Vec<String> = report
            .plays
            .iter()
            .flat_map(|p| p.hosts.iter().cloned())
            .collect();
        hosts.sort();
        hosts.dedup();
        report.hosts = hosts;
        report.message = format!(
            "preview: would run `{shown}` in {} against {} host(s){}; nothing was run — call again with confirm: true{}",
            setup.work_dir.display(),
            report.hosts.len(),
            if a.check { " in check mode" } else { "" },
            if a.check {
                String::new()
            } else {
                " (or first with check: true to see what would change)".into()
            }
        );
        return Ok(report);
    }
    execute(&setup, run, a, &args, report).await
}

async fn execute(
    setup: &Setup,
    run: &Run,
    a: &AnsibleRunArgs,
    args: &[String],
    mut report: AnsibleRunReport,
) -> Result<AnsibleRunReport, Error> {
    let tmp = TempDir::new(&setup.repo).map_err(Error::Setup)?;
    let mut child = command(setup, &setup.ansible_playbook, args, &tmp)
        .spawn()
        .map_err(|e| {
            Error::Setup(format!(
                "`{}` could not be started: {e}; install ansible-core or set ansible.ansible_playbook",
                setup.ansible_playbook.display()
            ))
        })?;
    let pid = child.id().unwrap_or_default();
    run.note(format!(
        "running `{}` (pid {pid}, its own process group)",
        report.command
    ));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(forward_lines(out, "stdout", tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(forward_lines(err, "stderr", tx.clone()));
    }
    drop(tx);
    let timeout = a
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(setup.settings.timeout);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut parser = OutputParser::default();
    let mut timed_out = false;
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some((stream, l)) => {
                    if !l.trim().is_empty() && stream == "stdout" && !l.starts_with('*') {
                        run.note(l.chars().take(500).collect::<String>());
                    }
                    parser.line(&l);
                }
                None => break,
            },
            () = run.cancel.cancelled() => {
                stop_group(&mut child, GRACE).await;
                return Err(Error::Cancelled {
                    what: format!(
                        "ansible-playbook {} (pid {pid}); its whole process group was stopped — hosts may be part-way through the playbook: re-run it, or run it with check: true to see where they are",
                        a.playbook
                    ),
                });
            }
            () = &mut deadline => {
                timed_out = true;
                stop_group(&mut child, GRACE).await;
                break;
            }
        }
    }
    for r in readers {
        r.abort();
    }
    let status = if timed_out {
        None
    } else {
        child.wait().await.ok()
    };
    // Whatever the leader left behind in its group goes too.
    process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
    let code = status.and_then(|s| s.code());
    report.executed = true;
    report.exit_code = code;
    report.recap = parser.recap;
    report.failed_tasks = parser.failed;
    report.log_tail = parser.tail.into_iter().collect();
    report.hosts = report.recap.iter().map(|r| r.host.clone()).collect();
    let failed_hosts: Vec<&str> = report
        .recap
        .iter()
        .filter(|r| r.failed > 0)
        .map(|r| r.host.as_str())
        .collect();
    let unreachable_hosts: Vec<&str> = report
        .recap
        .iter()
        .filter(|r| r.unreachable > 0)
        .map(|r| r.host.as_str())
        .collect();
    let changed: u32 = report.recap.iter().map(|r| r.changed).sum();
    let outcome = if timed_out {
        "timed_out"
    } else if !failed_hosts.is_empty() || (code != Some(0) && unreachable_hosts.is_empty()) {
        "failed"
    } else if !unreachable_hosts.is_empty() {
        "unreachable"
    } else {
        "succeeded"
    };
    report.outcome = Some(outcome.into());
    let mode = if a.check { " (check mode)" } else { "" };
    report.message = match outcome {
        "succeeded" => format!(
            "{}{mode} succeeded on {} host(s), {changed} change(s)",
            a.playbook,
            report.recap.len()
        ),
        "timed_out" => format!(
            "{}{mode} was stopped after {} s (the timeout); its process group is gone; the hosts may be part-way through it — the log tail shows where it was",
            a.playbook,
            timeout.as_secs()
        ),
        "unreachable" => format!(
            "{}{mode}: unreachable host(s) {}; the others finished",
            a.playbook,
            unreachable_hosts.join(", ")
        ),
        _ if failed_hosts.is_empty() => format!(
            "{}{mode} failed (exit {}): {}",
            a.playbook,
            code.map_or("signal".into(), |c| c.to_string()),
            report
                .log_tail
                .iter()
                .rev()
                .find(|l| l.contains("ERROR"))
                .cloned()
                .unwrap_or_else(|| "see the log tail".into())
        ),
        _ => format!(
            "{}{mode} FAILED on {}: {}",
            a.playbook,
            failed_hosts.join(", "),
            report
                .failed_tasks
                .iter()
                .filter(|t| !t.ignored)
                .map(|t| format!("[{}] {}: {}", t.host, t.task, t.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    drop(tmp);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recap_and_failures_are_parsed_from_the_default_output() {
        let out = "PLAY [Disk check] ****\n\nTASK [Check the data disk] ****\nskipping: [w1]\nfatal: [w2]: FAILED! => {\"changed\": false, \"msg\": \"data disk missing on w2\"}\nfatal: [w3 -> localhost]: UNREACHABLE! => {\"msg\": \"ssh down\", \"unreachable\": true}\nfatal: [w4]: FAILED! => {\"msg\": \"meh\"}\n...ignoring\n\nPLAY RECAP ****\nw1                : ok=1    changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0   \nw2                : ok=1    changed=2    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0\n";
        let mut p = OutputParser::default();
        for l in out.lines() {
            p.line(l);
        }
        assert_eq!(p.recap.len(), 2);
        assert_eq!(
            p.recap[1],
            RecapRow {
                host: "w2".into(),
                ok: 1,
                changed: 2,
                failed: 1,
                ..RecapRow::default()
            }
        );
        assert_eq!(p.recap[0].skipped, 1);
        assert_eq!(p.failed.len(), 3);
        assert_eq!(p.failed[0].task, "Check the data disk");
        assert_eq!(p.failed[0].message, "data disk missing on w2");
        assert!(p.failed[1].unreachable && p.failed[1].host == "w3");
        assert!(p.failed[2].ignored && !p.failed[0].ignored);
    }

    #[test]
    fn list_hosts_is_parsed_per_play() {
        let out = "\nplaybook: p.yaml\n\n  play #1 (talos): Mark\tTAGS: []\n    pattern: ['talos']\n    hosts (2):\n      b\n      a\n\n  play #2 (localhost): Other\tTAGS: []\n    pattern: ['localhost']\n    hosts (1):\n      localhost\n";
        let plays = parse_list_hosts(out);
        assert_eq!(plays.len(), 2);
        assert_eq!(plays[0].play, "Mark");
        assert_eq!(plays[0].pattern, "talos");
        assert_eq!(plays[0].hosts, ["a", "b"]);
        assert_eq!(plays[1].hosts, ["localhost"]);
    }

    #[test]
    fn arguments_are_bounded_and_secrets_refused() {
        let base = AnsibleRunArgs {
            playbook: "x.yaml".into(),
            limit: None,
            tags: vec![],
            skip_tags: vec![],
            extra_vars: BTreeMap::new(),
            check: false,
            diff: false,
            timeout_secs: None,
            confirm: false,
        };
        assert!(check_args(&base).is_ok());
        let mut a = base.clone();
        a.limit = Some("@hosts.txt".into());
        assert!(check_args(&a).is_err());
        let mut a = base.clone();
        a.tags = vec!["a b".into()];
        assert!(check_args(&a).is_err());
        let mut a = base.clone();
        a.extra_vars
            .insert("db_password".into(), ExtraVar::Text("x".into()));
        let e = check_args(&a).expect_err("secret refused").to_string();
        assert!(e.contains("vault"), "{e}");
        let mut a = base;
        a.extra_vars.insert("1x".into(), ExtraVar::Bool(true));
        assert!(check_args(&a).is_err());
    }
}
