//! `POST /nodes/{node}/storage/{storage}/download-url` (pve-manager `API2/Storage/Status.pm`
//! `download_url`, PVE::Tools `download_file_from_url`).
//!
//! The early checks are PVE's: the permission check of the schema, a file-based storage with
//! the content type enabled, the normalised filename and its extension. The `download` task
//! (id = filename) really fetches the bytes — but only over plain HTTP from loopback
//! (`127.0.0.1`, `localhost`, `::1`) and at most [`MAX_BYTES`]: any other host fails the task
//! as wget's name resolution would, so the simulator never reaches the network. Checksums
//! (sha224/256/384/512) are verified; a qcow2 image's virtual size comes from its header.
//! Only metadata is kept: the bytes are dropped once hashed.

use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::sim::api::WCtx;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{MIB, Shared, Volume, now};
use crate::sim::tasks::{NewTask, Outcome, finish, register};

/// Download size cap.
pub const MAX_BYTES: u64 = 256 * MIB;
/// `$PVE::Storage::Plugin::KNOWN_COMPRESSION_FORMATS`.
const COMPRESSIONS: &[&str] = &["gz", "lzo", "zst", "bz2"];

/// `PVE::Storage::normalize_content_filename`.
pub fn normalize_filename(name: &str) -> String {
    let base = name.trim_end_matches('\n');
    let base = base.rsplit(['/', '\\']).next().unwrap_or(base);
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The extension check of upload/download-url; returns the volume format.
pub fn check_extension(content: &str, filename: &str) -> Result<String, ApiError> {
    let lower = filename.to_ascii_lowercase();
    let ext = |e: &str| lower.len() > e.len() && lower.ends_with(e);
    match content {
        "iso" if ext(".iso") || ext(".img") => Ok("iso".into()),
        "vztmpl" => [
            (".tar.gz", "tgz"),
            (".tar.xz", "txz"),
            (".tar.zst", "tzst"),
            (".tar.bz2", "tbz2"),
        ]
        .iter()
        .find(|(e, _)| ext(e))
        .map(|(_, f)| f.to_string())
        .ok_or_else(|| ApiError::param("filename", "wrong file extension")),
        "import" => ["qcow2", "raw", "vmdk", "ova"]
            .iter()
            .find(|f| filename.ends_with(&format!(".{f}")) && filename.len() > f.len() + 1)
            .map(|f| f.to_string())
            .ok_or_else(|| ApiError::param("filename", "invalid filename or wrong extension")),
        _ => Err(ApiError::param("filename", "wrong file extension")),
    }
}

/// The directory of a content type below a storage's path.
pub fn content_dir(base: &str, content: &str) -> String {
    match content {
        "iso" => format!("{base}/template/iso"),
        "vztmpl" => format!("{base}/template/cache"),
        other => format!("{base}/{other}"),
    }
}

/// The checksum algorithms the simulator computes.
pub enum Hasher {
    S224(Sha224),
    S256(Sha256),
    S384(Sha384),
    S512(Sha512),
}

impl Hasher {
    pub fn new(algo: &str) -> Option<Hasher> {
        match algo {
            "sha224" => Some(Hasher::S224(Sha224::new())),
            "sha256" => Some(Hasher::S256(Sha256::new())),
            "sha384" => Some(Hasher::S384(Sha384::new())),
            "sha512" => Some(Hasher::S512(Sha512::new())),
            _ => None,
        }
    }
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::S224(h) => h.update(b),
            Hasher::S256(h) => h.update(b),
            Hasher::S384(h) => h.update(b),
            Hasher::S512(h) => h.update(b),
        }
    }
    pub fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::S224(h) => h.finalize().to_vec(),
            Hasher::S256(h) => h.finalize().to_vec(),
            Hasher::S384(h) => h.finalize().to_vec(),
            Hasher::S512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a finished fetch yields.
struct Fetched {
    size: u64,
    /// The first bytes (image headers).
    head: Vec<u8>,
    digest: Option<String>,
}

/// A failed step: log lines, then the task error.
type Failure = (Vec<String>, String);

