//! PVE's response envelope, without I/O: `{"data": ...}` on success; on failure a status, a
//! `message` (PVE 8.3+) or only the HTTP reason phrase (older nodes), and per-parameter
//! `errors`. Turns a finished response into data or the right [`Error`] variant.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::Error;
use super::perl;

/// A success reply, still as the bytes PVE sent: decoded once, straight into the caller's
/// type ([`decode`], [`decode_list`]), instead of through an intermediate JSON tree. The
/// bytes are the response body's own buffer, not a copy (a task log runs to megabytes).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The JSON body; empty for a file.
    body: Bytes,
    /// A file's body in the pieces the connection read it in, not joined into one buffer
    /// (a backup run's log is a megabyte a node, and it is read a piece at a time anyway).
    pieces: Vec<Bytes>,
    /// A file sent as itself (a `download`), not JSON: its `Content-Type` is not JSON.
    file: bool,
    /// Sent with `Content-Encoding: gzip` (PVE gzips a downloaded task log over 1 KiB).
    gzip: bool,
}

/// The most a downloaded file is inflated to ([`Reply::read_file`]).
pub(crate) const MAX_FILE: u64 = 64 * 1024 * 1024;

/// The pieces [`Reply::read_file`] inflates into: small enough to stay in cache.
pub(crate) const FILE_PIECE: usize = 64 * 1024;

/// What reads a downloaded file as it is inflated ([`Reply::read_file`]): `feed` gets its bytes
/// in order, in pieces that may end anywhere (inside a line, inside a UTF-8 character);
/// `finish` gives what was read.
pub trait FileRead {
    type Out;
    fn feed(&mut self, piece: &[u8]);
    fn finish(self) -> Self::Out;
}

/// The file's bytes, whole.
impl FileRead for Vec<u8> {
    type Out = Vec<u8>;
    fn feed(&mut self, piece: &[u8]) {
        self.extend_from_slice(piece);
    }
    fn finish(self) -> Vec<u8> {
        self
    }
}

/// The pieces of a file body read as one stream ([`Reply::read_file`]).
struct PiecesReader<'a> {
    rest: &'a [Bytes],
    /// Bytes of `rest[0]` already read.
    at: usize,
}

impl std::io::Read for PiecesReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead as _;
        let have = self.fill_buf()?;
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl std::io::BufRead for PiecesReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while let Some((first, rest)) = self.rest.split_first() {
            if self.at < first.len() {
                return Ok(&first[self.at..]);
            }
            self.rest = rest;
            self.at = 0;
        }
        Ok(&[])
    }

    fn consume(&mut self, n: usize) {
        self.at += n;
    }
}

/// `{"data": T, ...}`: the fast, one-pass shape (other envelope fields are skipped).
#[derive(serde::Deserialize)]
struct Envelope<T> {
    data: T,
}

/// `{"total": N, ...}` with `data` skipped unread.
#[derive(serde::Deserialize)]
struct TotalOnly {
    #[serde(default)]
    total: Option<Value>,
}

