//! Guest helpers for the write handlers: lookup for writing, PVE's lock checks, the root-only
//! `skiplock`, the config digest check and drive value parsing.

use super::api::WCtx;
use super::http::ApiError;
use super::state::{State, Vm};

/// PVE's missing-config error for `vmid` on `node`.
pub fn missing(node: &str, vmid: u32) -> ApiError {
    ApiError::Server(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

/// The guest for writing, or PVE's missing-config error.
pub fn vm_mut<'a>(st: &'a mut State, node: &str, vmid: u32) -> Result<&'a mut Vm, ApiError> {
    st.vms
        .get_mut(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| missing(node, vmid))
}

/// `skiplock` is for root only (400 like `raise_param_exc`); returns whether it is set.
pub fn skiplock(c: &WCtx) -> Result<bool, ApiError> {
    let set = c.flag("skiplock");
    if set && c.authid() != "root@pam" {
        return Err(ApiError::param(
            "skiplock",
            "Only root may use this option.",
        ));
    }
    Ok(set)
}

/// `check_lock`: 500 "VM is locked (x)" unless skipped.
pub fn check_lock(vm: &Vm, skip: bool) -> Result<(), ApiError> {
    match vm.get("lock") {
        Some(l) if !skip => Err(ApiError::Server(format!("VM is locked ({l})"))),
        _ => Ok(()),
    }
}

/// `assert_if_modified`: the digest must match the current config.
pub fn check_digest(vm: &Vm, digest: Option<&str>) -> Result<(), ApiError> {
    match digest {
        Some(d) if d != vm.digest() => Err(ApiError::Server(
            "checksum mismatch (file change by other user?)".into(),
        )),
        _ => Ok(()),
    }
}

/// A drive value split into its volume and options.
pub struct DriveValue {
    pub vol: String,
    pub opts: Vec<String>,
}

impl DriveValue {
    pub fn parse(v: &str) -> DriveValue {
        let mut parts = v.split(',');
        let first = parts.next().unwrap_or("");
        let vol = first.strip_prefix("file=").unwrap_or(first).to_string();
        DriveValue {
            vol,
            opts: parts.map(str::to_string).collect(),
        }
    }
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.opts
            .iter()
            .find_map(|o| o.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    }
    pub fn set_opt(&mut self, k: &str, v: &str) {
        let kv = format!("{k}={v}");
        match self
            .opts
            .iter_mut()
            .find(|o| o.split_once('=').is_some_and(|(a, _)| a == k))
        {
            Some(o) => *o = kv,
            None => self.opts.push(kv),
        }
    }
    pub fn is_cdrom(&self) -> bool {
        self.opt("media") == Some("cdrom") || self.vol == "none" || self.vol == "cdrom"
    }
    pub fn is_cloudinit(&self) -> bool {
        self.vol.contains("cloudinit")
    }
    pub fn render(&self) -> String {
        std::iter::once(self.vol.clone())
            .chain(self.opts.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// PVE's drive iteration order (`foreach_drive`: ide, sata, scsi, virtio, efidisk, tpmstate;
/// by index within a bus), used where the first offending drive names the error.
pub fn drive_order(key: &str) -> (u8, u32) {
    let digits = key.trim_start_matches(|c: char| !c.is_ascii_digit());
    let bus = &key[..key.len() - digits.len()];
    let rank = match bus {
        "ide" => 0,
        "sata" => 1,
        "scsi" => 2,
        "virtio" => 3,
        "efidisk" => 4,
        _ => 5,
    };
    (rank, digits.parse().unwrap_or(0))
}
