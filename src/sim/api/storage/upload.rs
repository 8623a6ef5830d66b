//! `POST /nodes/{node}/storage/{storage}/upload` (pve-manager `API2/Storage/Status.pm`
//! `upload`): a multipart upload (see `multipart`) of an ISO, container template or disk
//! image. The early checks are PVE's (file-based storage, the temporary file, filename and
//! extension, content type enabled); the `imgcopy` task (empty id) verifies the checksum and
//! the image, then stores the file's metadata — overwriting an existing file, as PVE does.

use std::sync::Arc;

use serde_json::json;

use crate::sim::api::WCtx;
use crate::sim::api::storage::download::{
    Hasher, check_extension, check_requires, content_dir, inspect,
};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{Volume, now};
use crate::sim::tasks::{NewTask, Outcome, finish, register};

pub fn upload(c: &mut WCtx) -> ApiResult {
    let (node, sid) = (c.args.node.clone(), c.args.storage.clone());
    c.ro().require(
        &format!("/storage/{sid}"),
        &["Datastore.AllocateTemplate"],
        false,
    )?;
    c.ro().validate()?;
    check_requires(c)?;
    let algo = c.param("checksum-algorithm").map(str::to_string);
    if let Some(a) = algo.as_deref().filter(|a| Hasher::new(a).is_none()) {
        return Err(ApiError::NotImplemented(format!(
            "checksum algorithm '{a}' is not supported by the simulator"
        )));
    }
    let Some(storage) = c.st.storage(&sid) else {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    };
    let Some(base) = storage.props.get("path").cloned() else {
        return Err(ApiError::Server(format!(
            "can't upload to storage type '{}'",
            storage.stype
        )));
    };
    let shared_storage = storage.shared;
    let Some(tmp) = c.param("tmpfilename").map(str::to_string) else {
        return Err(ApiError::Server("missing temporary file name".into()));
    };
    let Some(bytes) = c
        .req
        .upload
        .as_ref()
        .filter(|u| u.tmpfilename == tmp)
        .map(|u| u.bytes.clone())
    else {
        return Err(ApiError::Server(format!(
            "temporary file '{tmp}' does not exist"
        )));
    };
    let content = c.param("content").unwrap_or("").to_string();
    let filename =
        crate::sim::api::storage::download::normalize_filename(c.param("filename").unwrap_or(""));
    let format = check_extension(&content, &filename)?;
    if !storage.content.contains(&content) {
        return Err(ApiError::Server(format!(
            "storage '{sid}' does not support '{content}' content"
        )));
    }
    let dest = format!("{}/{filename}", content_dir(&base, &content));
    let volid = format!("{sid}:{content}/{filename}");
    let expected = c.param("checksum").map(str::to_string);
    let user = c.authid().to_string();
    let (upid, injected, wait) = register(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "imgcopy",
            id: "",
            user: &user,
            duration_secs: 1.0,
            log: vec![format!("starting file import from: {tmp}")],
        },
    );
    let shared = Arc::clone(c.shared);
    let upid2 = upid.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let size = bytes.len() as u64;
        let fmt = format.clone();
        // hashing may take a while: off the runtime and outside the state lock
        let checked = tokio::task::spawn_blocking(move || {
            let mut log = Vec::new();
            if let (Some(algo), Some(expected)) = (algo, expected) {
                let mut h = Hasher::new(&algo).ok_or((Vec::new(), "no hasher".to_string()))?;
                h.update(&bytes);
                let got = h.hex();
                if got != expected.to_lowercase() {
                    log.push("calculating checksum...".to_string());
                    return Err((
                        log,
                        format!("checksum mismatch: got '{got}' != expect '{expected}'"),
                    ));
                }
                log.push("calculating checksum...OK, checksum verified".to_string());
            }
            let head = &bytes[..bytes.len().min(512)];
            let vsize = inspect(&fmt, head, size).map_err(|e| (log.clone(), e))?;
            Ok((log, vsize))
        })
        .await
        .unwrap_or_else(|e| Err((Vec::new(), format!("import failed: {e}"))));
        let mut st = shared.lock();
        let outcome = match (injected, checked) {
            (Some(error), _) => Outcome::Err {
                log: Vec::new(),
                error,
            },
            (None, Err((log, error))) => Outcome::Err { log, error },
            (None, Ok((mut log, virtual_size))) => {
                let on = (!shared_storage).then(|| node.clone());
                st.files.retain(|f| f.volid != volid || f.node != on);
                st.files.push(Volume {
                    volid,
                    storage: sid,
                    node: on,
                    content,
                    format,
                    size,
                    virtual_size,
                    vmid: None,
                    ctime: now(),
                    notes: None,
                    protected: false,
                    body: None,
                });
                log.push(format!("target node: {node}"));
                log.push(format!("target file: {dest}"));
                log.push(format!("file size is: {size}"));
                log.push(format!("command: cp -- {tmp} {dest}"));
                log.push("finished file import successfully".into());
                Outcome::Ok { log, warnings: 0 }
            }
        };
        finish(&mut st, &upid2, outcome);
    });
    Ok(Reply::data(json!(upid)))
}