impl Reply {
    /// The body as `T`. A body that is valid UTF-8 (every PVE answer) is checked once and
    /// parsed as text, so serde_json does not check each string again (that was a tenth of
    /// decoding a megabyte task log); any other body is parsed as bytes, as before.
    fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        match std::str::from_utf8(&self.body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&self.body),
        }
    }

    /// Hands a file reply (a `download`) to `read` a piece at a time, inflated when it came
    /// gzipped: at most [`MAX_FILE`] bytes in all, in pieces of [`FILE_PIECE`], so a log of
    /// megabytes is never held inflated whole (nor zeroed, copied and checked as text first).
    pub fn read_file(
        &self,
        method: &str,
        path: &str,
        read: &mut impl FileRead,
    ) -> Result<(), Error> {
        self.read_file_within(method, path, read, MAX_FILE)
    }

    fn read_file_within(
        &self,
        method: &str,
        path: &str,
        read: &mut impl FileRead,
        max: u64,
    ) -> Result<(), Error> {
        let fail = |reason: String| Error::Decode {
            method: method.to_owned(),
            path: path.to_owned(),
            json_path: ".".to_owned(),
            reason,
        };
        let too_large = || {
            fail(format!(
                "the file is larger than {} MiB inflated; read it in pages instead",
                max >> 20
            ))
        };
        if !self.file {
            return Err(fail("the answer is json, not a file".to_owned()));
        }
        if !self.gzip {
            if self.file_size() > max {
                return Err(too_large());
            }
            for p in &self.pieces {
                read.feed(p);
            }
            return Ok(());
        }
        use std::io::Read as _;
        let mut inflate = flate2::bufread::MultiGzDecoder::new(PiecesReader {
            rest: &self.pieces,
            at: 0,
        });
        let mut piece = vec![0u8; FILE_PIECE];
        let mut total = 0u64;
        loop {
            let n = match inflate.read(&mut piece) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(format!("the gzip stream is corrupt: {e}"))),
            };
            total += n as u64;
            if total > max {
                return Err(too_large());
            }
            read.feed(&piece[..n]);
        }
    }

    /// About how many bytes decoding this reply reads: its size, inflated when it came
    /// gzipped (text such as a task log inflates some tenfold), for [`off_runtime`].
    pub fn work_size(&self) -> usize {
        let size = self.body.len().saturating_add(self.file_size() as usize);
        if self.gzip {
            size.saturating_mul(10)
        } else {
            size
        }
    }

    fn file_size(&self) -> u64 {
        self.pieces.iter().map(|p| p.len() as u64).sum()
    }

    /// A successful file reply (a `download`) from the pieces of its body.
    pub fn file_of(pieces: Vec<Bytes>, kind: BodyKind) -> Reply {
        Reply {
            body: Bytes::new(),
            pieces,
            file: true,
            gzip: kind.gzip,
        }
    }

    /// `total` on task lists and logs.
    pub fn total(&self) -> Option<u64> {
        self.json::<TotalOnly>()
            .ok()
            .and_then(|t| t.total)
            .as_ref()
            .and_then(perl::value_as_u64)
    }

    /// `data` as a JSON tree (`null` when absent), for the slow path that names the JSON
    /// path of a failure.
    pub fn data_value(&self, method: &str, path: &str) -> Result<Value, Error> {
        if self.file || self.gzip {
            return Err(Error::Decode {
                method: method.to_owned(),
                path: path.to_owned(),
                json_path: ".".to_owned(),
                reason: format!(
                    "the answer is a file ({} bytes), not a json object; is this a pve api endpoint?",
                    self.body.len()
                ),
            });
        }
        match self.json::<Value>() {
            Ok(Value::Object(mut obj)) => Ok(obj.remove("data").unwrap_or(Value::Null)),
            Ok(_) => Err(Error::Decode {
                method: method.to_owned(),
                path: path.to_owned(),
                json_path: ".".to_owned(),
                reason: "the reply is not a json object".to_owned(),
            }),
            Err(e) => Err(Error::Decode {
                method: method.to_owned(),
                path: path.to_owned(),
                json_path: ".".to_owned(),
                reason: format!("invalid json: {e}"),
            }),
        }
    }
}

/// What the request was, for error messages.
pub(crate) struct RequestInfo<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub endpoint: &'a str,
}

/// How a success body is to be read, from the response's headers: JSON unless its
/// `Content-Type` names something else (a `download`'s file), and gzipped when its
/// `Content-Encoding` says so. Read before the body consumes the response, without copying
/// the headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BodyKind {
    file: bool,
    gzip: bool,
}

impl BodyKind {
    /// A file (a `download`), not the JSON envelope: what [`Reply::file_of`] holds.
    pub fn is_file(self) -> bool {
        self.file || self.gzip
    }

