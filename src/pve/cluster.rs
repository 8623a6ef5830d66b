//! Cluster-wide reads: version, membership, the resource index and the next free vmid. A VM's
//! node is resolved in [`super::locate`] (never trusted from a caller).

use super::client::Client;
use super::envelope;
use super::error::Error;
use super::perl;
use super::types::{ClusterResource, ClusterStatusItem, ResourcePlace, ResourceType, Version};

impl Client {
    /// `GET /version` of the node answering.
    pub async fn get_version(&self) -> Result<Version, Error> {
        self.get("/version", &[]).await
    }

    /// `GET /cluster/status`.
    pub async fn get_cluster_status(&self) -> Result<Vec<ClusterStatusItem>, Error> {
        Ok(self.get_cluster_status_reporting().await?.0)
    }

    /// `GET /cluster/status`, with the warnings of lenient decoding (odd optional fields).
    pub async fn get_cluster_status_reporting(
        &self,
    ) -> Result<(Vec<ClusterStatusItem>, Vec<String>), Error> {
        self.get_list("/cluster/status", &[]).await
    }

    /// `GET /cluster/resources[?type=]`. PVE filters silently by the token's privileges.
    pub async fn get_cluster_resources(
        &self,
        kind: Option<ResourceType>,
    ) -> Result<Vec<ClusterResource>, Error> {
        Ok(self.get_cluster_resources_reporting(kind).await?.0)
    }

    /// `GET /cluster/resources[?type=]`, with the warnings of lenient decoding.
    pub async fn get_cluster_resources_reporting(
        &self,
        kind: Option<ResourceType>,
    ) -> Result<(Vec<ClusterResource>, Vec<String>), Error> {
        let query: Vec<(&str, String)> = kind
            .map(|k| ("type", k.as_str().to_owned()))
            .into_iter()
            .collect();
        let (rows, warnings) = self.get_list("/cluster/resources", &query).await?;
        if matches!(kind, None | Some(ResourceType::Vm)) {
            // Every guest the token may see: where each lives, for the next per-VM call.
            self.guest_index().refresh(&rows);
        }
        Ok((rows, warnings))
    }

