//! Format checks for every string a VM or template tool passes on to PVE, in one place, run
//! before the first call. Each follows PVE's own format (apidata.json): a value that passes here
//! is one PVE accepts as a whole value, never a way to smuggle extra properties (`,key=value`)
//! or lines into a property string or a cloud-init file.
//!
//! The same limits are declared on the tools' argument schemas (the `SCHEMA_*` patterns and
//! `MAX_*` constants below), so a client sees them before calling.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;

use crate::pve::NodeStorage;

use super::Error;
use super::error::quote;

/// `pve-bridge`: `[-_.\w\d]+` (a Linux interface name is at most 15 bytes).
pub const SCHEMA_BRIDGE: &str = r"^[-_.A-Za-z0-9]{1,15}$";
/// `pve-node`: a DNS label.
pub const SCHEMA_NODE: &str = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";
/// `pve-storage-id`.
pub const SCHEMA_STORAGE: &str = r"^[A-Za-z][-_.A-Za-z0-9]{0,62}[A-Za-z0-9]$";
/// `dns-name` for a VM name.
pub const SCHEMA_DNS_NAME: &str = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";
/// A Linux user name, as cloud-init creates it.
pub const SCHEMA_USER: &str = r"^[a-z_][a-z0-9_-]{0,31}$";
/// A disk size: `+10G`, `40G`, `1.5T`.
pub const SCHEMA_SIZE: &str = r"^\+?[0-9]+(\.[0-9]+)?[KMGTkmgt]?$";
/// One line, no control characters (`ipconfig0`, `nameserver`, `searchdomain`).
pub const SCHEMA_LINE: &str = r"^[^\x00-\x1f\x7f]*$";

/// Longest VM name PVE's GUI and DNS accept.
pub const MAX_NAME: usize = 253;
/// PVE's `description` maxLength.
pub const MAX_DESCRIPTION: usize = 8192;
/// Longest `sshkeys` text (PVE stores the url-encoded keys in the config; keep it sane).
pub const MAX_SSH_KEYS: usize = 16 * 1024;
/// Longest one-line option value (ipconfig, nameserver list, search domains).
pub const MAX_LINE: usize = 512;

fn bad(arg: &str, value: &str, want: &str) -> Error {
    Error::invalid(arg, format!("'{}' is not {want}", quote(value)))
}

fn matches_charset(s: &str, first: impl Fn(char) -> bool, rest: impl Fn(char) -> bool) -> bool {
    let mut it = s.chars();
    it.next().is_some_and(first) && it.all(rest)
}

/// A bridge name (`vmbr0`, an SDN vnet): `pve-bridge`, no `,` or `=`.
pub fn bridge(arg: &str, s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(
            arg,
            s,
            "a bridge name (letters, digits, - _ . ; at most 15 characters), e.g. vmbr0",
        ))
    }
}

/// A node name: `pve-node`, a DNS label.
pub fn node(arg: &str, s: &str) -> Result<(), Error> {
    if dns_label(s) {
        Ok(())
    } else {
        Err(bad(
            arg,
            s,
            "a node name (a DNS label: letters, digits and -), e.g. pve01",
        ))
    }
}

/// A storage id: `pve-storage-id`.
pub fn storage(arg: &str, s: &str) -> Result<(), Error> {
    let ok = s.len() >= 2
        && s.len() <= 64
        && matches_charset(
            s,
            |c| c.is_ascii_alphabetic(),
            |c| c.is_ascii_alphanumeric() || "-_.".contains(c),
        )
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(bad(
            arg,
            s,
            "a storage id (a letter, then letters, digits, - _ .), e.g. local-lvm",
        ))
    }
}

fn dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `dns-name`: dot-separated DNS labels.
pub fn is_dns_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= MAX_NAME && n.split('.').all(dns_label)
}

/// A VM name (`dns-name`).
pub fn vm_name(arg: &str, s: &str) -> Result<(), Error> {
    if is_dns_name(s) {
        Ok(())
    } else {
        Err(bad(
            arg,
            s,
            "a valid VM name: use letters, digits, '-' and '.', e.g. web-03",
        ))
    }
}

/// A cloud-init user name (a Linux login name).
pub fn user(arg: &str, s: &str) -> Result<(), Error> {
    let ok = s.len() <= 32
        && matches_charset(
            s,
            |c| c.is_ascii_lowercase() || c == '_',
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-',
        );
    if ok {
        Ok(())
    } else {
        Err(bad(
            arg,
            s,
            "a user name (lowercase letters, digits, _ and -, starting with a letter or _; at most 32), e.g. ada",
        ))
    }
}

/// `ADDRESS/PREFIX` of IPv4 (prefix ≤ 32) or, with `v6`, IPv6 (≤ 128).
pub(crate) fn cidr(s: &str, v6: bool) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    if v6 {
        addr.parse::<Ipv6Addr>().is_ok() && prefix <= 128
    } else {
        addr.parse::<Ipv4Addr>().is_ok() && prefix <= 32
    }
}