    pub fn of(headers: &http::HeaderMap) -> BodyKind {
        let value = |name| headers.get(name).map(http::HeaderValue::as_bytes);
        BodyKind {
            file: value(http::header::CONTENT_TYPE)
                .is_some_and(|t| !t.windows(4).any(|w| w.eq_ignore_ascii_case(b"json"))),
            gzip: value(http::header::CONTENT_ENCODING)
                .is_some_and(|e| e.trim_ascii().eq_ignore_ascii_case(b"gzip")),
        }
    }
}

/// Decodes a complete response. `reason` is the reason phrase as received (hyper's
/// `ReasonPhrase`) or the canonical one; `kind`, what the headers say of the body (the
/// default, JSON, from a test transport). A success body is only checked to look like a JSON
/// object here, unless it is a file (a `download`, [`Reply::read_file`]); it is decoded by
/// [`decode`] or [`decode_list`].
pub(crate) fn decode_reply(
    req: &RequestInfo<'_>,
    status: u16,
    reason: Option<&str>,
    kind: BodyKind,
    body: Bytes,
) -> Result<Reply, Error> {
    let BodyKind { file, gzip } = kind;
    if (200..300).contains(&status) && (file || gzip) {
        return Ok(Reply::file_of(vec![body], kind));
    }
    if (200..300).contains(&status) {
        let trimmed = body.trim_ascii();
        if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
            return Err(Error::Decode {
                method: req.method.to_owned(),
                path: req.path.to_owned(),
                json_path: ".".to_owned(),
                reason: format!(
                    "http {status} without a json object body ({} bytes); is this a pve api endpoint?",
                    body.len()
                ),
            });
        }
        return Ok(Reply {
            body,
            pieces: Vec::new(),
            file: false,
            gzip: false,
        });
    }
    let json: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    Err(error_from(req, status, reason, json.as_ref()))
}

/// `data` of a reply as `T`: one typed pass over the bytes; only when that fails, the slow
/// path through a JSON tree that names the JSON path of the failure ([`decode_data`]).
pub(crate) fn decode<T: DeserializeOwned>(
    method: &str,
    path: &str,
    reply: &Reply,
) -> Result<T, Error> {
    if let Ok(Envelope { data }) = reply.json::<Envelope<T>>() {
        return Ok(data);
    }
    decode_data(method, path, reply.data_value(method, path)?)
}

/// Replies from this size up are decoded on Tokio's blocking pool ([`off_runtime`]).
const DECODE_OFF_RUNTIME: usize = 256 * 1024;

/// [`decode`], on Tokio's blocking pool when the reply is large ([`off_runtime`]).
pub(crate) async fn decode_large<T: DeserializeOwned + Send + 'static>(
    method: &'static str,
    path: String,
    reply: Reply,
) -> Result<T, Error> {
    let (size, shown) = (reply.body.len(), path.clone());
    off_runtime(method, &shown, size, move || decode(method, &path, &reply)).await
}

/// Runs `work`, the decoding of a reply of `size` bytes to `method path`, on Tokio's blocking
/// pool when the reply is large. A megabyte takes milliseconds of CPU to decode, and replies
/// read at once (a backup run's task logs, one per node) are all polled by the one worker
/// running the call: off the workers, they decode on every core, and the runtime's other calls
/// are not held up meanwhile.
pub(crate) async fn off_runtime<T: Send + 'static>(
    method: &str,
    path: &str,
    size: usize,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    if size < DECODE_OFF_RUNTIME || tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Error::Decode {
            method: method.to_owned(),
            path: path.to_owned(),
            json_path: ".".to_owned(),
            reason: format!("the decoding stopped: {e}"),
        })
    })
}

