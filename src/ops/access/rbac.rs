//! The RBAC bootstrap of the design: a PVE-realm service account, the `ClaudeCodeManager` role
//! with the seed's privileges (adjusted to the node's PVE version), its ACL on `/`, and an API
//! token whose secret goes from the SSH channel straight into `pass insert` — never through a
//! log, an output, a printed variable or a file. Runs `pveum` as root over SSH on one node.
//! Every step is idempotent and reported; without `confirm` only the read-only inspection runs.
//! It needs no API token (that is what it creates): only the configuration and SSH.

use std::time::Duration;

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{self, Config};
use crate::ssh::Command;

use crate::ops::Error;
use crate::ops::node_ssh::NodeShell;
use crate::ops::run::Run;

/// The seed's role, as written for PVE 8 (`VM.Monitor` included).
pub const SEED_PRIVILEGES: &[&str] = &[
    "VM.Allocate",
    "VM.Clone",
    "VM.Config.Disk",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Config.Cloudinit",
    "VM.Config.HWType",
    "VM.PowerMgmt",
    "VM.Console",
    "VM.Monitor",
    "VM.Migrate",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
    "VM.Backup",
    "VM.Audit",
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.Audit",
    "Sys.Audit",
    "Sys.Console",
];

/// What the API path of image imports needs on top (`--enable-api-import`).
pub const API_IMPORT_PRIVILEGES: &[&str] = &["Datastore.AllocateTemplate", "Sys.AccessNetwork"];

/// Never granted: the account must not change hosts, reboot nodes, escalate or touch auth.
pub const EXCLUDED_PRIVILEGES: &[&str] = &[
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Permissions.Modify",
    "User.Modify",
    "Realm.Allocate",
    "Realm.AllocateUser",
];

const SHORT: Duration = Duration::from_secs(60);

/// `rbac_bootstrap` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RbacBootstrapArgs {
    /// Any node (access config is cluster-wide).
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: String,
    /// Default `claude-code@pve`.
    #[serde(default)]
    #[schemars(
        length(max = 128),
        regex(pattern = r"^[^\s:/]+@[A-Za-z][A-Za-z0-9._-]*$")
    )]
    pub user: Option<String>,
    /// Default `automation`.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = r"^[A-Za-z][A-Za-z0-9._-]*$"))]
    pub token_name: Option<String>,
    /// Default `ClaudeCodeManager`.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub role: Option<String>,
    /// Replace an existing token (the old secret stops working).
    #[serde(default)]
    pub rotate: bool,
    /// Also grant Datastore.AllocateTemplate and Sys.AccessNetwork (image imports via API, not
    /// SSH).
    #[serde(default)]
    pub enable_api_import: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// One step of the bootstrap.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RbacStep {
    /// `user`, `role`, `acl`, `token`, `pass`.
    pub step: String,
    /// `create`, `update`, `keep`, `set`, `rotate`, `store` (planned or done).
    pub action: String,
    pub detail: String,
}

/// `rbac_bootstrap` output. Never contains the token secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RbacBootstrapReport {
    pub node: String,
    pub pve_version: String,
    pub user: String,
    pub role: String,
    /// The privileges the role gets.
    pub privileges: Vec<String>,
    /// Adjustments to the node's PVE version, e.g. VM.Monitor dropped on PVE 9.
    pub notes: Vec<String>,
    /// The token id (`user@realm!name`); its secret only ever goes to `pass`.
    pub token: String,
    /// Where the token is stored (`credentials.pass_path`).
    pub pass_entry: String,
    pub steps: Vec<RbacStep>,
    pub executed: bool,
    pub message: String,
}

/// The role's privileges for a PVE major version, with notes on what changed.
pub fn role_privileges(pve_major: u32, api_import: bool) -> (Vec<String>, Vec<String>) {
    let mut privs: Vec<String> = SEED_PRIVILEGES.iter().map(|p| p.to_string()).collect();
    let mut notes = Vec::new();
    if pve_major >= 9 {
        privs.retain(|p| p != "VM.Monitor");
        privs.push("VM.GuestAgent.Audit".into());
        notes.push("VM.Monitor does not exist on PVE 9 and was dropped; VM.GuestAgent.Audit takes its place so guest addresses can be read".into());
    }
    privs.push("VM.Config.CDROM".into());
    notes.push("VM.Config.CDROM added (not in the seed's role): PVE checks it for an installer ISO drive, and with VM.Config.Cloudinit for a cloud-init drive".into());
    if pve_major == 0 || pve_major >= 8 {
        privs.push("SDN.Use".into());
        notes.push("SDN.Use added (not in the seed's role): PVE 8 and later check it on the bridge of every NIC a VM is created or cloned with, or whose network changes".into());
    }
    if api_import {
        privs.extend(API_IMPORT_PRIVILEGES.iter().map(|p| p.to_string()));
        notes.push("Datastore.AllocateTemplate and Sys.AccessNetwork added: image imports run through the API".into());
    }
    privs.retain(|p| !EXCLUDED_PRIVILEGES.contains(&p.as_str()));
    privs.sort();
    privs.dedup();
    (privs, notes)
}