    /// `GET /cluster/resources`, handed to `keep` as [`ResourcePlace`]s borrowed from the
    /// reply: where every guest and storage is, without an owned [`ClusterResource`] per row.
    /// When the strict borrowed pass fails (an odd value PVE sent), the places come from the
    /// lenient owned decoding of [`Client::get_cluster_resources`] instead, so `keep` sees the
    /// same rows either way. Refreshes the guest index like that call.
    pub async fn with_resource_places<R>(
        &self,
        keep: impl FnOnce(Vec<ResourcePlace<'_>>) -> R,
    ) -> Result<R, Error> {
        let path = "/cluster/resources";
        let reply = self.execute(reqwest::Method::GET, path, &[]).await?;
        let index = |places: &[ResourcePlace<'_>]| {
            self.guest_index()
                .refresh_from(places.iter().map(|p| (p.vmid, p.node.as_deref(), &p.kind)));
        };
        if let Some(places) = envelope::decode_borrowed::<Vec<ResourcePlace<'_>>>(&reply) {
            index(&places);
            return Ok(keep(places));
        }
        let (rows, warnings) = envelope::decode_list::<ClusterResource>("GET", path, &reply)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "lenient decoding");
        }
        let places: Vec<ResourcePlace<'_>> = rows.iter().map(ResourcePlace::of).collect();
        index(&places);
        Ok(keep(places))
    }

    /// `GET /cluster/nextid[?vmid=]`. PVE returns the id as a JSON string; nothing is reserved.
    ///
    /// # Errors
    /// With `Some(vmid)` taken: [`Error::Api`] 400 with `errors["vmid"]` "VM N already exists".
    pub async fn get_next_id(&self, vmid: Option<u32>) -> Result<u32, Error> {
        let query: Vec<(&str, String)> =
            vmid.map(|v| ("vmid", v.to_string())).into_iter().collect();
        let value: serde_json::Value = self.get("/cluster/nextid", &query).await?;
        perl::value_as_u64(&value)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::Decode {
                method: "GET".into(),
                path: "/cluster/nextid".into(),
                json_path: "data".into(),
                reason: format!("expected a vmid, got {value}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::json;

    use super::*;
    use crate::pve::ResourceKind;
    use crate::pve::fake::FakePve;

    /// What a tool reads of a place, owned, to compare both paths.
    type Seen = (
        ResourceKind,
        Option<u32>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<bool>,
    );

    fn seen(p: &ResourcePlace<'_>) -> Seen {
        let o = |s: &Option<Cow<'_, str>>| s.as_deref().map(str::to_owned);
        (
            p.kind.clone(),
            p.vmid,
            o(&p.node),
            o(&p.status),
            o(&p.storage),
            o(&p.plugintype),
            o(&p.content),
            p.shared,
        )
    }

    /// The places of `rows` both ways: borrowed, and from the owned decoding.
    async fn both(rows: serde_json::Value) -> Result<(Vec<Seen>, Vec<Seen>, usize), Error> {
        let fake = FakePve::new();
        fake.on("GET", "/cluster/resources", rows);
        let c = fake.client();
        let owned = c.get_cluster_resources(None).await?;
        let want = owned
            .iter()
            .map(ResourcePlace::of)
            .map(|p| seen(&p))
            .collect();
        let fresh = fake.client();
        let got = fresh
            .with_resource_places(|places| places.iter().map(seen).collect())
            .await?;
        Ok((got, want, fresh.indexed_guests()))
    }

    #[tokio::test]
    async fn places_read_what_the_owned_decoding_reads_and_index_the_guests() -> Result<(), Error> {
        // numbers as Perl strings, booleans as 0/1, an escaped text (copied, not borrowed),
        // an unknown kind, fields a place does not keep (nested ones too)
        let rows = json!([
            {"id": "qemu/100", "type": "qemu", "vmid": "100", "node": "pve01",
             "status": "running", "name": "web", "maxmem": "2147483648", "tags": "a;b",
             "future": {"nested": [1, {"x": "y"}]}},
            {"id": "lxc/101", "type": "lxc", "vmid": 101, "node": "pve02",
             "status": "odd \"state\"", "template": 0},
            {"id": "storage/pve01/nfs-shared", "type": "storage", "node": "pve01",
             "storage": "nfs-shared", "plugintype": "nfs", "content": "images,rootdir",
             "shared": 1, "status": "available", "disk": 1, "maxdisk": 2},
            {"id": "node/pve01", "type": "node", "node": "pve01", "status": "online"},
            {"id": "network/pve01/vmbr0", "type": "network", "node": "pve01"},
        ]);
        let (got, want, indexed) = both(rows).await?;
        assert_eq!(
            got, want,
            "the borrowed pass reads the rows as the owned one"
        );
        assert_eq!(got.len(), 5);
        assert_eq!(
            (got[0].0.clone(), got[0].1),
            (ResourceKind::Qemu, Some(100))
        );
        assert_eq!(got[1].3.as_deref(), Some("odd \"state\""));
        assert_eq!(got[2].7, Some(true));
        assert_eq!(got[4].0, ResourceKind::Other("network".into()));
        assert_eq!(indexed, 2, "both guests are indexed, nothing else");
        Ok(())
    }

    #[tokio::test]
    async fn an_odd_resource_row_falls_back_to_the_lenient_decoding() -> Result<(), Error> {
        // a node name as a number fails the strict pass; the lenient one keeps the row
        // without it, as `get_cluster_resources` does
        let rows = json!([
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": 7},
            {"id": "qemu/101", "type": "qemu", "vmid": 101, "node": "pve01"},
        ]);
        let (got, want, indexed) = both(rows).await?;
        assert_eq!(got, want);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].1, got[0].2.as_deref()), (Some(100), None));
        assert_eq!(indexed, 1, "only the guest with a node is indexed");
        Ok(())
    }
}
