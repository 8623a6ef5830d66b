//! Reading the snapshot from PVE: the only I/O of the planning layer, bounded so a read of a
//! big cluster does not flood its API.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{ClusterSnapshot, GuestDisk, GuestKind};
use crate::ops::{Context, Error};

impl ClusterSnapshot {
    /// Reads the cluster: one `/cluster/resources`, plus `/nodes/{node}/status` for online
    /// nodes whose row lacks sizes (at most `limits.max_parallel` at a time).
    ///
    /// # Errors
    /// When `/cluster/resources` cannot be read. A node status that fails leaves that node's
    /// sizes as `/cluster/resources` gave them.
    pub async fn read(ctx: &Context) -> Result<ClusterSnapshot, Error> {
        let rows = ctx.client.get_cluster_resources(None).await?;
        let mut snap = ClusterSnapshot::from_resources(&rows);
        for n in &mut snap.nodes {
            n.reserved_memory = ctx.config.placement.host_reserve;
        }
        let missing: Vec<String> = snap
            .nodes
            .iter()
            .filter(|n| n.online && (n.cpus == 0 || n.maxmem == 0))
            .map(|n| n.name.clone())
            .collect();
        let statuses = bounded(ctx, missing, |ctx, node| async move {
            let st = ctx.client.get_node_status(&node).await;
            (node, st)
        })
        .await;
        for (node, st) in statuses {
            let (Ok(st), Some(n)) = (st, snap.nodes.iter_mut().find(|n| n.name == node)) else {
                continue;
            };
            if let Some(mem) = &st.memory {
                n.maxmem = mem.total.unwrap_or(n.maxmem);
                n.mem_used = mem.used.unwrap_or(n.mem_used);
            }
            if let Some(cpus) = st.cpuinfo.as_ref().and_then(|c| c.cpus) {
                n.cpus = cpus;
            }
            n.cpu_used = st.cpu.unwrap_or(n.cpu_used);
        }
        Ok(snap)
    }

    /// Fills `disks` and `local_resources` of every guest on `node` from its config (at most
    /// `limits.max_parallel` requests at a time). A config that cannot be read leaves `disks`
    /// as `None`, which planners report as "disks unknown" rather than guessing.
    pub async fn read_guest_disks(&mut self, ctx: &Context, node: &str) {
        let vmids: Vec<u32> = self.guests_on(node).map(|g| g.vmid).collect();
        self.read_disks_of(ctx, &vmids).await;
    }

    /// Fills `disks` and `local_resources` of the guests `vmids` (those in the snapshot) from
    /// their configs, like [`ClusterSnapshot::read_guest_disks`]: at most
    /// `limits.max_parallel` requests at a time; an unreadable config leaves `disks` `None`.
    pub async fn read_disks_of(&mut self, ctx: &Context, vmids: &[u32]) {
        let wanted: std::collections::BTreeSet<u32> = vmids.iter().copied().collect();
        let guests: Vec<(String, u32, GuestKind)> = self
            .guests
            .iter()
            .filter(|g| wanted.contains(&g.vmid))
            .map(|g| (g.node.clone(), g.vmid, g.kind))
            .collect();
        let configs = bounded(ctx, guests, |ctx, (node, vmid, kind)| async move {
            let path = config_path(&node, vmid, kind);
            let config = ctx
                .client
                .get::<BTreeMap<String, serde_json::Value>>(&path, &[])
                .await;
            (vmid, config)
        })
        .await;
        for (vmid, config) in configs {
            let (Ok(config), Some(g)) = (config, self.guests.iter_mut().find(|g| g.vmid == vmid))
            else {
                continue;
            };
            let (disks, local) = disks_of_config(&config);
            g.disks = Some(disks);
            g.local_resources = local;
        }
    }