/// A list reply: one typed pass over the bytes when every row decodes; otherwise the lenient
/// row-by-row path ([`decode_list_lenient`]) with its warnings.
pub(crate) fn decode_list<T: DeserializeOwned>(
    method: &str,
    path: &str,
    reply: &Reply,
) -> Result<(Vec<T>, Vec<String>), Error> {
    if let Ok(Envelope { data }) = reply.json::<Envelope<Vec<T>>>() {
        return Ok((data, Vec::new()));
    }
    decode_list_lenient(method, path, reply.data_value(method, path)?)
}

/// `data` of a reply as `T` borrowing from the reply's bytes (text fields as `&str`/`Cow`,
/// fields `T` does not name skipped unread); `None` when that strict pass fails, for the
/// caller to take the lenient owned path ([`decode_list`]) instead.
pub(crate) fn decode_borrowed<'a, T: serde::Deserialize<'a>>(reply: &'a Reply) -> Option<T> {
    reply.json::<Envelope<T>>().ok().map(|e| e.data)
}

/// One object, like [`decode_list`] decodes a row.
pub(crate) fn decode_one<T: DeserializeOwned>(
    method: &str,
    path: &str,
    reply: &Reply,
) -> Result<(T, Vec<String>), Error> {
    if let Ok(Envelope { data }) = reply.json::<Envelope<T>>() {
        return Ok((data, Vec::new()));
    }
    decode_one_lenient(method, path, reply.data_value(method, path)?)
}

