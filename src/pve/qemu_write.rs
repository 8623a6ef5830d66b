//! QEMU guest writes: clone, config changes, power actions, destroy, resize, template
//! conversion, plus the two reads the lifecycle needs around them (pending changes and the
//! guest agent's network interfaces).
//!
//! None of these is retried once it may have been sent (see the module docs of [`super`]).
//! Most answer a [`Upid`]: PVE validates early (an HTTP error comes back at once) and fails
//! later inside the task, so a caller waits for the task with [`super::wait_task`] and handles
//! both kinds of failure (the [`Error`] classifiers work on both).
//!
//! Values are sent form-encoded (percent-encoding every reserved byte, `+` as `%2B`, `;` as
//! `%3B`), because PVE's decoder turns a raw `+` into a space and splits pairs on `;`.

use serde::de::IgnoredAny;

use super::client::{Client, path_segment};
use super::error::Error;
use super::qemu_write_types::{
    AgentInterface, AgentInterfacesReply, CloneQemu, DeleteQemu, QemuPendingItem, ShutdownQemu,
    StartQemu, StopQemu,
};
use super::upid::{SEGMENT, Upid};

/// The lowest vmid PVE accepts.
const MIN_VMID: u32 = 100;

fn vm_path(node: &str, vmid: u32, suffix: &str) -> String {
    format!("/nodes/{}/qemu/{vmid}{suffix}", path_segment(node))
}

/// Percent-encodes cloud-init `sshkeys` the way PVE expects (its `urlencoded` format): every
/// byte except the unreserved `A-Za-z0-9-_.~` becomes `%XX` (space `%20`, newline `%0A`).
///
/// Pass the result to [`Client::update_qemu_config`] / [`Client::set_qemu_config_sync`] as the
/// `sshkeys` value. It is then form-encoded once more on the wire (`%0A` travels as `%250A`),
/// which is right: PVE form-decodes the body first and URL-decodes `sshkeys` itself afterwards.
pub fn encode_sshkeys(keys: &str) -> String {
    percent_encoding::utf8_percent_encode(keys, SEGMENT).to_string()
}