    /// Fills `disks` and `local_resources` of guest `vmid` from its config.
    ///
    /// # Errors
    /// When its config cannot be read (a move without knowing its disks could strand one).
    pub async fn read_guest_config(&mut self, ctx: &Context, vmid: u32) -> Result<(), Error> {
        let Some(g) = self.guests.iter_mut().find(|g| g.vmid == vmid) else {
            return Ok(());
        };
        let config: BTreeMap<String, serde_json::Value> = ctx
            .client
            .get(&config_path(&g.node, vmid, g.kind), &[])
            .await?;
        let (disks, local) = disks_of_config(&config);
        g.disks = Some(disks);
        g.local_resources = local;
        Ok(())
    }
}

/// `/nodes/{node}/{qemu|lxc}/{vmid}/config`.
fn config_path(node: &str, vmid: u32, kind: GuestKind) -> String {
    let kind = match kind {
        GuestKind::Qemu => "qemu",
        GuestKind::Lxc => "lxc",
    };
    format!(
        "/nodes/{}/{kind}/{vmid}/config",
        crate::pve::path_segment(node)
    )
}

/// Runs `f` over `items` with at most `limits.max_parallel` in flight, results in input order.
async fn bounded<I, T, F, Fut>(ctx: &Context, items: Vec<I>, f: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(Context, I) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    // One request per node or guest is cheap for PVE, but hundreds at once are not: the
    // semaphore caps what this read adds to the cluster's API load at the configured limit.
    let permits = Arc::new(Semaphore::new(
        ctx.config.limits.max_parallel.max(1) as usize
    ));
    let mut set = JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let permits = Arc::clone(&permits);
        let fut = f(ctx.clone(), item);
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, fut.await)
        });
    }
    let mut out: Vec<(usize, T)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(pair) = joined {
            out.push(pair);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

/// Disks and node-bound devices of a qemu or lxc config.
pub fn disks_of_config(
    config: &BTreeMap<String, serde_json::Value>,
) -> (Vec<GuestDisk>, Vec<String>) {
    const DISK_PREFIXES: [&str; 9] = [
        "ide", "sata", "scsi", "virtio", "efidisk", "tpmstate", "unused", "mp", "rootfs",
    ];
    const LOCAL_PREFIXES: [&str; 3] = ["hostpci", "usb", "dev"];
    let numbered = |key: &str, prefix: &str| {
        key.strip_prefix(prefix).is_some_and(|n| {
            n.bytes().all(|b| b.is_ascii_digit()) && (prefix == "rootfs") == n.is_empty()
        })
    };
    let mut disks = Vec::new();
    let mut local = Vec::new();
    for (key, value) in config {
        let Some(text) = value.as_str() else { continue };
        if LOCAL_PREFIXES.iter().any(|p| numbered(key, p)) {
            local.push(key.clone());
            continue;
        }
        if !DISK_PREFIXES.iter().any(|p| numbered(key, p)) {
            continue;
        }
        let mut parts = text.split(',');
        let volume = parts.next().unwrap_or("").trim();
        // A container's bind or device mount point (`mp0: /srv/media,mp=/media`) ties it to
        // this node unless marked `shared=1`: PVE refuses to migrate it ("cannot migrate local
        // bind mount point").
        if volume.starts_with('/')
            && !text
                .split(',')
                .any(|p| matches!(p.trim(), "shared=1" | "shared=true"))
        {
            local.push(key.clone());
            continue;
        }
        let Some((storage, _)) = volume.split_once(':') else {
            continue; // `none`, `cdrom`, or a shared bind mount: nothing to move
        };
        let mut disk = GuestDisk {
            key: key.clone(),
            storage: storage.to_string(),
            size: 0,
            cdrom: false,
        };
        for p in parts {
            match p.split_once('=') {
                Some(("size", s)) => disk.size = crate::ops::parse_size(s).unwrap_or(0),
                Some(("media", "cdrom")) => disk.cdrom = true,
                _ => {}
            }
        }
        // A cloud-init drive is a small generated volume PVE moves with the guest like a
        // disk, not an ISO the target must also have.
        if volume.contains("-cloudinit") {
            disk.cdrom = false;
        }
        disks.push(disk);
    }
    (disks, local)
}
