//! Container creation: `POST /nodes/{node}/lxc` (from a `vztmpl`, or a restore of a
//! `vzdump-lxc-*` archive), clone of a container template, the node's appliance index
//! (`GET /nodes/{node}/aplinfo`) and its download (`POST /nodes/{node}/aplinfo`). The other
//! container calls (config, status, start, resize, interfaces) are in [`super::lxc`].
//!
//! The root password travels only in the form body of the create, never in a path, a query,
//! a log line or Debug output.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::client::{Client, path_segment};
use super::error::Error;
use super::upid::Upid;

fn ct_path(node: &str, vmid: u32, suffix: &str) -> String {
    super::guest_path(super::GuestType::Lxc, node, vmid, suffix)
}

/// `POST /nodes/{node}/lxc` parameters. `options` are config keys as `pct set` names them
/// (`hostname`, `cores`, `memory`, `swap`, `rootfs`, `net0`, `features`, `tags`...).
#[derive(Clone, Default)]
pub struct CreateLxc {
    pub vmid: u32,
    /// A `vztmpl` volid, or a backup archive's volid with `restore`.
    pub ostemplate: String,
    pub storage: Option<String>,
    pub options: Vec<(String, String)>,
    pub unprivileged: Option<bool>,
    /// OpenSSH public keys, one per line.
    pub ssh_public_keys: Option<String>,
    pub password: Option<SecretString>,
    pub start: bool,
    pub restore: bool,
    pub force: bool,
    /// Only with `restore`: new MAC addresses.
    pub unique: Option<bool>,
}

impl std::fmt::Debug for CreateLxc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateLxc")
            .field("vmid", &self.vmid)
            .field("ostemplate", &self.ostemplate)
            .field("storage", &self.storage)
            .field("options", &self.options)
            .field("unprivileged", &self.unprivileged)
            .field(
                "ssh_public_keys",
                &self.ssh_public_keys.as_ref().map(|_| "…"),
            )
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("start", &self.start)
            .field("restore", &self.restore)
            .field("force", &self.force)
            .field("unique", &self.unique)
            .finish()
    }
}

impl CreateLxc {
    fn form(&self) -> Vec<(&str, String)> {
        let mut form: Vec<(&str, String)> = vec![
            ("vmid", self.vmid.to_string()),
            ("ostemplate", self.ostemplate.clone()),
        ];
        if let Some(s) = &self.storage {
            form.push(("storage", s.clone()));
        }
        form.extend(self.options.iter().map(|(k, v)| (k.as_str(), v.clone())));
        if let Some(u) = self.unprivileged {
            form.push(("unprivileged", u8::from(u).to_string()));
        }
        if let Some(k) = &self.ssh_public_keys {
            form.push(("ssh-public-keys", k.clone()));
        }
        if let Some(p) = &self.password {
            form.push(("password", p.expose_secret().to_string()));
        }
        if self.start {
            form.push(("start", "1".into()));
        }
        if self.restore {
            form.push(("restore", "1".into()));
        }
        if self.force {
            form.push(("force", "1".into()));
        }
        if let Some(u) = self.unique {
            form.push(("unique", u8::from(u).to_string()));
        }
        form
    }
}

/// `POST /nodes/{node}/lxc/{vmid}/clone` parameters.
#[derive(Debug, Clone, Default)]
pub struct CloneLxc {
    pub newid: u32,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub target: Option<String>,
    pub full: Option<bool>,
    pub storage: Option<String>,
}

/// One row of `GET /nodes/{node}/aplinfo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appliance {
    pub template: String,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub headline: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
}

impl Client {
    /// `POST /nodes/{node}/lxc` (task `vzcreate`, or `vzrestore` with `restore`).
    pub async fn create_lxc(&self, node: &str, p: &CreateLxc) -> Result<Upid, Error> {
        self.post(&format!("/nodes/{}/lxc", path_segment(node)), &p.form())
            .await
    }

    /// `POST /nodes/{node}/lxc/{vmid}/clone` (task `vzclone`, id = the source vmid).
    pub async fn clone_lxc(&self, node: &str, vmid: u32, p: &CloneLxc) -> Result<Upid, Error> {
        let mut form: Vec<(&str, String)> = vec![("newid", p.newid.to_string())];
        if let Some(h) = &p.hostname {
            form.push(("hostname", h.clone()));
        }
        if let Some(d) = &p.description {
            form.push(("description", d.clone()));
        }
        if let Some(t) = &p.target {
            form.push(("target", t.clone()));
        }
        if let Some(f) = p.full {
            form.push(("full", u8::from(f).to_string()));
        }
        if let Some(s) = &p.storage {
            form.push(("storage", s.clone()));
        }
        self.post(&ct_path(node, vmid, "/clone"), &form).await
    }

    /// `GET /nodes/{node}/aplinfo`: the appliance index `pveam update` fetched on the node.
    pub async fn list_appliances(&self, node: &str) -> Result<Vec<Appliance>, Error> {
        Ok(self
            .get_list(&format!("/nodes/{}/aplinfo", path_segment(node)), &[])
            .await?
            .0)
    }

    /// `POST /nodes/{node}/aplinfo` (task `download`): fetches `template` of the index into
    /// `storage` (content `vztmpl`). Needs Datastore.AllocateTemplate on the storage.
    pub async fn download_appliance(
        &self,
        node: &str,
        storage: &str,
        template: &str,
    ) -> Result<Upid, Error> {
        let form = [
            ("storage", storage.to_string()),
            ("template", template.to_string()),
        ];
        self.post(&format!("/nodes/{}/aplinfo", path_segment(node)), &form)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_stays_out_of_debug_and_only_in_the_form() {
        let p = CreateLxc {
            vmid: 2000,
            ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            password: Some(SecretString::from("hunter2-root".to_string())),
            ..Default::default()
        };
        assert!(!format!("{p:?}").contains("hunter2-root"));
        assert!(
            p.form()
                .iter()
                .any(|(k, v)| *k == "password" && v == "hunter2-root")
        );
    }
}