/// `pve-qm-ipconfig`: `ip=<CIDR|dhcp>`, `gw=<IPv4>`, `ip6=<CIDR|dhcp|auto>`, `gw6=<IPv6>`,
/// comma-separated, each key once. Anything else (another key, a newline) is refused.
pub fn ipconfig(arg: &str, s: &str) -> Result<(), Error> {
    let mut seen = Vec::new();
    for part in s.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(bad(arg, s, "ip=ADDRESS/PREFIX[,gw=GATEWAY] or dhcp"));
        };
        let ok = match k {
            "ip" => v == "dhcp" || cidr(v, false),
            "gw" => v.parse::<Ipv4Addr>().is_ok(),
            "ip6" => v == "dhcp" || v == "auto" || cidr(v, true),
            "gw6" => v.parse::<Ipv6Addr>().is_ok(),
            _ => false,
        };
        if !ok || seen.contains(&k) {
            return Err(Error::invalid(
                arg,
                format!(
                    "'{}' is not a cloud-init ip config: `{}` must be one of ip=ADDRESS/PREFIX|dhcp, gw=IPv4, ip6=ADDRESS/PREFIX|dhcp|auto, gw6=IPv6, each once",
                    quote(s),
                    quote(part)
                ),
            ));
        }
        seen.push(k);
    }
    Ok(())
}

/// `address-list`: IP addresses separated by spaces, commas or semicolons.
pub fn address_list(arg: &str, s: &str) -> Result<(), Error> {
    let items: Vec<&str> = s.split([' ', ',', ';']).filter(|p| !p.is_empty()).collect();
    if s.len() <= MAX_LINE && !items.is_empty() && items.iter().all(|i| i.parse::<IpAddr>().is_ok())
    {
        Ok(())
    } else {
        Err(bad(
            arg,
            s,
            "a list of IP addresses separated by spaces, e.g. 10.0.0.53 10.0.0.54",
        ))
    }
}

/// Search domains: DNS names separated by spaces, commas or semicolons.
pub fn dns_name_list(arg: &str, s: &str) -> Result<(), Error> {
    let items: Vec<&str> = s.split([' ', ',', ';']).filter(|p| !p.is_empty()).collect();
    if s.len() <= MAX_LINE && !items.is_empty() && items.iter().all(|i| is_dns_name(i)) {
        Ok(())
    } else {
        Err(bad(
            arg,
            s,
            "a list of DNS domains separated by spaces, e.g. lab.example.com",
        ))
    }
}

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One OpenSSH public key line: `TYPE BASE64 [comment]`, the base64 blob decoding to a key of
/// that same type.
fn ssh_key_line(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !KEY_TYPES.contains(&kind) {
        return false;
    }
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(blob) else {
        return false;
    };
    // The blob starts with the key type as an SSH string: u32 length, then the name.
    let Some(len) = bytes
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return false;
    };
    let rest = 4 + len as usize;
    if bytes.get(4..rest) != Some(kind.as_bytes()) {
        return false;
    }
    // An ed25519 key is exactly one 32-byte string after the type; the others carry more.
    match kind {
        "ssh-ed25519" => bytes.len() == rest + 4 + 32,
        _ => bytes.len() > rest + 4,
    }
}

/// Public SSH keys, one per line (blank lines and `#` comments ignored); returns the key lines.
pub fn ssh_keys(arg: &str, s: &str) -> Result<Vec<String>, Error> {
    if s.len() > MAX_SSH_KEYS {
        return Err(Error::invalid(
            arg,
            format!(
                "{} bytes of keys is more than the {MAX_SSH_KEYS} accepted",
                s.len()
            ),
        ));
    }
    let mut keys = Vec::new();
    for (i, line) in s.lines().map(str::trim).enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.chars().any(char::is_control) || !ssh_key_line(line) {
            return Err(Error::invalid(
                arg,
                format!(
                    "line {} ('{}') is not an OpenSSH public key: expected TYPE BASE64 [comment] with TYPE one of {}",
                    i + 1,
                    quote(line),
                    KEY_TYPES.join(", ")
                ),
            ));
        }
        keys.push(line.to_string());
    }
    Ok(keys)
}

/// Free text PVE keeps in the config (`description`): bounded length.
pub fn description(arg: &str, s: &str) -> Result<(), Error> {
    if s.len() <= MAX_DESCRIPTION {
        Ok(())
    } else {
        Err(Error::invalid(
            arg,
            format!(
                "{} bytes is longer than PVE's {MAX_DESCRIPTION}-byte limit",
                s.len()
            ),
        ))
    }
}