/// A downloaded file's metadata, checked as `assert_file_validity` would.
pub struct Image {
    pub format: String,
    pub size: u64,
    pub virtual_size: Option<u64>,
    /// Log lines of the checks.
    pub log: Vec<String>,
}

/// The virtual size of an image of `format` from its first bytes (`QFI\xfb`, size at 24..32).
pub fn inspect(format: &str, head: &[u8], size: u64) -> Result<Option<u64>, String> {
    match format {
        "qcow2" => match head.get(24..32) {
            Some(v) if head.starts_with(b"QFI\xfb") => {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                Ok(Some(u64::from_be_bytes(b)))
            }
            _ => Err("qemu-img: Image is not in qcow2 format".into()),
        },
        "raw" | "vmdk" => Ok(Some(size)),
        _ => Ok(None),
    }
}

pub fn download_url(c: &mut WCtx) -> ApiResult {
    let (node, sid) = (c.args.node.clone(), c.args.storage.clone());
    {
        let ro = c.ro();
        ro.require(
            &format!("/storage/{sid}"),
            &["Datastore.AllocateTemplate"],
            false,
        )?;
        let modify =
            c.st.access
                .check(c.authid(), "/", &["Sys.Audit", "Sys.Modify"], false);
        if !modify {
            ro.require(&format!("/nodes/{node}"), &["Sys.AccessNetwork"], false)?;
        }
        ro.validate()?;
    }
    check_requires(c)?;
    if let Some(comp) = c.param("compression")
        && !COMPRESSIONS.contains(&comp)
    {
        return Err(ApiError::param(
            "compression",
            format!(
                "value '{comp}' does not have a value in the enumeration '{}'",
                COMPRESSIONS.join(", ")
            ),
        ));
    }
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
            "can't upload to storage type '{}', not a file based storage!",
            storage.stype
        )));
    };
    let content = c.param("content").unwrap_or("").to_string();
    if !storage.content.contains(&content) {
        return Err(ApiError::Server(format!(
            "storage '{sid}' is not configured for content-type '{content}'"
        )));
    }
    let shared_storage = storage.shared;
    let filename = normalize_filename(c.param("filename").unwrap_or(""));
    let format = check_extension(&content, &filename)?;
    let dest = format!("{}/{filename}", content_dir(&base, &content));
    let url = c.param("url").unwrap_or("").to_string();
    let job = Job {
        node: node.clone(),
        volid: format!("{sid}:{content}/{filename}"),
        storage: sid,
        shared: shared_storage,
        content,
        format,
        dest: dest.clone(),
        url: url.clone(),
        algo,
        expected: c.param("checksum").map(str::to_lowercase),
        compression: c.param("compression").map(str::to_string),
    };
    let user = c.authid().to_string();
    let (upid, injected, wait) = register(
        c.shared,
        c.st,
        NewTask {
            node: &node,
            ttype: "download",
            id: &filename,
            user: &user,
            duration_secs: 1.0,
            log: vec![format!("downloading {url} to {dest}")],
        },
    );
    let shared = Arc::clone(c.shared);
    let upid2 = upid.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let outcome = job.run(&shared, injected).await;
        let mut st = shared.lock();
        let outcome = match outcome {
            Ok(image) => job.store(&mut st, image),
            Err((log, error)) => Outcome::Err { log, error },
        };
        finish(&mut st, &upid2, outcome);
    });
    Ok(Reply::data(json!(upid)))
}

/// The schema's `requires` between `checksum` and `checksum-algorithm`.
pub fn check_requires(c: &WCtx) -> Result<(), ApiError> {
    for (k, needs) in [
        ("checksum", "checksum-algorithm"),
        ("checksum-algorithm", "checksum"),
    ] {
        if c.param(k).is_some() && c.param(needs).is_none() {
            return Err(ApiError::param(
                needs,
                format!("missing property - '{k}' requires this property"),
            ));
        }
    }
    Ok(())
}

