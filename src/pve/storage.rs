//! Storage reads: per-node storage status, content, and datacenter storage definitions.

use super::client::{Client, path_segment};
use super::envelope;
use super::error::Error;
use super::storage_types::{NodeStorage, StorageConfigItem, StorageContentItem, StorageContentRow};

impl Client {
    /// `GET /nodes/{node}/storage`.
    pub async fn list_node_storage(&self, node: &str) -> Result<Vec<NodeStorage>, Error> {
        Ok(self.list_node_storage_reporting(node).await?.0)
    }

    /// `GET /nodes/{node}/storage`, with the warnings of lenient decoding.
    pub async fn list_node_storage_reporting(
        &self,
        node: &str,
    ) -> Result<(Vec<NodeStorage>, Vec<String>), Error> {
        self.get_list(&format!("/nodes/{}/storage", path_segment(node)), &[])
            .await
    }

    /// `GET /nodes/{node}/storage/{storage}/content[?content=]`.
    pub async fn list_storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageContentItem>, Error> {
        let query: Vec<(&str, String)> = content
            .map(|c| ("content", c.to_owned()))
            .into_iter()
            .collect();
        let path = format!(
            "/nodes/{}/storage/{}/content",
            path_segment(node),
            path_segment(storage)
        );
        Ok(self.get_list(&path, &query).await?.0)
    }

    /// `GET /nodes/{node}/storage/{storage}/content[?content=]`, handed to `keep` as rows
    /// borrowed from the reply (see [`StorageContentRow`]): `keep` takes what its tool shows
    /// (a page, counts) without an owned copy of every volume. When the strict borrowed pass
    /// fails (an odd value PVE sent), the rows come from the lenient owned decoding of
    /// [`Client::list_storage_content`] instead, so `keep` sees the same rows either way.
    pub async fn with_storage_content<R>(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
        keep: impl FnOnce(Vec<StorageContentRow<'_>>) -> R,
    ) -> Result<R, Error> {
        let query: Vec<(&str, String)> = content
            .map(|c| ("content", c.to_owned()))
            .into_iter()
            .collect();
        let path = format!(
            "/nodes/{}/storage/{}/content",
            path_segment(node),
            path_segment(storage)
        );
        let reply = self.execute(reqwest::Method::GET, &path, &query).await?;
        if let Some(rows) = envelope::decode_borrowed::<Vec<StorageContentRow<'_>>>(&reply) {
            return Ok(keep(rows));
        }
        let (items, warnings) = envelope::decode_list::<StorageContentItem>("GET", &path, &reply)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "lenient decoding");
        }
        Ok(keep(items.iter().map(StorageContentRow::of).collect()))
    }

    /// `GET /storage`.
    pub async fn list_storage_config(&self) -> Result<Vec<StorageConfigItem>, Error> {
        Ok(self.get_list("/storage", &[]).await?.0)
    }
}

/// `POST /nodes/{node}/storage/{storage}/download-url` parameters.
#[derive(Debug, Clone, Default)]
pub struct DownloadUrl {
    pub url: String,
    /// `iso`, `vztmpl` or `import`.
    pub content: String,
    pub filename: String,
    pub checksum: Option<String>,
    /// `sha256`, `sha512`, ...
    pub checksum_algorithm: Option<String>,
}

impl Client {
    /// `POST /nodes/{node}/storage/{storage}/download-url` (task `download`). Needs
    /// Datastore.AllocateTemplate on the storage and Sys.Modify on `/` or Sys.AccessNetwork on
    /// the node.
    pub async fn download_url(
        &self,
        node: &str,
        storage: &str,
        p: &DownloadUrl,
    ) -> Result<super::Upid, Error> {
        let mut form = vec![
            ("url", p.url.clone()),
            ("content", p.content.clone()),
            ("filename", p.filename.clone()),
        ];
        if let Some(c) = &p.checksum {
            form.push(("checksum", c.clone()));
        }
        if let Some(a) = &p.checksum_algorithm {
            form.push(("checksum-algorithm", a.clone()));
        }
        let path = format!(
            "/nodes/{}/storage/{}/download-url",
            path_segment(node),
            path_segment(storage)
        );
        self.post(&path, &form).await
    }