/// Refuses a storage the node does not have, has disabled or inactive, or that cannot hold
/// VM disks.
pub(crate) fn vm_storage(node_storage: &[NodeStorage], s: &str, node: &str) -> Result<(), Error> {
    let Some(st) = node_storage.iter().find(|n| n.storage == s) else {
        return Err(Error::NotFound {
            what: format!("storage {} on node {node}", quote(s)),
            hint: format!(
                "storages there: {}",
                node_storage
                    .iter()
                    .map(|c| c.storage.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    if st.enabled == Some(false) || st.active == Some(false) {
        return Err(Error::refused(format!(
            "storage {s} is {} on node {node}; pick an enabled, active storage",
            if st.enabled == Some(false) {
                "disabled"
            } else {
                "not active"
            }
        )));
    }
    if !st.content_list().iter().any(|c| c == "images") {
        return Err(Error::refused(format!(
            "storage {s} on node {node} does not hold VM disks (content {}); pick one with content `images`",
            st.content.clone().unwrap_or_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILRSnqBQw+QuXgQ2K9uvP5qlH4ipIsfZqXVUImG3kSLq ada@lab";

    #[test]
    fn bridges_refuse_property_injection() {
        bridge("bridge", "vmbr0").expect("plain");
        bridge("bridge", "vnet_lab.1").expect("vnet");
        for b in [
            "vmbr0,firewall=0,link_down=1",
            "vmbr0\n",
            "",
            "a=b",
            "averyveryverylongbridge",
        ] {
            assert!(bridge("bridge", b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn nodes_and_storages() {
        node("node", "pve01").expect("node");
        assert!(node("node", "pve01;rm").is_err());
        assert!(node("node", "-pve").is_err());
        storage("storage", "local-lvm").expect("storage");
        assert!(storage("storage", "local,shared=1").is_err());
        assert!(storage("storage", "1local").is_err());
        assert!(storage("storage", "x").is_err());
    }

    #[test]
    fn cloud_init_values_are_single_values() {
        user("ci_user", "ada").expect("user");
        assert!(user("ci_user", "ada\nroot").is_err());
        assert!(user("ci_user", "Ada").is_err());
        ipconfig("ipconfig0", "ip=dhcp").expect("dhcp");
        ipconfig("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.1").expect("static");
        ipconfig("ipconfig0", "ip6=auto").expect("v6");
        ipconfig("ipconfig0", "ip=10.0.0.5/24,ip6=fd00::5/64,gw6=fd00::1").expect("dual");
        for bad in [
            "ip=10.0.0.5/24\nruncmd",
            "ip=10.0.0.5/24,gw=10.0.0.1,foo=1",
            "ip=10.0.0.5",
            "ip=10.0.0.5/24,ip=10.0.0.6/24",
            "gw=fd00::1",
        ] {
            assert!(ipconfig("ipconfig0", bad).is_err(), "{bad:?}");
        }
        address_list("nameserver", "10.0.0.53 1.1.1.1").expect("ns");
        address_list("nameserver", "fd00::53,10.0.0.53").expect("ns6");
        assert!(address_list("nameserver", "10.0.0.53\nsearch evil").is_err());
        assert!(address_list("nameserver", "").is_err());
        dns_name_list("searchdomain", "lab.example.com example.com").expect("sd");
        assert!(dns_name_list("searchdomain", "lab\nnameserver 1.2.3.4").is_err());
    }

    #[test]
    fn ssh_keys_must_be_keys() {
        assert_eq!(
            ssh_keys("ssh_keys", &format!("# mine\n{ED25519}\n\n")).expect("key"),
            vec![ED25519.to_string()]
        );
        for bad in [
            "hello",
            "ssh-ed25519 notbase64!!",
            // valid base64, wrong inner type
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAILRSnqBQw+QuXgQ2K9uvP5qlH4ipIsfZqXVUImG3kSLq",
            // truncated key material
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbq test@example",
            "ssh-ed25519",
        ] {
            assert!(ssh_keys("ssh_keys", bad).is_err(), "{bad:?}");
        }
        let e = ssh_keys("ssh_keys", &"y".repeat(20_000)).expect_err("too long");
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn names_and_descriptions() {
        vm_name("name", "web-03.lab").expect("name");
        assert!(vm_name("name", "web_03").is_err());
        assert!(vm_name("name", "-web").is_err());
        let e = vm_name("name", &"é".repeat(1 << 20)).expect_err("long");
        assert!(
            e.to_string().len() < 300,
            "error quotes a bounded prefix: {e}"
        );
        description("description", "hello").expect("short");
        assert!(description("description", &"x".repeat(MAX_DESCRIPTION + 1)).is_err());
    }

    #[test]
    fn schema_patterns_agree_with_the_checks() {
        let re = |p: &str| regex::Regex::new(p).expect("pattern compiles");
        for (p, good, badv) in [
            (SCHEMA_BRIDGE, "vmbr0", "vmbr0,firewall=0"),
            (SCHEMA_NODE, "pve01", "pve01;x"),
            (SCHEMA_STORAGE, "local-lvm", "local lvm"),
            (SCHEMA_DNS_NAME, "web-03.lab", "web_03"),
            (SCHEMA_USER, "ada", "ada\nroot"),
            (SCHEMA_SIZE, "+10G", "10G,x"),
            (SCHEMA_LINE, "ip=dhcp", "ip=dhcp\nx"),
        ] {
            assert!(re(p).is_match(good), "{p} {good}");
            assert!(!re(p).is_match(badv), "{p} {badv}");
        }
    }
}