/// A download in progress.
struct Job {
    node: String,
    volid: String,
    storage: String,
    shared: bool,
    content: String,
    format: String,
    dest: String,
    url: String,
    algo: Option<String>,
    expected: Option<String>,
    compression: Option<String>,
}

impl Job {
    fn exists(&self, st: &crate::sim::state::State) -> bool {
        st.files.iter().any(|f| {
            f.volid == self.volid && (self.shared || f.node.as_deref() == Some(&self.node))
        })
    }

    async fn run(&self, shared: &Arc<Shared>, injected: Option<String>) -> Result<Image, Failure> {
        if let Some(e) = injected {
            return Err((Vec::new(), e));
        }
        if self.exists(&shared.lock()) {
            return Err((
                Vec::new(),
                format!("refusing to override existing file '{}'", self.dest),
            ));
        }
        if self.compression.is_some() {
            if self.content != "iso" {
                return Err((
                    Vec::new(),
                    format!("decompression not supported for {}", self.content),
                ));
            }
            return Err((
                Vec::new(),
                "decompression is not implemented in the simulator".into(),
            ));
        }
        let got = fetch(&self.url, &self.dest, self.algo.as_deref()).await?;
        let mut log = Vec::new();
        if let (Some(expected), Some(got)) = (&self.expected, &got.digest) {
            if expected != got {
                log.push("calculating checksum...".to_string());
                return Err((
                    log,
                    format!("checksum mismatch: got '{got}' != expect '{expected}'"),
                ));
            }
            log.push("calculating checksum...OK, checksum verified".to_string());
        }
        let virtual_size =
            inspect(&self.format, &got.head, got.size).map_err(|e| (log.clone(), e))?;
        Ok(Image {
            format: self.format.clone(),
            size: got.size,
            virtual_size,
            log,
        })
    }

    /// Adds the file to the storage (re-checking that no file appeared meanwhile).
    fn store(&self, st: &mut crate::sim::state::State, image: Image) -> Outcome {
        if self.exists(st) {
            return Outcome::Err {
                log: Vec::new(),
                error: format!("refusing to override existing file '{}'", self.dest),
            };
        }
        st.files.push(Volume {
            volid: self.volid.clone(),
            storage: self.storage.clone(),
            node: (!self.shared).then(|| self.node.clone()),
            content: self.content.clone(),
            format: image.format.clone(),
            size: image.size,
            virtual_size: image.virtual_size,
            vmid: None,
            ctime: now(),
            notes: None,
            protected: false,
            body: None,
        });
        let mut log = image.log;
        log.push(format!(
            "download of '{}' to '{}' finished",
            self.url, self.dest
        ));
        Outcome::Ok { log, warnings: 0 }
    }
}

/// wget's failure as `run_command` reports it.
fn wget_failed(dest: &str, url: &str, code: u8, log: Vec<String>) -> Failure {
    (
        log,
        format!(
            "download failed: command 'wget --progress=dot:giga -O {dest}.tmp_dwnl.{} {url}' failed: exit code {code}",
            std::process::id()
        ),
    )
}

/// Why a loopback fetch failed; `wget`, `curl` and the download task word it their own way.
#[derive(Debug)]
pub enum FetchError {
    /// The URL does not parse (reqwest's reason).
    BadUrl(String),
    /// Not a loopback host: the simulator never reaches the network, so it fails like name
    /// resolution would.
    NotLoopback(String),
    /// Loopback, but not `http://`.
    NotHttp(String),
    Client(String),
    /// The TCP connection failed (`host:port`, reason).
    Connect(String, String),
    /// A non-2xx answer (code, canonical reason).
    Status(u16, String),
    Read(String),
    /// More than [`MAX_BYTES`].
    TooBig,
}

