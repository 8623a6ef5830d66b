//! The node filesystem model: what `wget`, `sha256sum`, `qemu-img`, `rm`, `test`, `> FILE`
//! redirects and SFTP see on one node.
//!
//! Modelled: plain files (`/var/tmp`, `/tmp`, `/root` and any other existing directory) kept
//! per node in `State::node_files`, and every file-based storage's content directories
//! (`<path>/template/iso`, `<path>/template/cache`, `<path>/snippets`, `<path>/import`,
//! `<path>/dump`) for storages with a `path` that are enabled and available on the node. A file
//! in a content directory whose name that content type lists (`.iso`/`.img` for ISOs, the
//! `import` extensions, any name for snippets, `vzdump-*` backups, `.tar.*` templates) IS the
//! storage's volume in `State::files`, so the API's storage content shows it at once; other
//! names there stay plain files, as PVE's listing would skip them. `/etc/pve` is read-only.
//!
//! Not modelled: directories as objects (no mkdir; the set is fixed), `images/` (guest disks
//! come from configs), symlinks, owners. Bytes are not stored: a file keeps its size, sha256,
//! sha512, format and virtual size (from the qcow2 header), and its bytes only up to
//! [`KEEP_CONTENT`]. Files the simulator never saw the bytes of (seeded volumes) get stable
//! made-up digests.

use super::super::state::{Body, State, Storage, Volume, now};
pub use super::blob::{Blob, Writer, made_up, rehash};

pub use super::blob::KEEP_CONTENT;

/// A plain (non-storage) file of a node.
#[derive(Clone, Debug)]
pub struct NodeFile {
    pub size: u64,
    /// `raw`, `qcow2`, `iso`.
    pub format: String,
    pub virtual_size: Option<u64>,
    pub body: Body,
    /// Permission bits.
    pub mode: u32,
}

/// A file as the commands see it, plain or a storage volume.
#[derive(Clone, Debug)]
pub struct FileView {
    pub size: u64,
    pub format: String,
    pub virtual_size: Option<u64>,
    /// Digests always filled (made up for files whose bytes the simulator never saw).
    pub body: Body,
    pub mode: u32,
}

/// Why a path cannot be used; the `Display` is the `strerror` text tools print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("No such file or directory")]
    NotFound,
    #[error("Is a directory")]
    IsDir,
    #[error("Permission denied")]
    ReadOnly,
}

/// An absolute, normalised path (`.`/`..`/`//` resolved; relative paths start at `/root`).
pub fn normalize(path: &str) -> String {
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/root/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in full.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Whether `storage` is enabled and may be used on `node` (`nodes`, `disable`).
pub fn available(s: &Storage, node: &str) -> bool {
    let listed = s
        .props
        .get("nodes")
        .is_none_or(|n| n.split([',', ' ', ';']).any(|x| x == node));
    listed && s.props.get("disable").is_none_or(|d| d == "0")
}

/// The directory of a content type below a storage path (`backup` is `dump`).
pub fn content_subdir(content: &str) -> Option<&'static str> {
    Some(match content {
        "iso" => "template/iso",
        "vztmpl" => "template/cache",
        "snippets" => "snippets",
        "import" => "import",
        "backup" => "dump",
        _ => return None,
    })
}

/// `(directory, storage, content)` of every content directory on `node`.
fn content_dirs<'a>(st: &'a State, node: &str) -> Vec<(String, &'a Storage, &'a str)> {
    let mut out = Vec::new();
    for s in st.storages.iter().filter(|s| available(s, node)) {
        let Some(base) = s.props.get("path") else {
            continue;
        };
        for c in &s.content {
            if let Some(sub) = content_subdir(c) {
                out.push((normalize(&format!("{base}/{sub}")), s, c.as_str()));
            }
        }
    }
    out
}

const FIXED_DIRS: &[&str] = &["/", "/tmp", "/var/tmp", "/root", "/etc/pve", "/var/lib/vz"];

/// Whether `path` is an existing directory on `node`.
pub fn is_dir(st: &State, node: &str, path: &str) -> bool {
    let path = normalize(path);
    let ancestor = |d: &str| d == path || d.starts_with(&format!("{path}/")) || path == "/";
    FIXED_DIRS.iter().any(|d| ancestor(d))
        || content_dirs(st, node).iter().any(|(d, _, _)| ancestor(d))
}

/// The format a storage lists a file of `content` as, or `None` if it does not list it.
fn volume_format(content: &str, file: &str) -> Option<String> {
    let lower = file.to_ascii_lowercase();
    let ends = |e: &str| lower.len() > e.len() && lower.ends_with(e);
    match content {
        "iso" if ends(".iso") || ends(".img") => Some("iso".into()),
        "snippets" => Some("snippet".into()),
        "backup" if lower.starts_with("vzdump-") => {
            file.split_once('.').map(|(_, e)| e.to_string())
        }
        "vztmpl" | "import" => {
            crate::sim::api::storage::download::check_extension(content, file).ok()
        }
        _ => None,
    }
}

/// Where a path lives: a storage volume id (storage, volname, content) or a plain path.
enum Target<'a> {
    Plain(String),
    Volume(&'a Storage, String, String),
}

fn target<'a>(st: &'a State, node: &str, path: &str) -> Target<'a> {
    let path = normalize(path);
    let (dir, file) = (parent(&path), &path[parent(&path).len()..]);
    let file = file.trim_start_matches('/');
    for (d, s, c) in content_dirs(st, node) {
        if d == dir
            && let Some(_format) = volume_format(c, file)
        {
            return Target::Volume(s, format!("{}:{c}/{file}", s.id), c.to_string());
        }
    }
    Target::Plain(path)
}

