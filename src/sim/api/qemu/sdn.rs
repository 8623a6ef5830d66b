//! `SDN.Use` on the bridges (and VLAN tags) a guest's NICs use — PVE 8/9's
//! `PVE::QemuServer::check_bridge_access` -> pve-guest-common `GuestHelpers::check_vnet_access`:
//! for every `netN` with a `bridge`, `SDN.Use` on `/sdn/zones/<zone>/<bridge>/<tag>` for its
//! `tag` and each of its `trunks`, or on `/sdn/zones/<zone>/<bridge>` when it has neither.
//! Plain Linux bridges are in the pseudo-zone `localnetwork` (the simulator has no SDN vnets).
//! `root@pam` is exempt. Called by create (the new NICs), config writes (the new value, and
//! the current value of every NIC changed or deleted) and clone (the source's NICs).

use crate::sim::api::Ctx;
use crate::sim::http::ApiError;

const ZONE: &str = "localnetwork";

/// Checks every `netN` among `entries`.
pub fn check_bridge_access<'a>(
    c: &Ctx,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    if c.authid() == "root@pam" {
        return Ok(());
    }
    let mut nets: Vec<(&str, &str)> = entries.into_iter().filter(|(k, _)| is_net_key(k)).collect();
    nets.sort();
    for (_, value) in nets {
        check_vnet_access(c, value)?;
    }
    Ok(())
}

pub fn is_net_key(k: &str) -> bool {
    k.strip_prefix("net")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn check_vnet_access(c: &Ctx, net: &str) -> Result<(), ApiError> {
    let opt = |name: &str| {
        net.split(',')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
    };
    let Some(bridge) = opt("bridge") else {
        return Ok(());
    };
    let base = format!("/sdn/zones/{ZONE}/{bridge}");
    let tag = opt("tag");
    if let Some(tag) = tag {
        c.require(&format!("{base}/{tag}"), &["SDN.Use"], false)?;
    }
    let trunks = opt("trunks");
    for t in trunks.map(trunk_tags).unwrap_or_default() {
        c.require(&format!("{base}/{t}"), &["SDN.Use"], false)?;
    }
    if tag.is_none() && trunks.is_none() {
        c.require(&base, &["SDN.Use"], false)?;
    }
    Ok(())
}

/// `trunks=10;20-22` -> 10, 20, 21, 22 (sorted, as `get_tags_from_trunk` keys are).
fn trunk_tags(trunks: &str) -> Vec<u32> {
    let mut out = std::collections::BTreeSet::new();
    for part in trunks.split(';').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(4094));
                }
            }
            None => {
                if let Ok(t) = part.parse() {
                    out.insert(t);
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn trunk_ranges_expand() {
        assert_eq!(super::trunk_tags("10;20-22"), vec![10, 20, 21, 22]);
        assert!(super::is_net_key("net0") && !super::is_net_key("nameserver"));
    }
}