fn pveum(words: &[&str]) -> Command {
    Command::new("pveum").args(words.iter().copied())
}

async fn json_of(sh: &NodeShell, run: &Run, node: &str, cmd: Command) -> Result<Value, Error> {
    let out = sh.run(run, node, &cmd, SHORT).await?;
    serde_json::from_str(&out.stdout).map_err(|e| Error::NodeCommand {
        node: node.into(),
        command: cmd.summary(),
        status: "unreadable JSON output".into(),
        stderr: e.to_string(),
    })
}

/// What exists already.
struct Current {
    version: String,
    user_exists: bool,
    role_privs: Option<Vec<String>>,
    acl_set: bool,
    token_exists: bool,
}

async fn inspect(
    sh: &NodeShell,
    run: &Run,
    node: &str,
    user: &str,
    role: &str,
    token_name: &str,
) -> Result<Current, Error> {
    let out = sh
        .run(run, node, &Command::new("pveversion"), SHORT)
        .await?;
    // `pve-manager/9.1.1/42ab3dc1 (running kernel: ...)`
    let version = out
        .stdout
        .split('/')
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    let users = json_of(
        sh,
        run,
        node,
        pveum(&["user", "list", "--output-format", "json"]),
    )
    .await?;
    let user_exists = users
        .as_array()
        .is_some_and(|u| u.iter().any(|x| x["userid"] == user));
    let roles = json_of(
        sh,
        run,
        node,
        pveum(&["role", "list", "--output-format", "json"]),
    )
    .await?;
    let role_privs = roles.as_array().and_then(|r| {
        r.iter().find(|x| x["roleid"] == role).map(|x| {
            let mut p: Vec<String> = x["privs"]
                .as_str()
                .unwrap_or("")
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            p.sort();
            p
        })
    });
    let acl = json_of(
        sh,
        run,
        node,
        pveum(&["acl", "list", "--output-format", "json"]),
    )
    .await?;
    let acl_set = acl.as_array().is_some_and(|a| {
        a.iter()
            .any(|e| e["path"] == "/" && e["ugid"] == user && e["roleid"] == role)
    });
    let token_exists = if user_exists {
        let tokens = json_of(
            sh,
            run,
            node,
            pveum(&["user", "token", "list", user, "--output-format", "json"]),
        )
        .await?;
        tokens
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x["tokenid"] == token_name))
    } else {
        false
    };
    Ok(Current {
        version,
        user_exists,
        role_privs,
        acl_set,
        token_exists,
    })
}

