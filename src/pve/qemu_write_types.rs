//! Parameters of the QEMU write endpoints and the shapes of their less common answers
//! (pending changes, guest-agent interfaces).
//!
//! Every parameter struct emits only the fields that are set, with PVE's wire names
//! (`forceStop`, `keepActive`, `overrule-shutdown`, `destroy-unreferenced-disks`) and booleans
//! as `0`/`1`, so PVE's defaults apply to everything left `None`.

use serde::{Deserialize, Serialize};

use super::perl;

/// Form or query parameters, in the order they are sent.
type Params = Vec<(&'static str, String)>;

fn push_opt<T: ToString>(params: &mut Params, key: &'static str, value: Option<&T>) {
    if let Some(v) = value {
        params.push((key, v.to_string()));
    }
}

fn push_bool(params: &mut Params, key: &'static str, value: Option<bool>) {
    if let Some(v) = value {
        params.push((key, if v { "1" } else { "0" }.to_owned()));
    }
}

/// `POST /nodes/{node}/qemu/{vmid}/clone`.
#[derive(Debug, Clone, Default)]
pub struct CloneQemu {
    /// The id of the new VM (100 or more); always sent.
    pub newid: u32,
    /// Name of the new VM (a DNS name); PVE's default is `Copy-of-VM-<name>`.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Target node; only when every disk is on shared storage.
    pub target: Option<String>,
    /// Full copy; PVE's default is full for a VM and linked for a template.
    pub full: Option<bool>,
    /// Target storage (full clones only).
    pub storage: Option<String>,
    /// `raw`, `qcow2` or `vmdk` (full clones on file storage only).
    pub format: Option<String>,
    pub pool: Option<String>,
    /// Clone from this snapshot instead of the current state.
    pub snapname: Option<String>,
}

impl CloneQemu {
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("newid", self.newid.to_string())];
        push_opt(&mut p, "name", self.name.as_ref());
        push_opt(&mut p, "description", self.description.as_ref());
        push_opt(&mut p, "target", self.target.as_ref());
        push_bool(&mut p, "full", self.full);
        push_opt(&mut p, "storage", self.storage.as_ref());
        push_opt(&mut p, "format", self.format.as_ref());
        push_opt(&mut p, "pool", self.pool.as_ref());
        push_opt(&mut p, "snapname", self.snapname.as_ref());
        p
    }
}

/// `POST /nodes/{node}/qemu/{vmid}/status/start`.
#[derive(Debug, Clone, Default)]
pub struct StartQemu {
    /// Seconds PVE waits for the start; its default is max(30, memory in GiB).
    pub timeout: Option<u64>,
}

impl StartQemu {
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        push_opt(&mut p, "timeout", self.timeout.as_ref());
        p
    }
}

/// `POST /nodes/{node}/qemu/{vmid}/status/stop` (hard stop: the power plug).
#[derive(Debug, Clone, Default)]
pub struct StopQemu {
    pub timeout: Option<u64>,
    /// Abort running `qmshutdown` tasks first (wire name `overrule-shutdown`).
    pub overrule_shutdown: Option<bool>,
}

impl StopQemu {
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        push_opt(&mut p, "timeout", self.timeout.as_ref());
        push_bool(&mut p, "overrule-shutdown", self.overrule_shutdown);
        p
    }
}

/// `POST /nodes/{node}/qemu/{vmid}/status/shutdown` (ACPI power button).
#[derive(Debug, Clone, Default)]
pub struct ShutdownQemu {
    pub timeout: Option<u64>,
    /// Stop the VM hard when the guest did not shut down in time (wire name `forceStop`).
    pub force_stop: Option<bool>,
    /// Do not deactivate storage volumes (wire name `keepActive`).
    pub keep_active: Option<bool>,
}

impl ShutdownQemu {
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        push_opt(&mut p, "timeout", self.timeout.as_ref());
        push_bool(&mut p, "forceStop", self.force_stop);
        push_bool(&mut p, "keepActive", self.keep_active);
        p
    }
}

/// `DELETE /nodes/{node}/qemu/{vmid}` (parameters go in the query string).
#[derive(Debug, Clone, Default)]
pub struct DeleteQemu {
    /// Also remove the vmid from backup and replication jobs and HA.
    pub purge: Option<bool>,
    /// Also destroy disks with this vmid that the config does not reference
    /// (wire name `destroy-unreferenced-disks`).
    pub destroy_unreferenced_disks: Option<bool>,
    /// Root-only on PVE (a token gets 400): leave it `None`. Sent only when set.
    pub skiplock: Option<bool>,
}