/// `size` of a resize: `\+?\d+(\.\d+)?[KMGT]?`, as PVE's schema pattern.
fn valid_resize_size(size: &str) -> bool {
    let rest = size.strip_prefix('+').unwrap_or(size);
    let rest = rest.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(rest);
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// The form of a `resize` (`disk`, `size`, optional `digest`) once `size` matches PVE's
/// pattern; `noun` (`vm`, `container`) names the guest in the refusal.
pub(super) fn resize_form(
    noun: &str,
    vmid: u32,
    disk: &str,
    size: &str,
    digest: Option<&str>,
) -> Result<Vec<(&'static str, String)>, Error> {
    if !valid_resize_size(size) {
        return Err(Error::invalid(format!(
            "cannot resize {disk} of {noun} {vmid}: size {size:?} is not valid; use +10G to grow by 10 GiB or 40G for an absolute size"
        )));
    }
    let mut params = vec![("disk", disk.to_owned()), ("size", size.to_owned())];
    if let Some(d) = digest {
        params.push(("digest", d.to_owned()));
    }
    Ok(params)
}

/// Builds the form of a config change: `delete` entries merged into one comma-joined `delete`
/// (PVE turns repeated keys into an array and rejects it), `digest` appended, duplicates and
/// empty changes refused. Values are never echoed in errors (they may hold `cipassword`).
pub(super) fn config_form<'a>(
    vmid: u32,
    params: &'a [(String, String)],
    digest: Option<&str>,
) -> Result<Vec<(&'a str, String)>, Error> {
    let mut form: Vec<(&'a str, String)> = Vec::with_capacity(params.len() + 2);
    let mut deletes: Vec<&str> = Vec::new();
    for (key, value) in params {
        let key = key.as_str();
        if key.is_empty() {
            return Err(Error::invalid(format!(
                "config change for vm {vmid} has an empty key; name every option to set"
            )));
        }
        if key == "delete" {
            deletes.extend(value.split(',').map(str::trim).filter(|k| !k.is_empty()));
            continue;
        }
        if form.iter().any(|(k, _)| *k == key) {
            return Err(Error::invalid(format!(
                "config change for vm {vmid} sets {key} twice; pass each option once"
            )));
        }
        form.push((key, value.clone()));
    }
    let changes = form.iter().filter(|(k, _)| *k != "digest").count() + deletes.len();
    if changes == 0 {
        return Err(Error::invalid(format!(
            "config change for vm {vmid} changes nothing; pass at least one option to set or delete"
        )));
    }
    if !deletes.is_empty() {
        form.push(("delete", deletes.join(",")));
    }
    if let Some(d) = digest {
        if form.iter().any(|(k, _)| *k == "digest") {
            return Err(Error::invalid(format!(
                "config change for vm {vmid} carries digest both as an option and as an argument; pass it once"
            )));
        }
        form.push(("digest", d.to_owned()));
    }
    Ok(form)
}

impl Client {
    /// `POST /nodes/{node}/qemu/{vmid}/clone`. The task (`qmclone`, id = the **source**
    /// vmid) runs on `node`; the new VM is locked `clone` until it ends.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `newid` below 100, before sending. Early PVE errors such
    /// as a taken id ([`Error::is_vmid_taken`]) or a locked source
    /// ([`Error::lock_contention`]) come back as [`Error::Api`].
    pub async fn clone_qemu(&self, node: &str, vmid: u32, p: &CloneQemu) -> Result<Upid, Error> {
        if p.newid < MIN_VMID {
            return Err(Error::invalid(format!(
                "cannot clone vm {vmid}: new vmid {} is below {MIN_VMID}; leave vmid out to get the lowest free id in vmid_ranges, or pick one of at least {MIN_VMID}",
                p.newid
            )));
        }
        self.post(&vm_path(node, vmid, "/clone"), &p.to_params())
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/config`: the asynchronous form. PVE answers a UPID
    /// (`qmconfig`), or null when nothing needed a task.
    ///
    /// `params` are `(option, value)` pairs as `qm set` names them. Options to remove go as
    /// `("delete", "net1,ide2")` (several `delete` entries are merged into one, comma-joined).
    /// Values are sent percent-encoded by the form encoder, exactly once: a value PVE expects
    /// URL-encoded itself (`sshkeys`) must be encoded by the caller first with
    /// [`encode_sshkeys`]. `digest` (from [`Client::get_qemu_config`]) makes PVE refuse the
    /// change when the config changed meanwhile.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty change, an empty or repeated option, or a digest
    /// given twice. Values never appear in error messages.
    pub async fn update_qemu_config(
        &self,
        node: &str,
        vmid: u32,
        params: &[(String, String)],
        digest: Option<&str>,
    ) -> Result<Option<Upid>, Error> {
        let form = config_form(vmid, params, digest)?;
        self.post(&vm_path(node, vmid, "/config"), &form).await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/config`: the synchronous form (PVE answers when the
    /// change is written). Same parameters and encoding rules as
    /// [`Client::update_qemu_config`]; prefer that one for disk allocations, which can outlast
    /// the request timeout here.
    pub async fn set_qemu_config_sync(
        &self,
        node: &str,
        vmid: u32,
        params: &[(String, String)],
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let form = config_form(vmid, params, digest)?;
        let _: IgnoredAny = self.put(&vm_path(node, vmid, "/config"), &form).await?;
        Ok(())
    }

    /// `POST /nodes/{node}/qemu`: create a VM (task `qmcreate`). `params` are config keys as
    /// for [`Client::update_qemu_config`] (disks as `STORAGE:SIZE` or
    /// `STORAGE:0,import-from=VOLID`), `vmid` included by this method.
    pub async fn create_qemu(
        &self,
        node: &str,
        vmid: u32,
        params: &[(String, String)],
    ) -> Result<Upid, Error> {
        let mut form: Vec<(&str, String)> = vec![("vmid", vmid.to_string())];
        form.extend(params.iter().map(|(k, v)| (k.as_str(), v.clone())));
        self.post(&format!("/nodes/{}/qemu", path_segment(node)), &form)
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/status/start` (task `qmstart`, or `hastart` for an
    /// HA-managed VM, which only *requests* the start: poll the status afterwards).
    pub async fn start_qemu(&self, node: &str, vmid: u32, p: &StartQemu) -> Result<Upid, Error> {
        self.post(&vm_path(node, vmid, "/status/start"), &p.to_params())
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/status/stop`: a hard stop (task `qmstop`/`hastop`).
    pub async fn stop_qemu(&self, node: &str, vmid: u32, p: &StopQemu) -> Result<Upid, Error> {
        self.post(&vm_path(node, vmid, "/status/stop"), &p.to_params())
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/status/shutdown`: ACPI shutdown (task `qmshutdown`).
    pub async fn shutdown_qemu(
        &self,
        node: &str,
        vmid: u32,
        p: &ShutdownQemu,
    ) -> Result<Upid, Error> {
        self.post(&vm_path(node, vmid, "/status/shutdown"), &p.to_params())
            .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/status/reboot`: shutdown then start, applying pending
    /// changes (task `qmreboot`). `timeout` bounds the shutdown part.
    pub async fn reboot_qemu(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u64>,
    ) -> Result<Upid, Error> {
        let params: Vec<(&str, String)> = timeout
            .map(|t| ("timeout", t.to_string()))
            .into_iter()
            .collect();
        self.post(&vm_path(node, vmid, "/status/reboot"), &params)
            .await
    }

    /// `DELETE /nodes/{node}/qemu/{vmid}` (task `qmdestroy`), parameters in the query string
    /// (PVE answers 501 to a DELETE with a body). Destroys the VM and its disks.
    pub async fn delete_qemu(&self, node: &str, vmid: u32, p: &DeleteQemu) -> Result<Upid, Error> {
        self.delete(&vm_path(node, vmid, ""), &p.to_params()).await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/resize`. `size` is `+10G` (grow by) or `40G` (absolute);
    /// the `+` travels as `%2B`. PVE 8 and 9 answer a UPID (task `resize`; shrinking fails in
    /// the task), older releases null after resizing synchronously.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty disk or a size not matching `+?N[.N][K|M|G|T]`.
    pub async fn resize_qemu_disk(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
        digest: Option<&str>,
    ) -> Result<Option<Upid>, Error> {
        if disk.trim().is_empty() {
            return Err(Error::invalid(format!(
                "cannot resize a disk of vm {vmid}: no disk given; name one such as scsi0"
            )));
        }
        let params = resize_form("vm", vmid, disk, size, digest)?;
        self.put(&vm_path(node, vmid, "/resize"), &params).await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/template`: converts a stopped VM without snapshots
    /// into a template (task `qmtemplate`; older releases answer null).
    pub async fn convert_qemu_to_template(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Option<Upid>, Error> {
        self.post(&vm_path(node, vmid, "/template"), &[]).await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/pending`: every config key with its current value and
    /// the pending value or deletion that applies at the next start or reboot.
    pub async fn get_qemu_pending(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<QemuPendingItem>, Error> {
        self.get(&vm_path(node, vmid, "/pending"), &[]).await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces`: the guest's interfaces
    /// and addresses as qemu-guest-agent reports them.
    ///
    /// # Errors
    /// When the agent does not answer, PVE says 500 "QEMU guest agent is not running", a plain
    /// [`Error::Api`]: test it with [`Error::is_agent_not_running`] (a VM that just booted
    /// often needs a few more seconds).
    pub async fn get_qemu_agent_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<AgentInterface>, Error> {
        let reply: AgentInterfacesReply = self
            .get(&vm_path(node, vmid, "/agent/network-get-interfaces"), &[])
            .await?;
        Ok(reply.result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn sshkeys_encoding_keeps_only_unreserved() {
        assert_eq!(
            encode_sshkeys("ssh-ed25519 AAAA+b/c= me@host\nssh-rsa X~y_z.1"),
            "ssh-ed25519%20AAAA%2Bb%2Fc%3D%20me%40host%0Assh-rsa%20X~y_z.1"
        );
        assert_eq!(encode_sshkeys(""), "");
    }

    #[test]
    fn resize_sizes() {
        for ok in ["+10G", "40G", "1.5T", "+512M", "1024", "+1"] {
            assert!(valid_resize_size(ok), "{ok}");
        }
        for bad in [
            "", "+", "G", "-1G", "10GB", "1.G", ".5G", "10 G", "+10g", "++1G",
        ] {
            assert!(!valid_resize_size(bad), "{bad}");
        }
    }

    #[test]
    fn config_form_merges_deletes_and_appends_digest() -> Result<(), Error> {
        let p = pairs(&[
            ("cores", "4"),
            ("delete", "net1, ide2"),
            ("tags", "a;b"),
            ("delete", "unused0"),
        ]);
        let form = config_form(100, &p, Some("abc"))?;
        assert_eq!(
            form,
            [
                ("cores", "4".to_owned()),
                ("tags", "a;b".to_owned()),
                ("delete", "net1,ide2,unused0".to_owned()),
                ("digest", "abc".to_owned()),
            ]
        );
        let only_delete = pairs(&[("delete", "net1")]);
        assert_eq!(
            config_form(100, &only_delete, None)?,
            [("delete", "net1".to_owned())]
        );
        Ok(())
    }

    #[test]
    fn config_form_refusals_name_the_vm_and_hide_values() {
        let cases = [
            (pairs(&[]), None, "changes nothing"),
            (pairs(&[("delete", " , ")]), None, "changes nothing"),
            (pairs(&[("digest", "x")]), None, "changes nothing"),
            (pairs(&[("", "v")]), None, "empty key"),
            (
                pairs(&[("cipassword", "hunter2"), ("cipassword", "hunter3")]),
                None,
                "sets cipassword twice",
            ),
            (
                pairs(&[("cores", "2"), ("digest", "a")]),
                Some("b"),
                "digest both",
            ),
        ];
        for (params, digest, want) in cases {
            let text = config_form(105, &params, digest)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                text.contains(want) && text.contains("vm 105"),
                "{want}: {text}"
            );
            assert!(!text.contains("hunter"), "{text}");
        }
    }
}
