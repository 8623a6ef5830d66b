//! Where profiles come from: the shipped examples (embedded) and the user's directory
//! (`paths.clusters`, default `~/.config/proxmox-manager/clusters/`); a user profile of the same
//! name replaces a shipped one. Also the profile's state directory (Talos secrets, configs,
//! kubeconfig, per-run logs), which lives beside the audit log.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::profile::{ClusterProfile, ProfileProblem, parse_profile, profile_files};
use crate::config::{self, Config};
use crate::ops::Error;

/// The shipped examples, `(name, yaml)`.
pub(crate) const SHIPPED: [(&str, &str); 2] = [
    (
        "talos-staging",
        include_str!("../../../clusters/talos-staging.yaml"),
    ),
    ("k3s-lab", include_str!("../../../clusters/k3s-lab.yaml")),
];

/// Where a profile comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileSource {
    /// Built into the server (the `clusters/` examples); not counted in the isolation rules.
    Shipped,
    /// A file in the user's clusters directory.
    User,
}

/// One profile file, parsed or not.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub source: ProfileSource,
    pub origin: String,
    pub profile: Result<ClusterProfile, Vec<ProfileProblem>>,
}

/// Where user profiles live: `paths.clusters`, else `$XDG_CONFIG_HOME/proxmox-manager/clusters`,
/// else `~/.config/proxmox-manager/clusters`.
pub fn user_profile_dir(config: &Config) -> PathBuf {
    if let Some(dir) = &config.paths.clusters {
        return dir.clone();
    }
    let env = &config::process_env;
    let base = env("XDG_CONFIG_HOME")
        .filter(|s| Path::new(s).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("proxmox-manager").join("clusters")
}

/// Where the server keeps a profile's local state: beside the audit log
/// (`$XDG_STATE_HOME/proxmox-manager/profiles/NAME`, `~/.local/state/...`).
pub fn state_root(config: &Config) -> PathBuf {
    if let Some(audit) = &config.audit_log
        && let Some(parent) = audit.parent()
    {
        return parent.join("profiles");
    }
    let env = &config::process_env;
    let base = env("XDG_STATE_HOME")
        .filter(|s| Path::new(s).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(|| PathBuf::from(".local/state"));
    base.join("proxmox-manager").join("profiles")
}

/// Every profile: the user's files, then the shipped examples no user file replaces; sorted by
/// name.
pub fn load_all(config: &Config) -> Vec<Loaded> {
    let dir = user_profile_dir(config);
    let mut out: Vec<Loaded> = profile_files(&dir)
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            Loaded {
                name,
                source: ProfileSource::User,
                origin: path.display().to_string(),
                profile: config::profile::load_profile(&path),
            }
        })
        .collect();
    for (name, text) in SHIPPED {
        if out.iter().any(|l| l.name == name) {
            continue;
        }
        let origin = format!("shipped:clusters/{name}.yaml");
        out.push(Loaded {
            name: name.to_string(),
            source: ProfileSource::Shipped,
            origin: origin.clone(),
            profile: parse_profile(text, &origin, name),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The profile called `name`, parsed.
///
/// # Errors
/// No such profile (with the closest names), or a file with problems (each as
/// `FILE:LINE: REASON`).
pub fn find(config: &Config, name: &str) -> Result<(ClusterProfile, ProfileSource), Error> {
    let all = load_all(config);
    let Some(l) = all.iter().find(|l| l.name == name) else {
        let names: Vec<String> = all.iter().map(|l| l.name.clone()).collect();
        let near = names
            .iter()
            .find(|n| n.contains(name) || name.contains(n.as_str()))
            .map(|n| format!("did you mean `{n}`? "))
            .unwrap_or_default();
        return Err(Error::NotFound {
            what: format!("cluster profile {name}"),
            hint: format!(
                "{near}the profiles are {} (from {} and the shipped examples); profile_list shows them",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
                user_profile_dir(config).display()
            ),
        });
    };
    match &l.profile {
        Ok(p) => Ok((p.clone(), l.source)),
        Err(problems) => Err(Error::invalid(
            "profile",
            format!(
                "{name} has problems; fix the file and call again: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
    }
}

/// Creates `dir` (and parents) readable by the owner only.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes a file the owner's only (0600).
pub(crate) fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let _ = path;
    Ok(())
}

/// Writes `text` to a new or truncated 0600 file.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    private_file(path)
}