impl DeleteQemu {
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        push_bool(&mut p, "purge", self.purge);
        push_bool(
            &mut p,
            "destroy-unreferenced-disks",
            self.destroy_unreferenced_disks,
        );
        push_bool(&mut p, "skiplock", self.skiplock);
        p
    }
}

/// One row of `GET /nodes/{node}/qemu/{vmid}/pending`: a config key with its current value,
/// its pending value, or a pending deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuPendingItem {
    #[serde(deserialize_with = "perl::string")]
    pub key: String,
    /// The current value (absent for a key that only exists as a pending addition).
    #[serde(default, deserialize_with = "perl::opt_string")]
    pub value: Option<String>,
    /// The value that applies at the next start or reboot.
    #[serde(default, deserialize_with = "perl::opt_string")]
    pub pending: Option<String>,
    /// `1`: deletion pending; `2`: forced deletion pending; absent or `0`: none.
    #[serde(default, deserialize_with = "perl::opt_u32")]
    pub delete: Option<u32>,
}

impl QemuPendingItem {
    /// Whether this key changes at the next start or reboot (new value or deletion).
    pub fn is_pending(&self) -> bool {
        self.pending.is_some() || self.is_pending_delete()
    }
    /// Whether a deletion (plain or forced) is pending.
    pub fn is_pending_delete(&self) -> bool {
        self.delete.is_some_and(|d| d != 0)
    }
}

/// One network interface as the guest agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInterface {
    #[serde(default, deserialize_with = "perl::string_or_empty")]
    pub name: String,
    /// The MAC address, e.g. `bc:24:11:aa:bb:cc` (absent for some virtual interfaces).
    #[serde(
        default,
        rename = "hardware-address",
        deserialize_with = "perl::opt_string"
    )]
    pub hardware_address: Option<String>,
    #[serde(default, rename = "ip-addresses", deserialize_with = "list_or_null")]
    pub ip_addresses: Vec<AgentIpAddress>,
    #[serde(default)]
    pub statistics: Option<AgentInterfaceStatistics>,
}

impl AgentInterface {
    /// `lo` or a loopback address only.
    pub fn is_loopback(&self) -> bool {
        self.name == "lo"
            || (!self.ip_addresses.is_empty()
                && self.ip_addresses.iter().all(AgentIpAddress::is_loopback))
    }
}

/// One address of an [`AgentInterface`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIpAddress {
    /// `ipv4` or `ipv6`.
    #[serde(
        default,
        rename = "ip-address-type",
        deserialize_with = "perl::string_or_empty"
    )]
    pub ip_address_type: String,
    #[serde(
        default,
        rename = "ip-address",
        deserialize_with = "perl::string_or_empty"
    )]
    pub ip_address: String,
    /// Prefix length, e.g. `24`.
    #[serde(default, deserialize_with = "perl::opt_u32")]
    pub prefix: Option<u32>,
}