fn error_from(
    req: &RequestInfo<'_>,
    status: u16,
    reason: Option<&str>,
    json: Option<&Value>,
) -> Error {
    let body_message = json
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let message = body_message
        .or_else(|| reason.map(str::trim).filter(|r| !r.is_empty()))
        .map_or_else(|| format!("http status {status}"), str::to_owned);
    let errors: BTreeMap<String, String> = json
        .and_then(|j| j.get("errors"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = perl::value_as_string(v).unwrap_or_else(|| v.to_string());
                    (k.clone(), text.trim().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    match status {
        401 => Error::Unauthorized {
            endpoint: req.endpoint.to_owned(),
            message,
        },
        403 => Error::Forbidden {
            method: req.method.to_owned(),
            path: req.path.to_owned(),
            missing: missing_privilege(&message),
            message,
        },
        595 => match node_of_path(req.path) {
            Some(node) => Error::NodeOffline {
                node,
                message: format!("595 {message}"),
            },
            None => api(req, status, message, errors),
        },
        _ => api(req, status, message, errors),
    }
}

fn api(
    req: &RequestInfo<'_>,
    status: u16,
    message: String,
    errors: BTreeMap<String, String>,
) -> Error {
    Error::Api {
        status,
        method: req.method.to_owned(),
        path: req.path.to_owned(),
        message,
        errors,
    }
}

/// `Permission check failed (/vms/100, VM.Audit)` -> `("/vms/100", "VM.Audit")`.
pub(crate) fn missing_privilege(message: &str) -> Option<(String, String)> {
    let start = message.find("Permission check failed (")? + "Permission check failed (".len();
    let rest = message.get(start..)?;
    let inner = rest.get(..rest.find(')')?)?;
    let (path, privilege) = inner.split_once(", ")?;
    let (path, privilege) = (path.trim(), privilege.trim());
    (path.starts_with('/') && !privilege.is_empty() && !privilege.contains(' '))
        .then(|| (path.to_owned(), privilege.to_owned()))
}

/// `/nodes/pve02/qemu/100/status` -> `pve02`.
pub(crate) fn node_of_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/nodes/")?;
    let node = rest.split('/').next()?;
    (!node.is_empty()).then(|| {
        percent_encoding::percent_decode_str(node)
            .decode_utf8_lossy()
            .into_owned()
    })
}

/// Decodes `data` into `T`, naming the JSON path on failure.
pub(crate) fn decode_data<T: DeserializeOwned>(
    method: &str,
    path: &str,
    data: Value,
) -> Result<T, Error> {
    serde_path_to_error::deserialize(data).map_err(|e| Error::Decode {
        method: method.to_owned(),
        path: path.to_owned(),
        json_path: e.path().to_string(),
        reason: e.into_inner().to_string(),
    })
}

/// Decodes one object, dropping a field whose value does not fit (PVE, or a PVE look-alike,
/// sending a count where a boolean is documented) rather than failing the whole reply: the
/// field is removed and decoding retried, each removal a warning naming the field and value.
/// `Err` when the object cannot be decoded even so (a required field missing or bad).
fn decode_object_lenient<T: DeserializeOwned>(
    mut row: Value,
    warnings: &mut Vec<String>,
    what: &str,
) -> Result<T, String> {
    for _ in 0..32 {
        let err = match serde_path_to_error::deserialize::<_, T>(row.clone()) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let path = err.path().to_string();
        let field = path.split(['.', '[']).next().unwrap_or("").to_string();
        let removed = row.as_object_mut().and_then(|m| m.remove(&field));
        match removed {
            Some(value) if !field.is_empty() && field != "?" => {
                let mut shown = value.to_string();
                if shown.len() > 60 {
                    shown = format!("{}…", shown.chars().take(60).collect::<String>());
                }
                warnings.push(format!(
                    "{what}: field `{field}` had unexpected value {shown} ({}); ignored",
                    err.into_inner()
                ));
            }
            _ => return Err(err.into_inner().to_string()),
        }
    }
    Err("too many unexpected fields".into())
}

/// A label for a row in warnings: its `id`, `node`, `storage`, `volid` or `upid`.
fn row_label(row: &Value, index: usize) -> String {
    for key in ["id", "volid", "upid", "storage", "node", "name"] {
        if let Some(v) = row.get(key).and_then(Value::as_str) {
            return v.to_string();
        }
    }
    format!("row {index}")
}

/// Decodes a list leniently: an odd optional field of a row becomes a warning, a row that
/// cannot be decoded at all is skipped with a warning; only a reply that is not a list fails.
pub(crate) fn decode_list_lenient<T: DeserializeOwned>(
    method: &str,
    path: &str,
    data: Value,
) -> Result<(Vec<T>, Vec<String>), Error> {
    let Value::Array(rows) = data else {
        return decode_data(method, path, data).map(|v| (v, Vec::new()));
    };
    let mut out = Vec::with_capacity(rows.len());
    let mut warnings = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let label = format!("{method} {path}: {}", row_label(&row, i));
        match decode_object_lenient(row, &mut warnings, &label) {
            Ok(v) => out.push(v),
            Err(reason) => {
                warnings.push(format!("{label}: skipped, it could not be read ({reason})"))
            }
        }
    }
    Ok((out, warnings))
}

/// Decodes one object leniently (see [`decode_list_lenient`]); fails only when a field the
/// type requires is missing or unusable.
pub(crate) fn decode_one_lenient<T: DeserializeOwned>(
    method: &str,
    path: &str,
    data: Value,
) -> Result<(T, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let label = format!("{method} {path}");
    match decode_object_lenient(data.clone(), &mut warnings, &label) {
        Ok(v) => Ok((v, warnings)),
        Err(_) => decode_data(method, path, data).map(|v| (v, Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Row {
        node: String,
        #[serde(default, deserialize_with = "crate::pve::perl::opt_bool")]
        quorate: Option<bool>,
        #[serde(default)]
        level: Option<String>,
    }

    #[test]
    fn an_odd_optional_field_is_a_warning_and_a_broken_row_is_skipped() {
        let data = serde_json::json!([
            {"node": "pve01", "quorate": 1, "level": ""},
            {"node": "pve02", "quorate": 3, "level": ["x"]},
            {"quorate": 1},
        ]);
        let (rows, warnings): (Vec<Row>, _) =
            decode_list_lenient("GET", "/cluster/status", data).expect("a list");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].quorate, Some(true));
        assert_eq!(rows[1].node, "pve02");
        assert_eq!(rows[1].quorate, None);
        assert_eq!(rows[1].level, None);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("pve02") && w.contains("`quorate`") && w.contains("ignored")),
            "{warnings:?}"
        );
        assert!(warnings[2].contains("skipped"), "{warnings:?}");
        let strict: Result<Vec<Row>, _> = decode_data(
            "GET",
            "/cluster/status",
            serde_json::json!([{"node": "pve02", "quorate": 3}]),
        );
        assert!(
            strict.is_err(),
            "the strict decoder fails on the same input"
        );
    }

    /// [`decode_reply`] of a body given as bytes.
    fn reply_of(
        req: &RequestInfo<'_>,
        status: u16,
        reason: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, Error> {
        decode_reply(
            req,
            status,
            reason,
            BodyKind::default(),
            Bytes::copy_from_slice(body),
        )
    }

    #[test]
    fn the_headers_tell_json_from_a_file() {
        let of = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, http::HeaderValue::from_static(v));
            }
            BodyKind::of(&h)
        };
        let json = BodyKind::default();
        assert_eq!(of(&[]), json);
        assert_eq!(
            of(&[("content-type", "application/json;charset=UTF-8")]),
            json
        );
        assert_eq!(of(&[("content-type", "Application/JSON")]), json);
        let file = of(&[("content-type", "text/plain")]);
        assert_eq!(
            file,
            BodyKind {
                file: true,
                gzip: false
            }
        );
        let gz = of(&[
            ("content-type", "text/plain"),
            ("content-encoding", " GZIP "),
        ]);
        assert_eq!(
            gz,
            BodyKind {
                file: true,
                gzip: true
            }
        );
    }

    /// Counts the pieces a file is read in.
    #[derive(Default)]
    struct Pieces(Vec<u8>, usize);

    impl FileRead for Pieces {
        type Out = (Vec<u8>, usize);
        fn feed(&mut self, piece: &[u8]) {
            assert!(piece.len() <= FILE_PIECE, "{}", piece.len());
            self.0.extend_from_slice(piece);
            self.1 += 1;
        }
        fn finish(self) -> (Vec<u8>, usize) {
            (self.0, self.1)
        }
    }

    #[test]
    fn a_file_is_read_inflated_in_pieces_and_bounded() {
        use std::io::Write as _;
        let gz = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        };
        // the body in pieces of 1,000 bytes, as a connection might read it
        let file = |gzip: bool, body: Vec<u8>| {
            let kind = BodyKind { file: true, gzip };
            Reply::file_of(
                body.chunks(1000).map(Bytes::copy_from_slice).collect(),
                kind,
            )
        };
        let text: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("INFO: line {i}\n").into_bytes())
            .collect();
        // two gzip members (what `gzip -c a b` writes) read as one file, in pieces
        let mut two = gz(&text[..100_000]);
        two.extend(gz(&text[100_000..]));
        let mut p = Pieces::default();
        file(true, two)
            .read_file("GET", "/x", &mut p)
            .expect("inflates");
        let (read, pieces) = p.finish();
        assert_eq!(read, text);
        assert!(pieces >= text.len().div_ceil(FILE_PIECE), "{pieces}");
        // not gzipped: the body as it is
        let mut whole = Vec::new();
        file(false, text.clone())
            .read_file("GET", "/x", &mut whole)
            .expect("read");
        assert_eq!(whole, text);
        // JSON is not a file; a corrupt stream is an error naming the path
        let json = Reply {
            body: Bytes::from_static(b"{}"),
            pieces: Vec::new(),
            file: false,
            gzip: false,
        };
        assert!(matches!(
            json.read_file("GET", "/x", &mut Vec::new()),
            Err(Error::Decode { .. })
        ));
        let mut bad = gz(&text);
        let mid = bad.len() / 2;
        bad[mid..mid + 8].copy_from_slice(b"garbage!");
        let e = file(true, bad)
            .read_file("GET", "/x", &mut Vec::new())
            .expect_err("corrupt");
        assert!(e.to_string().contains("/x"), "{e}");
        // past the bound (MAX_FILE, 2 MiB here) it stops, and hands nothing past it on
        let zeros = vec![0u8; (2 << 20) + 1];
        for (gzip, body) in [(true, gz(&zeros)), (false, zeros.clone())] {
            let mut got = Vec::new();
            let e = file(gzip, body)
                .read_file_within("GET", "/big", &mut got, 2 << 20)
                .expect_err("too large");
            assert!(e.to_string().contains("larger than 2 MiB"), "{e}");
            assert!(got.len() <= 2 << 20, "{}", got.len());
        }
        let mut got = Vec::new();
        file(true, gz(&zeros[1..]))
            .read_file_within("GET", "/big", &mut got, 2 << 20)
            .expect("exactly the bound");
        assert_eq!(got.len(), 2 << 20);
    }

    #[test]
    fn text_and_byte_bodies_decode_alike() -> Result<(), Error> {
        // valid UTF-8: parsed as text; a stray byte in a field the type skips: as bytes
        let r = reply_of(
            &REQ,
            200,
            None,
            "{\"data\":[\"Grüße\"],\"total\":1}".as_bytes(),
        )?;
        let rows: Vec<String> = decode("GET", "/x", &r)?;
        assert_eq!(rows, ["Grüße"]);
        assert_eq!(r.total(), Some(1));
        let r = reply_of(&REQ, 200, None, b"{\"data\":[\"a\"],\"junk\":\"\xff\"}")?;
        let rows: Vec<String> = decode("GET", "/x", &r)?;
        assert_eq!(rows, ["a"]);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_large_reply_decodes_off_the_runtime_as_inline() -> Result<(), Error> {
        let lines: Vec<String> = (0..20_000)
            .map(|i| format!("line {i} \"quoted\""))
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "data": lines })).map_err(|e| {
            Error::InvalidInput {
                message: e.to_string(),
            }
        })?;
        assert!(
            body.len() >= DECODE_OFF_RUNTIME,
            "the body must take the blocking pool"
        );
        let r = reply_of(&REQ, 200, None, &body)?;
        let off: Vec<String> = decode_large("GET", "/x".into(), r.clone()).await?;
        assert_eq!(off, lines);
        // a failure keeps the slow path's message, naming the JSON path
        let e = decode_large::<Vec<u32>>("GET", "/x".into(), r).await.err();
        assert!(
            matches!(&e, Some(Error::Decode { json_path, .. }) if json_path != "."),
            "{e:?}"
        );
        Ok(())
    }

    const REQ: RequestInfo<'static> = RequestInfo {
        method: "POST",
        path: "/nodes/pve01/qemu/100/clone",
        endpoint: "https://pve01:8006",
    };

    #[test]
    fn success_with_data_and_total() -> Result<(), Error> {
        let r = reply_of(
            &REQ,
            200,
            Some("OK"),
            br#"{"data":[{"n":1,"t":"x"}],"total":"1"}"#,
        )?;
        assert_eq!(r.total(), Some(1));
        assert_eq!(r.data_value("GET", "/x")?[0]["t"], "x");
        let r = reply_of(&REQ, 200, None, br#"{"data":null}"#)?;
        assert!(r.data_value("GET", "/x")?.is_null());
        let unit: () = decode("GET", "/x", &r)?;
        assert_eq!(unit, ());
        let r = reply_of(&REQ, 200, None, br#"{"success":1}"#)?;
        let unit: () = decode("GET", "/x", &r)?;
        assert_eq!(unit, (), "a reply without data decodes as null");
        Ok(())
    }

    #[test]
    fn success_without_json_is_decode_error() {
        let e = reply_of(&REQ, 200, None, b"<html>").err();
        assert!(matches!(e, Some(Error::Decode { .. })), "{e:?}");
    }

    #[test]
    fn parameter_errors_400() {
        let body = br#"{"data":null,"message":"Parameter verification failed.\n","errors":{"newid":"value must have a minimum value of 100\n","name":"invalid format - value does not look like a valid DNS name\n"}}"#;
        let e = reply_of(&REQ, 400, Some("Parameter verification failed."), body).err();
        let Some(Error::Api {
            status,
            message,
            errors,
            ..
        }) = &e
        else {
            panic!("expected Api, got {e:?}");
        };
        assert_eq!(*status, 400);
        assert_eq!(message, "Parameter verification failed.");
        assert_eq!(
            errors.get("newid").map(String::as_str),
            Some("value must have a minimum value of 100")
        );
        assert_eq!(errors.len(), 2);
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            text.contains("newid: value must have a minimum value of 100"),
            "{text}"
        );
        assert!(
            text.contains("POST /nodes/pve01/qemu/100/clone failed with http 400"),
            "{text}"
        );
    }

    #[test]
    fn message_500_and_reason_fallback() {
        let body = br#"{"data":null,"message":"VM is locked (clone)\n"}"#;
        let e = reply_of(&REQ, 500, Some("VM is locked (clone)"), body).err();
        assert!(
            matches!(&e, Some(Error::Api { status: 500, message, .. }) if message == "VM is locked (clone)"),
            "{e:?}"
        );
        assert!(!e.as_ref().is_some_and(Error::is_retryable));
        // older PVE: no message field, text only in the reason phrase
        let e = reply_of(
            &REQ,
            500,
            Some("VM is locked (backup)"),
            br#"{"data":null}"#,
        )
        .err();
        assert!(
            matches!(&e, Some(Error::Api { message, .. }) if message == "VM is locked (backup)"),
            "{e:?}"
        );
        // nothing at all
        let e = reply_of(&REQ, 500, None, b"").err();
        assert!(
            matches!(&e, Some(Error::Api { message, .. }) if message == "http status 500"),
            "{e:?}"
        );
    }

    #[test]
    fn auth_forbidden_offline() {
        let e = reply_of(&REQ, 401, Some("Authentication failed!"), b"").err();
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(matches!(e, Some(Error::Unauthorized { .. })));
        assert!(
            text.contains("check the token id and secret") && text.contains("not expired"),
            "{text}"
        );

        let e = reply_of(
            &REQ,
            403,
            Some("Permission check failed (/vms/100, VM.Clone)"),
            b"",
        )
        .err();
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(&e, Some(Error::Forbidden { missing: Some((p, v)), .. }) if p == "/vms/100" && v == "VM.Clone"),
            "{e:?}"
        );
        assert!(
            text.contains("lacks privilege VM.Clone on /vms/100"),
            "{text}"
        );

        let e = reply_of(&REQ, 595, Some("No route to host"), b"").err();
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(&e, Some(Error::NodeOffline { node, .. }) if node == "pve01"),
            "{e:?}"
        );
        assert_eq!(
            text,
            "node pve01 is offline or unreachable from the cluster (595 No route to host); pick another node or check the node"
        );

        let e = reply_of(&REQ, 501, Some("Method 'POST /x' not implemented"), b"").err();
        assert!(matches!(e, Some(Error::Api { status: 501, .. })));
    }

    #[test]
    fn decode_errors_name_the_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Item {
            #[serde(deserialize_with = "crate::pve::perl::u32")]
            vmid: u32,
        }
        let data = serde_json::json!([{"vmid": 100}, {"vmid": "x"}]);
        let e = decode_data::<Vec<Item>>("GET", "/cluster/resources", data).err();
        assert!(
            matches!(&e, Some(Error::Decode { json_path, .. }) if json_path == "[1].vmid"),
            "{e:?}"
        );
    }
}
