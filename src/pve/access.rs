//! Access reads: the token's effective permissions.

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::Client;
use super::error::Error;
use super::perl;

impl Client {
    /// `GET /access/permissions[?path=]` for the calling token: `{acl path: {privilege: 0|1}}`
    /// where 1 means "propagates". Paths with no privileges are omitted by PVE.
    pub async fn get_permissions(
        &self,
        path: Option<&str>,
    ) -> Result<BTreeMap<String, BTreeMap<String, u8>>, Error> {
        let query: Vec<(&str, String)> = path.map(|p| ("path", p.to_owned())).into_iter().collect();
        let raw: BTreeMap<String, BTreeMap<String, Value>> =
            self.get("/access/permissions", &query).await?;
        Ok(raw
            .into_iter()
            .map(|(acl, privs)| {
                let privs = privs
                    .into_iter()
                    .map(|(p, v)| (p, u8::from(perl::value_as_u64(&v).unwrap_or(0) != 0)))
                    .collect();
                (acl, privs)
            })
            .collect())
    }
}