impl AgentIpAddress {
    pub fn is_ipv4(&self) -> bool {
        self.ip_address_type.eq_ignore_ascii_case("ipv4")
    }
    pub fn is_ipv6(&self) -> bool {
        self.ip_address_type.eq_ignore_ascii_case("ipv6")
    }
    /// `127.0.0.0/8` or `::1`.
    pub fn is_loopback(&self) -> bool {
        self.ip_address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Traffic counters of an [`AgentInterface`] (qemu-ga 2.11+).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInterfaceStatistics {
    #[serde(default, rename = "rx-bytes", deserialize_with = "perl::opt_u64")]
    pub rx_bytes: Option<u64>,
    #[serde(default, rename = "rx-packets", deserialize_with = "perl::opt_u64")]
    pub rx_packets: Option<u64>,
    #[serde(default, rename = "rx-errs", deserialize_with = "perl::opt_u64")]
    pub rx_errs: Option<u64>,
    #[serde(default, rename = "rx-dropped", deserialize_with = "perl::opt_u64")]
    pub rx_dropped: Option<u64>,
    #[serde(default, rename = "tx-bytes", deserialize_with = "perl::opt_u64")]
    pub tx_bytes: Option<u64>,
    #[serde(default, rename = "tx-packets", deserialize_with = "perl::opt_u64")]
    pub tx_packets: Option<u64>,
    #[serde(default, rename = "tx-errs", deserialize_with = "perl::opt_u64")]
    pub tx_errs: Option<u64>,
    #[serde(default, rename = "tx-dropped", deserialize_with = "perl::opt_u64")]
    pub tx_dropped: Option<u64>,
}

/// The `data` of `GET .../agent/network-get-interfaces`: `{"result": [...]}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AgentInterfacesReply {
    #[serde(default, deserialize_with = "list_or_null")]
    pub result: Vec<AgentInterface>,
}

/// A list that PVE or the agent may send as `null`.
fn list_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_fields_with_wire_names_and_01_booleans() {
        assert_eq!(
            CloneQemu {
                newid: 105,
                ..CloneQemu::default()
            }
            .to_params(),
            [("newid", "105".to_owned())]
        );
        let c = CloneQemu {
            newid: 105,
            name: Some("web01".into()),
            full: Some(false),
            pool: Some("lab".into()),
            ..CloneQemu::default()
        };
        assert_eq!(
            c.to_params(),
            [
                ("newid", "105".to_owned()),
                ("name", "web01".to_owned()),
                ("full", "0".to_owned()),
                ("pool", "lab".to_owned()),
            ]
        );
        assert!(StartQemu::default().to_params().is_empty());
        assert!(StopQemu::default().to_params().is_empty());
        assert!(ShutdownQemu::default().to_params().is_empty());
        assert!(DeleteQemu::default().to_params().is_empty());
        let s = ShutdownQemu {
            timeout: Some(60),
            force_stop: Some(true),
            keep_active: Some(false),
        };
        assert_eq!(
            s.to_params(),
            [
                ("timeout", "60".to_owned()),
                ("forceStop", "1".to_owned()),
                ("keepActive", "0".to_owned()),
            ]
        );
        let s = StopQemu {
            timeout: None,
            overrule_shutdown: Some(true),
        };
        assert_eq!(s.to_params(), [("overrule-shutdown", "1".to_owned())]);
        let d = DeleteQemu {
            purge: Some(true),
            destroy_unreferenced_disks: Some(true),
            skiplock: None,
        };
        assert_eq!(
            d.to_params(),
            [
                ("purge", "1".to_owned()),
                ("destroy-unreferenced-disks", "1".to_owned()),
            ]
        );
    }

    #[test]
    fn pending_items_decode_leniently() -> Result<(), serde_json::Error> {
        let items: Vec<QemuPendingItem> = serde_json::from_value(serde_json::json!([
            {"key": "cores", "value": 2, "pending": "4"},
            {"key": "memory", "value": "2048"},
            {"key": "net1", "pending": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "delete": "0"},
            {"key": "ide2", "value": "none,media=cdrom", "delete": 1},
            {"key": "scsi1", "value": "local-lvm:vm-100-disk-1", "delete": "2"}
        ]))?;
        assert_eq!(items[0].value.as_deref(), Some("2"));
        assert!(items[0].is_pending() && !items[0].is_pending_delete());
        assert!(!items[1].is_pending());
        assert!(items[2].is_pending() && !items[2].is_pending_delete());
        assert!(items[3].is_pending_delete());
        assert_eq!(items[4].delete, Some(2));
        Ok(())
    }

    #[test]
    fn agent_interfaces_decode_leniently() -> Result<(), serde_json::Error> {
        let reply: AgentInterfacesReply = serde_json::from_value(serde_json::json!({"result": [
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                              {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": "128"}],
             "statistics": {"rx-bytes": 100, "tx-bytes": "200", "rx-packets": 1}},
            {"name": "eth0", "hardware-address": "bc:24:11:aa:bb:cc",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.0.5", "prefix": 24}]},
            {"name": "docker0", "ip-addresses": null}
        ]}))?;
        let r = reply.result;
        assert_eq!(r.len(), 3);
        assert!(r[0].is_loopback() && !r[1].is_loopback());
        assert_eq!(r[0].ip_addresses[1].prefix, Some(128));
        assert!(r[0].ip_addresses[1].is_ipv6());
        assert_eq!(r[0].statistics.as_ref().and_then(|s| s.tx_bytes), Some(200));
        assert!(r[1].ip_addresses[0].is_ipv4());
        assert_eq!(r[1].ip_addresses[0].ip_address, "10.0.0.5");
        assert!(r[2].ip_addresses.is_empty() && r[2].hardware_address.is_none());
        let empty: AgentInterfacesReply = serde_json::from_value(serde_json::json!({}))?;
        assert!(empty.result.is_empty());
        Ok(())
    }
}
