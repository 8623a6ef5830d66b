//! Delegation to the fleet's Ansible (the seed's "Ansible Integration"): multi-node
//! orchestration runs the user's own `fleet-infra` playbooks with `ansible-playbook`; direct
//! operations read the inventory so they never fight Ansible-managed state. The server never
//! writes inside the repository: it runs Ansible with the repository as working directory (its
//! `ansible.cfg` honoured) and keeps every file it makes (local temp, retry files: disabled) in
//! a private directory outside it.
//!
//! - [`playbooks`]: the playbooks under the configured directory, read as YAML (never run).
//! - [`inventory`]: the inventory as Ansible resolves it (`ansible-inventory --list`), its
//!   hosts' Proxmox variables, matched to the cluster's guests; a short-lived cache for the
//!   hooks ([`hooks`]) the allocator, `vm_create` and the previews use.
//! - [`run`]: the exact `ansible-playbook` command line, `--list-hosts` for the preview, and
//!   the run itself in its own process group (progress, cancellation, timeout, recap).
//!
//! Output parsing: Ansible's default stdout callback is forced (`ANSIBLE_STDOUT_CALLBACK=
//! ansible.builtin.default`, results as one-line JSON, no colour), so the lines streamed as
//! progress are the ones the user knows from a terminal and the `PLAY RECAP` and `fatal:` lines
//! have one known shape whatever the repository's `ansible.cfg` chose for its display. Other
//! callbacks the repository enables keep running.
//!
//! When `ansible.fleet_infra` is not configured nothing here runs a subprocess: the hooks
//! answer "nothing claimed" at once.

pub mod hooks;
pub mod inventory;
pub mod playbooks;
pub mod process;
pub mod run;

use std::path::{Path, PathBuf};

use crate::config::{Ansible, Config};

use super::Error;

pub use hooks::{InventoryCache, ManagedBy};
pub use inventory::{
    AnsibleInventoryArgs, AnsibleInventoryReport, GuestMatch, InventoryGroup, InventoryHost,
    ansible_inventory,
};
pub use playbooks::{
    AnsiblePlaybooksArgs, AnsiblePlaybooksReport, Play, PlaybookSummary, PromptVar,
    ansible_playbooks,
};
pub use run::{AnsibleRunArgs, AnsibleRunReport, ExtraVar, FailedTask, RecapRow, ansible_run};

/// The integration's settings, resolved: the repository, where the programs and playbooks are.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The fleet-infra checkout.
    pub repo: PathBuf,
    /// `repo/playbook_dir`.
    pub playbook_dir: PathBuf,
    /// The working directory of every Ansible command (where its `ansible.cfg` is read).
    pub work_dir: PathBuf,
    pub ansible_playbook: PathBuf,
    pub ansible_inventory: PathBuf,
    pub inventories: Vec<PathBuf>,
    pub settings: Ansible,
}

impl Setup {
    /// The settings of `config`, or `None` when the integration is not configured.
    pub fn of(config: &Config) -> Option<Setup> {
        let a = &config.ansible;
        let repo = a.fleet_infra.clone()?;
        let playbook_dir = repo.join(&a.playbook_dir);
        let work_dir = work_dir(&repo, &playbook_dir);
        let ansible_playbook = a
            .ansible_playbook
            .clone()
            .unwrap_or_else(|| PathBuf::from("ansible-playbook"));
        let ansible_inventory = match &a.ansible_playbook {
            Some(p) => p.with_file_name("ansible-inventory"),
            None => PathBuf::from("ansible-inventory"),
        };
        Some(Setup {
            repo,
            playbook_dir,
            work_dir,
            ansible_playbook,
            ansible_inventory,
            inventories: a.inventory.clone(),
            settings: a.clone(),
        })
    }

    /// The settings, or the refusal a tool gives when the integration is off.
    ///
    /// # Errors
    /// `Setup` naming the key to add.
    pub fn required(config: &Config) -> Result<Setup, Error> {
        let s = Setup::of(config).ok_or_else(|| {
            Error::Setup(format!(
                "the Ansible integration is not configured: add `ansible: {{ fleet_infra: <your fleet-infra checkout>, inventory: <inventory file> }}` to {}",
                config.path.display()
            ))
        })?;
        if !s.repo.is_dir() {
            return Err(Error::Setup(format!(
                "ansible.fleet_infra {} is not a directory; fix the path in {}",
                s.repo.display(),
                config.path.display()
            )));
        }
        Ok(s)
    }

    /// `-i INV` for each configured inventory.
    pub fn inventory_args(&self) -> Vec<String> {
        self.inventories
            .iter()
            .flat_map(|i| ["-i".to_string(), i.display().to_string()])
            .collect()
    }
}

/// Where Ansible finds the repository's `ansible.cfg`: the repository root, unless only the
/// playbook directory has one (fleet-infra keeps everything under `playbooks/`).
fn work_dir(repo: &Path, playbook_dir: &Path) -> PathBuf {
    if !repo.join("ansible.cfg").is_file() && playbook_dir.join("ansible.cfg").is_file() {
        playbook_dir.to_path_buf()
    } else {
        repo.to_path_buf()
    }
}

/// Shell-quoted, for showing a command line the user can paste.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// One line of a shown command.
pub(crate) fn command_line(program: &Path, args: &[String]) -> String {
    std::iter::once(shell_quote(&program.display().to_string()))
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The doctor's view of the integration: the programs run (their versions) and the inventory
/// parses. `None` when it is not configured.
pub async fn check_items(config: &Config) -> Option<Vec<(String, bool, String, Option<String>)>> {
    let s = Setup::of(config)?;
    let mut out = Vec::new();
    if !s.repo.is_dir() {
        out.push((
            "ansible".into(),
            false,
            format!("fleet_infra {} is not a directory", s.repo.display()),
            Some("fix ansible.fleet_infra in the configuration".into()),
        ));
        return Some(out);
    }
    for (name, program) in [
        ("ansible-playbook", &s.ansible_playbook),
        ("ansible-inventory", &s.ansible_inventory),
    ] {
        match process::version(&s, program).await {
            Ok(v) => out.push((name.into(), true, v, None)),
            Err(e) => out.push((
                name.into(),
                false,
                e,
                Some("install ansible-core (pipx install ansible-core, or your distribution's ansible package), or set ansible.ansible_playbook".into()),
            )),
        }
    }
    match inventory::read(&s).await {
        Ok(inv) => out.push((
            "ansible inventory".into(),
            true,
            format!(
                "{} host(s) in {} group(s) from {}",
                inv.hosts.len(),
                inv.groups.len(),
                if s.inventories.is_empty() {
                    "the repository's ansible.cfg".to_string()
                } else {
                    s.inventories
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            None,
        )),
        Err(e) => out.push((
            "ansible inventory".into(),
            false,
            e,
            Some("run `ansible-inventory --list` with the same -i in the repository to see Ansible's own message".into()),
        )),
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_commands_quote_what_the_shell_would_split() {
        assert_eq!(shell_quote("playbooks/touch.yaml"), "playbooks/touch.yaml");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(r#"{"x":1}"#), r#"'{"x":1}'"#);
        assert_eq!(
            command_line(
                Path::new("ansible-playbook"),
                &["-i".into(), "/r/hosts.yaml".into(), "/r/p.yaml".into()]
            ),
            "ansible-playbook -i /r/hosts.yaml /r/p.yaml"
        );
    }
}
