//! Local files a tool may upload to the cluster (`template_from_iso` with an absolute path).
//!
//! A path given by the model is untrusted: it is accepted only when it is a regular file (not a
//! symlink, FIFO, device or directory) inside one of `paths.uploads` (default: the Downloads
//! directory — `$XDG_DOWNLOAD_DIR`, else `~/Downloads` — and the server's working directory),
//! checked both as written and after resolving every link in its directories. A path outside
//! those directories is refused before anything on the file system is touched, with the same
//! words whether it exists or not. The content is checked too: an `.iso` must carry the ISO 9660
//! (`CD001`) or UDF (`BEA01`) signature at offset 0x8001; an `.img` (a raw floppy/USB image,
//! which has no signature) must not be empty, and a qcow2 file (`QFI\xfb`) is refused there,
//! since an ISO storage serves `.img` files raw.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::config::{self, Config};

use super::super::Error;

/// The directories uploads may come from, as configured or by default.
pub fn upload_dirs(config: &Config, env: config::Env<'_>) -> Vec<PathBuf> {
    if let Some(dirs) = &config.paths.uploads {
        return dirs.clone();
    }
    let mut dirs = Vec::new();
    let downloads = env("XDG_DOWNLOAD_DIR")
        .filter(|d| Path::new(d).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join("Downloads"))
        });
    dirs.extend(downloads);
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd);
    }
    dirs
}

fn not_allowed(raw: &str, dirs: &[PathBuf]) -> Error {
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Error::invalid(
        "iso",
        format!(
            "'{raw}' is not an allowed upload source: local files are uploaded only from {} (paths.uploads in cluster-config.yaml), as regular files, not symlinks; copy the file there, or give a URL or a storage volume instead",
            if list.is_empty() {
                "the directories in paths.uploads (none is set)".to_string()
            } else {
                list.join(", ")
            }
        ),
    )
}

/// Checks a local upload source and returns the resolved path to read it from.
///
/// # Errors
/// [`Error::InvalidArgument`] ("not an allowed upload source") for a path outside the allowed
/// directories, with `..`, a symlink or anything but a regular file, or content that is not what
/// its name says; [`Error::NotFound`] only for a missing file inside an allowed directory.
pub fn check_local_source(
    config: &Config,
    env: config::Env<'_>,
    raw: &str,
) -> Result<PathBuf, Error> {
    let dirs = upload_dirs(config, env);
    let path = Path::new(raw);
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(not_allowed(raw, &dirs));
    }
    // Lexical containment first: nothing outside the allowed directories is even looked at.
    let resolved_dirs: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
    let lexically_inside = dirs
        .iter()
        .chain(resolved_dirs.iter())
        .any(|d| path.starts_with(d) && path != d);
    if !lexically_inside {
        return Err(not_allowed(raw, &dirs));
    }
    // Resolve the directory part first: a symlinked directory leading outside is refused
    // before the file's existence is looked up, so nothing outside is revealed.
    let (Some(parent), Some(file_name)) = (path.parent(), path.file_name()) else {
        return Err(not_allowed(raw, &dirs));
    };
    let parent = parent.canonicalize().map_err(|_| not_allowed(raw, &dirs))?;
    if !resolved_dirs.iter().any(|d| parent.starts_with(d)) {
        return Err(not_allowed(raw, &dirs));
    }
    let resolved = parent.join(file_name);
    let meta = match std::fs::symlink_metadata(&resolved) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                what: format!("local file {raw}"),
                hint: "check the file name in the upload directory".into(),
            });
        }
        Err(_) => return Err(not_allowed(raw, &dirs)),
    };
    // Only a regular file: a symlink is not followed, a FIFO or device never opened.
    if !meta.file_type().is_file() {
        return Err(not_allowed(raw, &dirs));
    }
    check_content(&resolved, raw)?;
    Ok(resolved)
}

/// Offset of the volume descriptor identifier in an ISO 9660 / UDF image.
const ISO_MAGIC_OFFSET: u64 = 0x8001;

