//! Syntactic checks of single values, PVE's formats written by hand (storage ids, bridges,
//! tags, machine types, node names), hosts, fingerprints and `~` expansion. Pure functions: no
//! I/O besides reading `$HOME` through the injected [`Env`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::Env;

/// `~` -> `$HOME`, relative -> relative to `base`.
pub(crate) fn expand_path(p: &str, base: &Path, env: Env<'_>) -> Result<PathBuf, (String, String)> {
    if p.trim().is_empty() {
        return Err(("is empty".into(), "give a path, or remove the key".into()));
    }
    if p == "~" || p.starts_with("~/") {
        let Some(home) = env("HOME").filter(|h| !h.is_empty()) else {
            return Err((
                format!("'{p}' starts with ~ but HOME is not set"),
                "write an absolute path, or set HOME".into(),
            ));
        };
        let rest = p.trim_start_matches('~').trim_start_matches('/');
        let home = PathBuf::from(home);
        return Ok(if rest.is_empty() {
            home
        } else {
            home.join(rest)
        });
    }
    if p.starts_with('~') {
        return Err((
            format!("'{p}': ~user paths are not supported"),
            "write an absolute path, or one starting with ~/".into(),
        ));
    }
    let path = Path::new(p);
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    })
}

/// A bare host name or IP address; explains what to drop otherwise.
pub(crate) fn check_host(raw: &str) -> Result<String, (String, String)> {
    let h = raw.trim();
    if h.is_empty() {
        return Err((
            "is empty".into(),
            "give the node's host name or IP address, e.g. pve01.example.net".into(),
        ));
    }
    let mut dropped = Vec::new();
    let mut rest = h;
    if let Some((scheme, after)) = rest.split_once("://") {
        dropped.push(format!(
            "the scheme `{scheme}://` (the API is always https)"
        ));
        rest = after;
    }
    if let Some((before, _path)) = rest.split_once('/') {
        dropped.push("the path".to_string());
        rest = before;
    }
    let mut clean = rest.to_string();
    if let Some(inner) = rest.strip_prefix('[') {
        if let Some((ip, after)) = inner.split_once(']') {
            clean = ip.to_string();
            if let Some(port) = after.strip_prefix(':') {
                dropped.push(format!("the port `:{port}` (set api.port instead)"));
            } else {
                dropped.push("the brackets".to_string());
            }
        }
    } else if let Some((host, port)) = rest
        .rsplit_once(':')
        .filter(|_| rest.parse::<IpAddr>().is_err())
    {
        dropped.push(format!("the port `:{port}` (set api.port instead)"));
        clean = host.to_string();
    }
    let valid = clean.parse::<IpAddr>().is_ok() || valid_hostname(&clean);
    match (valid, dropped.is_empty()) {
        (true, true) => Ok(clean),
        (true, false) => Err((
            format!("'{h}' is not a bare host name"),
            format!("drop {}: write `{clean}`", dropped.join(" and ")),
        )),
        (false, _) => Err((
            format!("'{h}' is not a valid host name or IP address"),
            "give the node's DNS name (letters, digits, hyphens, dots) or its IP address, without scheme or port".into(),
        )),
    }
}

pub(crate) fn valid_hostname(h: &str) -> bool {
    h.len() <= 253
        && !h.is_empty()
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`, at most 63 characters.
pub(crate) fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

/// PVE `pve-storage-id`: `[a-z][a-z0-9\-_.]*[a-z0-9]`.
pub(crate) fn valid_storage_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')
        })
}

/// PVE `pve-bridge-id` (`[-_.\w\d]+`), bounded by Linux's 15-character interface names.
pub(crate) fn valid_bridge(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// PVE tag: `[a-z0-9_][a-z0-9_\-+.]*` (lowercase only, by our convention).
pub fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' => {}
        _ => return false,
    }
    chars
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+' | '.'))
}

/// `q35 | pc | pc-q35-V | pc-i440fx-V | pc-V` (with optional `+pveN` and `.pxe`) or `virt[-V][+pveN]`.
pub(crate) fn valid_machine(m: &str) -> bool {
    if m == "q35" || m == "pc" {
        return true;
    }
    if let Some(rest) = m.strip_prefix("virt") {
        let rest = rest.strip_prefix('-').map_or(Some(rest), strip_version);
        return rest.map(strip_pve).is_some_and(str::is_empty);
    }
    let versioned = ["pc-q35-", "pc-i440fx-", "pc-"]
        .iter()
        .find_map(|p| m.strip_prefix(p));
    versioned
        .and_then(strip_version)
        .map(strip_pve)
        .map(|r| r.strip_prefix(".pxe").unwrap_or(r))
        .is_some_and(str::is_empty)
}

/// Strip `\d+(\.\d+)+`; `None` if absent.
fn strip_version(s: &str) -> Option<&str> {
    let mut parts = 0;
    let mut rest = s;
    loop {
        let n = rest.chars().take_while(char::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &rest[n..];
        parts += 1;
        match rest.strip_prefix('.') {
            Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => rest = r,
            _ => break,
        }
    }
    (parts >= 2).then_some(rest)
}

fn strip_pve(s: &str) -> &str {
    match s.strip_prefix("+pve") {
        Some(r) => {
            let n = r.chars().take_while(char::is_ascii_digit).count();
            if n == 0 { s } else { &r[n..] }
        }
        None => s,
    }
}

/// A CPU type, optionally followed by `,key=value` options.
pub(crate) fn valid_cpu(c: &str) -> bool {
    let mut parts = c.split(',');
    let head = parts.next().unwrap_or_default();
    !head.is_empty()
        && head
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.' | '+'))
        && parts.all(|p| {
            p.split_once('=')
                .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
        })
}

/// 64 hex digits, colons optional, any case.
pub(crate) fn parse_fingerprint(f: &str) -> Option<[u8; 32]> {
    let hex: String = f.trim().chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
