//! Guest-agent network information: the addresses of the interface whose MAC is net0's
//! (the first interface the agent lists is often `lo` or a container bridge, not the one the
//! VM is reached by).

use std::time::Instant;

use crate::pve::AgentInterface;

use crate::ops::run::Run;
use crate::ops::{Context, Error};

/// Addresses (IPv4 first, then global IPv6) of the interface with `mac`, or of every
/// non-loopback interface when `mac` is unknown; pure.
pub fn addresses_for(ifaces: &[AgentInterface], mac: Option<&str>) -> Vec<String> {
    let mac = mac.map(str::to_lowercase);
    let chosen: Vec<&AgentInterface> = ifaces
        .iter()
        .filter(|i| i.name != "lo")
        .filter(|i| match &mac {
            Some(m) => {
                i.hardware_address
                    .as_deref()
                    .map(str::to_lowercase)
                    .as_deref()
                    == Some(m.as_str())
            }
            None => true,
        })
        .collect();
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for i in chosen {
        for a in &i.ip_addresses {
            match a.ip_address_type.as_str() {
                "ipv4" if !a.ip_address.starts_with("127.") => v4.push(a.ip_address.clone()),
                "ipv6" if !a.ip_address.starts_with("fe80") && a.ip_address != "::1" => {
                    v6.push(a.ip_address.clone())
                }
                _ => {}
            }
        }
    }
    v4.extend(v6);
    v4
}

/// What the guest agent says, once: `Ok(None)` when the agent is not (yet) running.
///
/// # Errors
/// PVE errors other than "agent not running" (e.g. a missing VM.GuestAgent.Audit privilege).
pub async fn agent_addresses(
    ctx: &Context,
    node: &str,
    vmid: u32,
    mac: Option<&str>,
) -> Result<Option<Vec<String>>, Error> {
    match ctx.client.get_qemu_agent_interfaces(node, vmid).await {
        Ok(ifaces) => Ok(Some(addresses_for(&ifaces, mac))),
        Err(e) if e.is_agent_not_running() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Polls the agent until it reports an address for `mac`, up to the agent deadline.
///
/// # Errors
/// The deadline (naming what to check), a PVE error, cancellation.
pub async fn wait_for_ip(
    ctx: &Context,
    run: &Run,
    node: &str,
    vmid: u32,
    mac: Option<&str>,
) -> Result<Vec<String>, Error> {
    let start = Instant::now();
    let mut delay = ctx.timeouts.poll;
    loop {
        if let Some(ips) = agent_addresses(ctx, node, vmid, mac)
            .await?
            .filter(|ips| !ips.is_empty())
        {
            return Ok(ips);
        }
        if start.elapsed() >= ctx.timeouts.agent {
            return Err(Error::refused(format!(
                "vm {vmid} on {node} reported no address through the guest agent within {:.0} s; check that qemu-guest-agent runs in the guest and that the VM has `agent: 1`",
                ctx.timeouts.agent.as_secs_f64()
            )));
        }
        run.note(format!(
            "vm {vmid}: waiting for the guest agent to report an address"
        ));
        tokio::select! {
            _ = run.cancel.cancelled() => return Err(Error::Pve(crate::pve::Error::Cancelled { upids_running: vec![] })),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(ctx.timeouts.poll_max);
    }
}