/// Previews or performs the bootstrap.
///
/// # Errors
/// No SSH or no `credentials.pass_path` (refused before anything runs); a failing `pveum`
/// step (named, with what was already done); `pass insert` failing after the token was made
/// (the new token is removed again, so no unrecorded secret stays valid).
pub async fn rbac_bootstrap(
    config: &Config,
    ssh: Option<&NodeShell>,
    run: &Run,
    a: &RbacBootstrapArgs,
) -> Result<RbacBootstrapReport, Error> {
    let user = a.user.clone().unwrap_or_else(|| "claude-code@pve".into());
    let token_name = a.token_name.clone().unwrap_or_else(|| "automation".into());
    let role = a.role.clone().unwrap_or_else(|| "ClaudeCodeManager".into());
    let words_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "@._-".contains(c))
    };
    for (arg, v) in [
        ("user", &user),
        ("token_name", &token_name),
        ("role", &role),
    ] {
        if !words_ok(v) {
            return Err(Error::invalid(
                arg,
                format!("'{v}' is not a valid PVE name"),
            ));
        }
    }
    if !user.contains('@') {
        return Err(Error::invalid(
            "user",
            "give user@realm, e.g. claude-code@pve",
        ));
    }
    let pass_entry = config.credentials.pass_path.clone().ok_or_else(|| {
        Error::refused("credentials.pass_path is not set: the bootstrap stores the new token there with `pass insert`; set it (e.g. annarchy.net/pve/api-token) and run again")
    })?;
    let sh = ssh.ok_or_else(|| {
        Error::refused(format!(
            "the bootstrap runs pveum as root over ssh, and {}",
            crate::ops::node_ssh::unavailable_reason(config)
        ))
    })?;
    let node = a.node.as_str();
    let cur = inspect(sh, run, node, &user, &role, &token_name).await?;
    let major: u32 = cur
        .version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let (privileges, notes) = role_privileges(major, a.enable_api_import);
    let token = format!("{user}!{token_name}");
    let mut steps = Vec::new();
    let step = |s: &str, action: &str, detail: String| RbacStep {
        step: s.into(),
        action: action.into(),
        detail,
    };
    steps.push(if cur.user_exists {
        step("user", "keep", format!("{user} exists"))
    } else {
        step("user", "create", format!("pveum user add {user}"))
    });
    steps.push(match &cur.role_privs {
        Some(p) if *p == privileges => step(
            "role",
            "keep",
            format!("{role} has exactly these privileges"),
        ),
        Some(_) => step(
            "role",
            "update",
            format!(
                "pveum role modify {role} --privs <{} privileges>",
                privileges.len()
            ),
        ),
        None => step(
            "role",
            "create",
            format!(
                "pveum role add {role} --privs <{} privileges>",
                privileges.len()
            ),
        ),
    });
    steps.push(if cur.acl_set {
        step("acl", "keep", format!("{role} is granted to {user} on /"))
    } else {
        step(
            "acl",
            "set",
            format!("pveum acl modify / --roles {role} --users {user}"),
        )
    });
    let new_token = !cur.token_exists || a.rotate;
    steps.push(match (cur.token_exists, a.rotate) {
        (true, false) => step("token", "keep", format!("{token} exists; pass it --rotate to replace it (the entry in pass is left as it is)")),
        (true, true) => step("token", "rotate", format!("remove {token} and create it again (privsep 0); the old secret stops working")),
        (false, _) => step("token", "create", format!("pveum user token add {user} {token_name} --privsep 0")),
    });
    if new_token {
        steps.push(step(
            "pass",
            "store",
            format!("pass insert -m -f {pass_entry} (line 1 the token id, line 2 the secret, from the ssh channel)"),
        ));
    }
    let mut report = RbacBootstrapReport {
        node: node.to_string(),
        pve_version: cur.version.clone(),
        user: user.clone(),
        role: role.clone(),
        privileges: privileges.clone(),
        notes,
        token: token.clone(),
        pass_entry: pass_entry.clone(),
        steps,
        executed: false,
        message: String::new(),
    };
    if !a.confirm {
        report.message =
            "preview only, nothing was changed; call again with confirm: true to bootstrap".into();
        return Ok(report);
    }

    let mut done: Vec<String> = Vec::new();
    let partial = |done: &[String], what: &str, e: Error| Error::Partial {
        done: if done.is_empty() {
            "nothing was changed".into()
        } else {
            format!("done: {}", done.join("; "))
        },
        step: what.into(),
        source: Box::new(e),
        next: "fix the cause and run the bootstrap again (every step is idempotent)".into(),
    };
    let privs = privileges.join(",");
    if !cur.user_exists {
        let c = pveum(&[
            "user",
            "add",
            &user,
            "--comment",
            "proxmox-manager service account",
        ]);
        sh.run(run, node, &c, SHORT)
            .await
            .map_err(|e| partial(&done, "creating the user", e))?;
        done.push(format!("user {user} created"));
    }
    match &cur.role_privs {
        Some(p) if *p == privileges => {}
        Some(_) => {
            let c = pveum(&["role", "modify", &role, "--privs", &privs]);
            sh.run(run, node, &c, SHORT)
                .await
                .map_err(|e| partial(&done, "updating the role", e))?;
            done.push(format!("role {role} updated"));
        }
        None => {
            let c = pveum(&["role", "add", &role, "--privs", &privs]);
            sh.run(run, node, &c, SHORT)
                .await
                .map_err(|e| partial(&done, "creating the role", e))?;
            done.push(format!("role {role} created"));
        }
    }
    if !cur.acl_set {
        let c = pveum(&["acl", "modify", "/", "--roles", &role, "--users", &user]);
        sh.run(run, node, &c, SHORT)
            .await
            .map_err(|e| partial(&done, "setting the ACL", e))?;
        done.push(format!("{role} granted to {user} on /"));
    }
    if new_token {
        if cur.token_exists {
            let c = pveum(&["user", "token", "remove", &user, &token_name]);
            sh.run(run, node, &c, SHORT)
                .await
                .map_err(|e| partial(&done, "removing the old token", e))?;
            done.push(format!("old token {token} removed"));
        }
        let c = pveum(&[
            "user",
            "token",
            "add",
            &user,
            &token_name,
            "--privsep",
            "0",
            "--comment",
            "proxmox-manager",
            "--output-format",
            "json",
        ]);
        let output = sh
            .run_secret(node, &c, SHORT)
            .await
            .map_err(|e| partial(&done, "creating the token", e))?;
        let secret = token_secret(&output).ok_or_else(|| {
            partial(
                &done,
                "reading the new token",
                Error::refused("pveum printed no token value"),
            )
        });
        drop(output);
        let stored = match secret {
            Ok(secret) => {
                let entry = pass_entry.clone();
                let id = token.clone();
                tokio::task::spawn_blocking(move || {
                    config::credentials::pass_insert_token(
                        &entry,
                        &id,
                        &secret,
                        &config::process_env,
                    )
                })
                .await
                .map_err(|e| Error::Setup(format!("pass insert did not finish: {e}")))
                .and_then(|r| r.map_err(|e| Error::Setup(e.to_string())))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            // An unrecorded secret must not stay valid: take the token back.
            let c = pveum(&["user", "token", "remove", &user, &token_name]);
            let undone = sh.run(run, node, &c, SHORT).await;
            let what = match undone {
                Ok(_) => format!("the new token {token} was removed again"),
                Err(u) => format!(
                    "removing the new token {token} again failed too ({u}); remove it with `pveum user token remove {user} {token_name}`"
                ),
            };
            return Err(Error::Partial {
                done: format!(
                    "{}; {what}",
                    if done.is_empty() {
                        "nothing else was changed".into()
                    } else {
                        done.join("; ")
                    }
                ),
                step: format!("storing the token in pass entry {pass_entry}"),
                source: Box::new(e),
                next: "fix pass (gpg key, store) and run the bootstrap again".into(),
            });
        }
        done.push(format!(
            "token {token} created and stored in pass entry {pass_entry}"
        ));
    }
    report.executed = true;
    report.message = if done.is_empty() {
        "everything was in place already; nothing was changed".into()
    } else {
        format!(
            "{}. Restart proxmox-manager (or run `proxmox-manager check`) to use the token",
            done.join("; ")
        )
    };
    Ok(report)
}