fn visible(v: &Volume, shared: bool, node: &str) -> bool {
    shared || v.node.as_deref() == Some(node)
}

/// The file at `path` on `node`, if there is one.
pub fn stat(st: &State, node: &str, path: &str) -> Option<FileView> {
    match target(st, node, path) {
        Target::Plain(p) => st.node_files.get(node)?.get(&p).map(|f| FileView {
            size: f.size,
            format: f.format.clone(),
            virtual_size: f.virtual_size,
            body: f.body.clone(),
            mode: f.mode,
        }),
        Target::Volume(s, volid, _) => {
            let v = st
                .files
                .iter()
                .find(|v| v.volid == volid && visible(v, s.shared, node))?;
            Some(FileView {
                size: v.size,
                format: v.format.clone(),
                virtual_size: v.virtual_size,
                body: v
                    .body
                    .clone()
                    .unwrap_or_else(|| made_up(&format!("{volid}:{}", v.size))),
                mode: 0o644,
            })
        }
    }
}

/// Whether a file may be created at `path` (its directory exists and is writable).
pub fn check_writable(st: &State, node: &str, path: &str) -> Result<(), FsError> {
    let path = normalize(path);
    if is_dir(st, node, &path) {
        return Err(FsError::IsDir);
    }
    if path.starts_with("/etc/pve/") {
        return Err(FsError::ReadOnly);
    }
    if !is_dir(st, node, parent(&path)) {
        return Err(FsError::NotFound);
    }
    Ok(())
}

/// The format and virtual size of written bytes: qcow2 by its header, else by `format`.
fn image_info(blob: &Blob, format: &str) -> (String, Option<u64>) {
    if let Ok(Some(v)) = crate::sim::api::storage::download::inspect("qcow2", &blob.head, blob.size)
    {
        return ("qcow2".into(), Some(v));
    }
    let vsize = match format {
        "raw" | "vmdk" => Some(blob.size),
        _ => None,
    };
    (format.to_string(), vsize)
}

/// Creates or replaces the file at `path` with `blob`.
pub fn write(st: &mut State, node: &str, path: &str, blob: Blob) -> Result<(), FsError> {
    check_writable(st, node, path)?;
    match target(st, node, path) {
        Target::Plain(p) => {
            let guess = if p.to_ascii_lowercase().ends_with(".iso") {
                "iso"
            } else {
                "raw"
            };
            let (format, virtual_size) = image_info(&blob, guess);
            let mode = stat(st, node, &p).map_or(0o644, |f| f.mode);
            let file = NodeFile {
                size: blob.size,
                format,
                virtual_size,
                body: blob.body,
                mode,
            };
            st.node_files
                .entry(node.to_string())
                .or_default()
                .insert(p, file);
        }
        Target::Volume(s, volid, content) => {
            let file = volid.rsplit('/').next().unwrap_or("").to_string();
            let listed = volume_format(&content, &file).unwrap_or_default();
            let (format, virtual_size) = match content.as_str() {
                "import" => image_info(&blob, &listed),
                _ => (listed, None),
            };
            let vol = Volume {
                volid: volid.clone(),
                storage: s.id.clone(),
                node: (!s.shared).then(|| node.to_string()),
                vmid: file
                    .strip_prefix("vzdump-qemu-")
                    .or_else(|| file.strip_prefix("vzdump-lxc-"))
                    .and_then(|r| r.split('-').next())
                    .and_then(|v| v.parse().ok()),
                content,
                format,
                size: blob.size,
                virtual_size,
                ctime: now(),
                notes: None,
                protected: false,
                body: Some(blob.body),
            };
            let shared = s.shared;
            st.files
                .retain(|v| !(v.volid == volid && visible(v, shared, node)));
            st.files.push(vol);
        }
    }
    Ok(())
}

/// Removes the file at `path`.
pub fn remove(st: &mut State, node: &str, path: &str) -> Result<(), FsError> {
    if is_dir(st, node, path) {
        return Err(FsError::IsDir);
    }
    if stat(st, node, path).is_none() {
        return Err(FsError::NotFound);
    }
    if normalize(path).starts_with("/etc/pve/") {
        return Err(FsError::ReadOnly);
    }
    match target(st, node, path) {
        Target::Plain(p) => {
            if let Some(files) = st.node_files.get_mut(node) {
                files.remove(&p);
            }
        }
        Target::Volume(s, volid, _) => {
            let shared = s.shared;
            st.files
                .retain(|v| !(v.volid == volid && visible(v, shared, node)));
        }
    }
    Ok(())
}

/// Replaces the file at `path` by `f(current)`: the resize and chmod of existing files.
pub fn update(
    st: &mut State,
    node: &str,
    path: &str,
    f: impl FnOnce(&mut FileView),
) -> Result<(), FsError> {
    let mut view = stat(st, node, path).ok_or(FsError::NotFound)?;
    f(&mut view);
    match target(st, node, path) {
        Target::Plain(p) => {
            if let Some(file) = st.node_files.get_mut(node).and_then(|m| m.get_mut(&p)) {
                file.size = view.size;
                file.virtual_size = view.virtual_size;
                file.body = view.body;
                file.mode = view.mode;
            }
        }
        Target::Volume(s, volid, _) => {
            let shared = s.shared;
            if let Some(v) = st
                .files
                .iter_mut()
                .find(|v| v.volid == volid && visible(v, shared, node))
            {
                v.size = view.size;
                v.virtual_size = view.virtual_size;
                v.body = Some(view.body);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        assert_eq!(normalize("/var//lib/./vz/../vz/x"), "/var/lib/vz/x");
        assert_eq!(normalize("x.qcow2"), "/root/x.qcow2");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
    }
}
