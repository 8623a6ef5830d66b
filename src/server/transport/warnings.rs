//! Start-up warnings about the HTTP bearer token: a token file other users can read, a token
//! short enough to guess. They name the file and the fix, never the token.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

/// Shortest bearer token accepted without a warning.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Warnings for `token`, read from `file` when it came from `--token-file`.
pub fn token_warnings(token: &SecretString, file: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(path) = file
        && let Some(mode) = file_mode(path)
        && mode & 0o077 != 0
    {
        out.push(format!(
            "the HTTP token file {} can be read by other users (mode {:03o}); anyone who reads it \
             controls the cluster: run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    if token.expose_secret().trim().chars().count() < MIN_TOKEN_CHARS {
        out.push(format!(
            "the HTTP bearer token is shorter than {MIN_TOKEN_CHARS} characters and may be \
             guessed; generate one with `openssl rand -hex 32`"
        ));
    }
    out
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_and_open_files_warn_without_the_token() {
        let short = SecretString::from("s3cr3t-short".to_string());
        let w = token_warnings(&short, None);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("32") && !w[0].contains("s3cr3t"), "{w:?}");
        let long = SecretString::from("a".repeat(MIN_TOKEN_CHARS));
        assert!(token_warnings(&long, None).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn token_file_readable_by_others_warns() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "b".repeat(40)).expect("write");
        let long = SecretString::from("b".repeat(40));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(token_warnings(&long, Some(&path)).is_empty());
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let w = token_warnings(&long, Some(&path));
            assert_eq!(w.len(), 1, "{mode:o}");
            assert!(w[0].contains("chmod 600"), "{w:?}");
        }
    }
}