fn check_content(path: &Path, raw: &str) -> Result<(), Error> {
    let lower = raw.to_ascii_lowercase();
    let unreadable = |e: std::io::Error| Error::Setup(format!("cannot read {raw}: {e}"));
    let mut f = std::fs::File::open(path).map_err(unreadable)?;
    let meta = f.metadata().map_err(unreadable)?;
    if !meta.file_type().is_file() {
        return Err(Error::invalid(
            "iso",
            format!("'{raw}' is not an allowed upload source: not a regular file"),
        ));
    }
    if lower.ends_with(".iso") {
        let mut magic = [0u8; 5];
        let ok = f.seek(SeekFrom::Start(ISO_MAGIC_OFFSET)).is_ok()
            && f.read_exact(&mut magic).is_ok()
            && (&magic == b"CD001" || &magic == b"BEA01");
        if !ok {
            return Err(Error::invalid(
                "iso",
                format!(
                    "'{raw}' is not an ISO image (no ISO 9660 `CD001` or UDF signature at offset 0x8001); give the installer's .iso file"
                ),
            ));
        }
        return Ok(());
    }
    if meta.len() == 0 {
        return Err(Error::invalid(
            "iso",
            format!("'{raw}' is empty; give a raw disk image"),
        ));
    }
    let mut magic = [0u8; 4];
    if f.read_exact(&mut magic).is_ok() && &magic == b"QFI\xfb" {
        return Err(Error::invalid(
            "iso",
            format!(
                "'{raw}' is a qcow2 image: an ISO storage serves .img files raw; import it as a disk with template_import_disk instead"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso_bytes() -> Vec<u8> {
        let mut v = vec![0u8; 0x8000 + 2048];
        v[0x8001..0x8006].copy_from_slice(b"CD001");
        v
    }

    fn setup() -> (tempfile::TempDir, Config, PathBuf) {
        let tmp = tempfile::tempdir().expect("tmp");
        let allowed = tmp.path().join("dl");
        std::fs::create_dir_all(&allowed).expect("dir");
        let mut cfg = config::sim_config(8006, [0; 32]);
        cfg.paths.uploads = Some(vec![allowed.clone()]);
        (tmp, cfg, allowed)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_regular_iso_inside_an_upload_dir_is_accepted() {
        let (_t, cfg, dl) = setup();
        let iso = dl.join("debian.iso");
        std::fs::write(&iso, iso_bytes()).expect("write");
        let got = check_local_source(&cfg, &no_env, iso.to_str().expect("utf-8")).expect("ok");
        assert_eq!(got, iso.canonicalize().expect("canon"));
        let img = dl.join("floppy.img");
        std::fs::write(&img, b"raw bytes").expect("write");
        assert!(check_local_source(&cfg, &no_env, img.to_str().expect("utf-8")).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_outside_paths_and_wrong_content_are_refused_alike() {
        let (t, cfg, dl) = setup();
        // A symlink named .iso inside the allowed dir, pointing at /etc/passwd.
        let link = dl.join("passwd.iso");
        std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
        // A symlinked directory leading outside.
        std::os::unix::fs::symlink("/etc", dl.join("etc")).expect("symlink");
        let outside = t.path().join("outside.iso");
        std::fs::write(&outside, iso_bytes()).expect("write");
        for p in [
            link.display().to_string(),
            dl.join("etc/passwd.iso").display().to_string(),
            outside.display().to_string(),
            "/etc/passwd.iso".into(),
            "/nonexistent/secret.iso".into(),
            format!("{}/../outside.iso", dl.display()),
        ] {
            let err = check_local_source(&cfg, &no_env, &p)
                .expect_err(&p)
                .to_string();
            assert!(err.contains("not an allowed upload source"), "{p}: {err}");
            assert!(
                !err.contains("No such file") && !err.contains("not found"),
                "existence is not revealed: {err}"
            );
        }
        // Outside the allowed dirs, an existing and a missing file get the same words.
        let exists = check_local_source(&cfg, &no_env, "/etc/hostname.iso")
            .expect_err("x")
            .to_string();
        let missing = check_local_source(&cfg, &no_env, "/etc/no-such-file.iso")
            .expect_err("x")
            .to_string();
        assert_eq!(
            exists.replace("hostname", "X"),
            missing.replace("no-such-file", "X")
        );

        let fake = dl.join("fake.iso");
        std::fs::write(&fake, b"not an iso at all").expect("write");
        let err = check_local_source(&cfg, &no_env, fake.to_str().expect("utf-8"))
            .expect_err("fake")
            .to_string();
        assert!(err.contains("not an ISO image"), "{err}");
        let qcow = dl.join("disk.img");
        std::fs::write(&qcow, b"QFI\xfb\0\0\0\x03rest").expect("write");
        let err = check_local_source(&cfg, &no_env, qcow.to_str().expect("utf-8"))
            .expect_err("qcow2")
            .to_string();
        assert!(err.contains("qcow2"), "{err}");
        let empty = dl.join("empty.img");
        std::fs::write(&empty, b"").expect("write");
        assert!(check_local_source(&cfg, &no_env, empty.to_str().expect("utf-8")).is_err());
    }

    #[test]
    fn the_default_dirs_are_downloads_and_the_working_directory() {
        let mut cfg = config::sim_config(8006, [0; 32]);
        cfg.paths.uploads = None;
        let env = |k: &str| (k == "HOME").then(|| "/home/ada".to_string());
        let dirs = upload_dirs(&cfg, &env);
        assert_eq!(dirs[0], PathBuf::from("/home/ada/Downloads"));
        assert_eq!(dirs.get(1), std::env::current_dir().ok().as_ref());
        let env = |k: &str| match k {
            "XDG_DOWNLOAD_DIR" => Some("/data/dl".to_string()),
            "HOME" => Some("/home/ada".to_string()),
            _ => None,
        };
        assert_eq!(upload_dirs(&cfg, &env)[0], PathBuf::from("/data/dl"));
    }
}