/// The `value` of `pveum user token add --output-format json`, kept secret.
fn token_secret(output: &SecretString) -> Option<SecretString> {
    let v: Value = serde_json::from_str(output.expose_secret()).ok()?;
    v.get("value")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_follow_the_version_and_never_include_the_excluded_ones() {
        let (p8, n8) = role_privileges(8, false);
        assert!(p8.contains(&"VM.Monitor".to_string()));
        assert!(!n8.iter().any(|n| n.contains("VM.Monitor")), "{n8:?}");
        let (p9, n9) = role_privileges(9, false);
        assert!(!p9.contains(&"VM.Monitor".to_string()));
        assert!(p9.contains(&"VM.GuestAgent.Audit".to_string()));
        assert!(n9.iter().any(|n| n.contains("VM.Monitor")), "{n9:?}");
        // Beyond the seed: what PVE checks for a cloud-init or ISO drive, and for bridges.
        let (p7, _) = role_privileges(7, false);
        for (list, sdn) in [(&p7, false), (&p8, true), (&p9, true)] {
            assert!(list.contains(&"VM.Config.CDROM".to_string()));
            assert_eq!(list.contains(&"SDN.Use".to_string()), sdn, "{list:?}");
        }
        let (pi, _) = role_privileges(9, true);
        assert!(pi.contains(&"Sys.AccessNetwork".to_string()));
        for list in [&p8, &p9, &pi] {
            assert!(
                list.iter()
                    .all(|p| !EXCLUDED_PRIVILEGES.contains(&p.as_str()))
            );
        }
    }

    #[test]
    fn the_token_value_is_read_from_pveum_json_only() {
        let out = SecretString::from(
            r#"{"full-tokenid":"a@pve!b","info":{"privsep":"0"},"value":"s3cr3t"}"#.to_string(),
        );
        assert_eq!(
            token_secret(&out).map(|s| s.expose_secret().to_string()),
            Some("s3cr3t".into())
        );
        assert!(token_secret(&SecretString::from("garbage".to_string())).is_none());
    }
}