    /// `POST /nodes/{node}/storage/{storage}/upload` (task `imgcopy`): streams the local file
    /// `local` into the storage as `filename` of `content` (`iso`, `vztmpl`, `import`). Needs
    /// Datastore.AllocateTemplate on the storage.
    pub async fn upload_file(
        &self,
        node: &str,
        storage: &str,
        content: &str,
        filename: &str,
        local: &std::path::Path,
        checksum: Option<(String, String)>,
    ) -> Result<super::Upid, Error> {
        let mut form = vec![
            ("content", content.to_string()),
            ("filename", filename.to_string()),
        ];
        if let Some((sum, alg)) = checksum {
            form.push(("checksum", sum));
            form.push(("checksum-algorithm", alg));
        }
        let path = format!(
            "/nodes/{}/storage/{}/upload",
            path_segment(node),
            path_segment(storage)
        );
        self.post_file(
            &path,
            &form,
            local,
            std::time::Duration::from_secs(6 * 3600),
        )
        .await
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volume}`: PVE answers a UPID (or null
    /// on older versions).
    pub async fn delete_volume(
        &self,
        node: &str,
        storage: &str,
        volid: &str,
    ) -> Result<Option<super::Upid>, Error> {
        let path = format!(
            "/nodes/{}/storage/{}/content/{}",
            path_segment(node),
            path_segment(storage),
            path_segment(volid)
        );
        self.delete(&path, &[]).await
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::json;

    use super::super::fake::FakePve;
    use super::*;

    const PATH: &str = "/nodes/pve01/storage/nfs-shared/content";

    /// What a tool reads of a row, owned, to compare both paths.
    fn seen(r: &StorageContentRow<'_>) -> StorageContentItem {
        r.to_item()
    }

    fn owned(mut i: StorageContentItem) -> StorageContentItem {
        i.used = None;
        i.verification = None;
        i
    }

    /// A client answered `rows` for the listing, and what the owned decoding reads of them.
    async fn listed(
        rows: serde_json::Value,
    ) -> Result<(crate::pve::Client, Vec<StorageContentItem>), Error> {
        let fake = FakePve::new();
        fake.on("GET", PATH, rows);
        let c = fake.client();
        let want = c
            .list_storage_content("pve01", "nfs-shared", None)
            .await?
            .into_iter()
            .map(owned)
            .collect();
        Ok((c, want))
    }

    #[tokio::test]
    async fn borrowed_rows_read_what_the_owned_decoding_reads() -> Result<(), Error> {
        // extra and unknown fields, numbers as Perl strings, booleans as 0/1 and "1", an
        // escaped text (which cannot be borrowed), null and missing optional fields
        let rows = json!([
            {"volid": "nfs-shared:iso/d\u{e9}bian \"12\".iso", "content": "iso", "format": "iso",
             "size": "658505728", "used": "658505728", "ctime": 1_700_000_000,
             "subtype": null, "future": {"nested": [1, 2, {"x": "y"}]}},
            {"volid": "nfs-shared:101/vm-101-disk-0.qcow2", "content": "images",
             "format": "qcow2", "size": 34_359_738_368_u64, "vmid": "101", "used": 1,
             "parent": "base-100-disk-0.qcow2", "ctime": "1700000001.0"},
            {"volid": "nfs-shared:backup/vzdump-qemu-101.vma.zst", "content": "backup",
             "format": "vma.zst", "size": 1024, "vmid": 101, "protected": "1",
             "notes": "before upgrade", "verification": {"state": "ok", "upid": "UPID:x"},
             "subtype": "qemu"},
            {"volid": "nfs-shared:vztmpl/x.tar.zst", "content": null, "protected": 0},
        ]);
        let (c, want) = listed(rows).await?;
        let (got, escaped_is_owned) = c
            .with_storage_content("pve01", "nfs-shared", None, |rows| {
                let owned_text = matches!(rows[0].volid, Cow::Owned(_))
                    && matches!(rows[1].volid, Cow::Borrowed(_));
                (rows.iter().map(seen).collect::<Vec<_>>(), owned_text)
            })
            .await?;
        assert_eq!(want.len(), 4);
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "the borrowed pass reads the rows as the owned one"
        );
        assert!(escaped_is_owned, "plain text borrowed, escaped text copied");
        assert_eq!(got[0].volid, "nfs-shared:iso/d\u{e9}bian \"12\".iso");
        assert_eq!(got[1].vmid, Some(101));
        assert_eq!(got[1].ctime, Some(1_700_000_001));
        assert_eq!(got[2].protected, Some(true));
        assert_eq!(got[3].protected, Some(false));
        assert_eq!(got[0].size, Some(658_505_728));
        Ok(())
    }

    #[tokio::test]
    async fn an_odd_row_falls_back_to_the_lenient_decoding() -> Result<(), Error> {
        // `format` as a number and `size` as a word: the strict pass fails, the lenient one
        // drops those fields (as `list_storage_content` does) and keeps every row
        let rows = json!([
            {"volid": "nfs-shared:iso/a.iso", "content": "iso", "format": 7, "size": 10},
            {"volid": "nfs-shared:iso/b.iso", "content": "iso", "format": "iso", "size": "big"},
            {"content": "iso"},
        ]);
        let (c, want) = listed(rows).await?;
        let got = c
            .with_storage_content("pve01", "nfs-shared", None, |rows| {
                rows.iter().map(seen).collect::<Vec<_>>()
            })
            .await?;
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
        assert_eq!(got.len(), 2, "the row without a volid is skipped: {got:?}");
        assert_eq!((got[0].format.as_deref(), got[0].size), (None, Some(10)));
        assert_eq!((got[1].format.as_deref(), got[1].size), (Some("iso"), None));
        Ok(())
    }

    #[tokio::test]
    async fn a_reply_that_is_not_a_list_is_an_error() {
        let fake = FakePve::new();
        fake.on("GET", PATH, json!({"volid": "x"}));
        let e = fake
            .client()
            .with_storage_content("pve01", "nfs-shared", None, |rows| rows.len())
            .await
            .expect_err("not a list");
        assert!(e.to_string().contains(PATH), "{e}");
    }
}
