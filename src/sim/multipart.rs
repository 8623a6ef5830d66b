//! `multipart/form-data` for `POST .../storage/{storage}/upload`, as pve-http-server takes
//! it: plain parts become parameters; the file part (named `filename`, or any part with a
//! `filename=` attribute) is kept as the upload, and its `filename=` becomes the `filename`
//! parameter. pve-http-server spools it to `/var/tmp/pveupload-<hex>` and passes that as
//! `tmpfilename`; the simulator keeps the bytes in memory under that name.

use std::collections::BTreeMap;

use axum::body::Bytes;

/// The uploaded file of a request.
#[derive(Clone)]
pub struct Upload {
    /// `/var/tmp/pveupload-<hex>`.
    pub tmpfilename: String,
    pub bytes: Bytes,
}

/// Upload size cap (the body of an upload request may be this large).
pub const MAX_UPLOAD: usize = 256 * 1024 * 1024;

/// Whether `rel` is the upload endpoint (`/nodes/N/storage/S/upload`).
pub fn is_upload_path(rel: &str) -> bool {
    let segs: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segs.as_slice(), ["nodes", _, "storage", _, "upload"])
}

/// The `boundary` of a multipart content type.
pub fn boundary(ctype: &str) -> Option<String> {
    ctype.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.eq_ignore_ascii_case("boundary")).then(|| v.trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..].iter().position(|b| *b == first) {
            None => return None,
            Some(off) => {
                let at = i + off;
                if hay.get(at..at + needle.len()) == Some(needle) {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

fn attr(disposition: &str, name: &str) -> Option<String> {
    disposition.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Parses the body into parameters and the file part; `None` if it is malformed.
pub fn parse(
    body: &Bytes,
    boundary: &str,
    params: &mut BTreeMap<String, String>,
) -> Option<Option<Upload>> {
    let delim = format!("--{boundary}");
    let mut pos = find(body, delim.as_bytes(), 0)? + delim.len();
    let mut upload = None;
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            return Some(upload);
        }
        let head_start = pos + 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", head_start)?;
        let head = String::from_utf8_lossy(body.get(head_start..head_end)?).to_string();
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), data_start)?;
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?
            .to_string();
        let data = body.slice(data_start..next);
        match attr(&disposition, "filename") {
            Some(file) => {
                let hex: String = uuid::Uuid::new_v4().simple().to_string();
                params.insert("filename".into(), file);
                params.insert("tmpfilename".into(), format!("/var/tmp/pveupload-{hex}"));
                upload = Some(Upload {
                    tmpfilename: format!("/var/tmp/pveupload-{hex}"),
                    bytes: data,
                });
            }
            None => {
                params.insert(
                    attr(&disposition, "name")?,
                    String::from_utf8_lossy(&data).to_string(),
                );
            }
        }
        pos = next + 2 + delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_become_params_and_the_file_an_upload() {
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\niso\r\n--XyZ\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"a.iso\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--XyZ--\r\n",
        );
        let mut p = BTreeMap::new();
        let up = parse(&body, "XyZ", &mut p).flatten();
        assert_eq!(p.get("content").map(String::as_str), Some("iso"));
        assert_eq!(p.get("filename").map(String::as_str), Some("a.iso"));
        assert!(up.is_some_and(|u| &u.bytes[..] == b"DATA"));
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\"").as_deref(),
            Some("XyZ")
        );
        assert!(is_upload_path("/nodes/pve01/storage/local/upload"));
        assert!(parse(&Bytes::from_static(b"junk"), "XyZ", &mut p).is_none());
    }
}