/// Fetches `url` over plain HTTP from loopback only (`127.0.0.1`, `localhost`, `::1`), at
/// most [`MAX_BYTES`], handing each chunk to `sink`; returns the byte count.
pub async fn fetch_url(url: &str, sink: &mut (dyn FnMut(&[u8]) + Send)) -> Result<u64, FetchError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let host = parsed.host_str().unwrap_or("").to_string();
    let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1");
    if !loopback {
        return Err(FetchError::NotLoopback(host));
    }
    if parsed.scheme() != "http" {
        return Err(FetchError::NotHttp(parsed.scheme().to_string()));
    }
    let host_port = format!("{host}:{}", parsed.port_or_known_default().unwrap_or(80));
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| FetchError::Client(e.to_string()))?;
    let mut resp = client.get(parsed).send().await.map_err(|e| {
        let reason = if e.is_connect() {
            "Connection refused".to_string()
        } else {
            e.to_string()
        };
        FetchError::Connect(host_port, reason)
    })?;
    if !resp.status().is_success() {
        let s = resp.status();
        let reason = s.canonical_reason().unwrap_or("").to_string();
        return Err(FetchError::Status(s.as_u16(), reason));
    }
    let mut size: u64 = 0;
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Read(e.to_string()))?;
        let Some(chunk) = chunk else { break };
        size += chunk.len() as u64;
        if size > MAX_BYTES {
            return Err(FetchError::TooBig);
        }
        sink(&chunk);
    }
    Ok(size)
}

/// The download task's fetch: hashing as it goes and keeping the first 512 bytes; failures
/// worded as `download_file_from_url`'s wget run reports them.
async fn fetch(url: &str, dest: &str, algo: Option<&str>) -> Result<Fetched, Failure> {
    let fail = |code, log: Vec<String>| wget_failed(dest, url, code, log);
    let mut hasher = algo.and_then(Hasher::new);
    let mut head = Vec::new();
    let mut sink = |chunk: &[u8]| {
        if head.len() < 512 {
            let take = (512 - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        if let Some(h) = hasher.as_mut() {
            h.update(chunk);
        }
    };
    let size = fetch_url(url, &mut sink).await.map_err(|e| match e {
        FetchError::BadUrl(e) => fail(1, vec![format!("{url}: Invalid URL ({e}).")]),
        FetchError::NotLoopback(host) => fail(
            4,
            vec![
                format!("Resolving {host} ({host})... failed: Name or service not known."),
                format!("wget: unable to resolve host address '{host}'"),
            ],
        ),
        FetchError::NotHttp(_) => fail(
            5,
            vec!["the simulator fetches plain http:// URLs on loopback only".into()],
        ),
        FetchError::Client(e) => fail(1, vec![format!("simulator http client: {e}")]),
        FetchError::Connect(host, e) => {
            fail(4, vec![format!("Connecting to {host}... failed: {e}.")])
        }
        FetchError::Status(code, reason) => fail(8, vec![format!("ERROR {code}: {reason}.")]),
        FetchError::Read(e) => fail(4, vec![format!("Read error ({e}).")]),
        FetchError::TooBig => fail(
            3,
            vec![format!(
                "the simulator downloads at most {} MiB",
                MAX_BYTES / MIB
            )],
        ),
    })?;
    Ok(Fetched {
        size,
        head,
        digest: hasher.map(Hasher::hex),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_normalise_and_extensions_are_checked() {
        assert_eq!(normalize_filename("../a b:c.qcow2"), "a_b_c.qcow2");
        assert!(check_extension("import", "noble.qcow2").is_ok_and(|f| f == "qcow2"));
        assert!(check_extension("import", "noble.img").is_err());
        assert!(check_extension("iso", "x.img").is_ok());
        assert!(check_extension("iso", "x.qcow2").is_err());
        assert!(check_extension("vztmpl", "d.tar.zst").is_ok_and(|f| f == "tzst"));
    }

    #[test]
    fn qcow2_virtual_size_from_header() {
        let mut h = b"QFI\xfb".to_vec();
        h.resize(32, 0);
        h[24..32].copy_from_slice(&(64 * MIB).to_be_bytes());
        assert_eq!(inspect("qcow2", &h, 200_000), Ok(Some(64 * MIB)));
        assert!(inspect("qcow2", b"not an image", 12).is_err());
        assert_eq!(inspect("raw", b"", 4096), Ok(Some(4096)));
    }
}
