//! Finding, reading and parsing `cluster-config.yaml`: the lookup order, and YAML errors turned
//! into messages that name the file, the key path (via `serde_path_to_error`), the line and the fix.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, LookedAt, Position, closest};
use super::raw::RawConfig;
use super::{Config, Env, validate};

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "PROXMOX_MANAGER_CONFIG";
/// File name inside `$XDG_CONFIG_HOME/proxmox-manager/`.
pub const CONFIG_FILE: &str = "cluster-config.yaml";

const EXAMPLE_HINT: &str = "compare with config/cluster-config.example.yaml";

/// [`super::locate`] with the environment read through `env` (tests inject a map).
///
/// # Errors
/// [`ConfigError::Missing`] when `--config` or `$PROXMOX_MANAGER_CONFIG` names a missing file;
/// [`ConfigError::NotFound`] listing every place looked otherwise.
pub fn locate_with(cli: Option<&Path>, env: Env<'_>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = cli {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(ConfigError::Missing {
                path: p.to_path_buf(),
                source_name: "--config".into(),
            })
        };
    }
    let mut looked = vec![LookedAt {
        source: "--config".into(),
        path: None,
    }];
    match env(CONFIG_ENV).filter(|s| !s.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(ConfigError::Missing {
                    path: p,
                    source_name: format!("${CONFIG_ENV}"),
                })
            };
        }
        None => looked.push(LookedAt {
            source: format!("${CONFIG_ENV}"),
            path: None,
        }),
    }
    let xdg = env("XDG_CONFIG_HOME").filter(|s| Path::new(s).is_absolute());
    let (source, dir) = match xdg {
        Some(x) => ("$XDG_CONFIG_HOME".to_string(), Some(PathBuf::from(x))),
        None => (
            "$HOME/.config, as $XDG_CONFIG_HOME is unset".to_string(),
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config")),
        ),
    };
    let candidate = dir.map(|d| d.join("proxmox-manager").join(CONFIG_FILE));
    if let Some(c) = candidate.as_ref().filter(|c| c.is_file()) {
        return Ok(c.clone());
    }
    looked.push(LookedAt {
        source,
        path: candidate,
    });
    Err(ConfigError::NotFound { looked })
}

/// Read, parse and validate the file at `path`, with `~` expanded through `env`.
///
/// # Errors
/// [`ConfigError::Read`], or any error of [`parse_with`].
pub fn load_with(path: &Path, env: Env<'_>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse_with(&text, &origin, env)
}

/// Parse and validate `text`, which came from `origin` (used in messages and to resolve relative
/// paths).
///
/// # Errors
/// [`ConfigError::Yaml`] (syntax, type, missing key), [`ConfigError::UnknownKey`], or
/// [`ConfigError::Invalid`] with every validation problem.
pub fn parse_with(text: &str, origin: &Path, env: Env<'_>) -> Result<Config, ConfigError> {
    let raw = parse_raw(text, origin)?;
    validate::validate(raw, origin, env)
}

/// Only the serde step: YAML -> [`RawConfig`].
///
/// # Errors
/// As [`parse_with`], minus validation.
pub fn parse_raw(text: &str, origin: &Path) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::Yaml {
            path: origin.to_path_buf(),
            key: None,
            position: None,
            message: "the file is empty".to_string(),
            fix: "copy config/cluster-config.example.yaml here and edit it".to_string(),
        });
    }
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, RawConfig>(de).map_err(|e| yaml_error(e, origin))
}

fn yaml_error(e: serde_path_to_error::Error<yaml_serde::Error>, origin: &Path) -> ConfigError {
    let key = dotted(e.path());
    let inner = e.inner();
    let position = inner.location().map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    let message = bare_message(&inner.to_string());
    let path = origin.to_path_buf();

    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked(rest);
        if let Some((field, allowed)) = names.split_first() {
            // serde_path_to_error already records the unknown key as the last segment.
            let full = if key == *field || key.ends_with(&format!(".{field}")) {
                key.clone()
            } else if key.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            let suggestion = closest(field, allowed).map(str::to_string);
            return ConfigError::UnknownKey {
                path,
                key: full,
                allowed: allowed.to_vec(),
                suggestion,
                position,
            };
        }
    }
    if let Some(field) = message
        .strip_prefix("missing field ")
        .and_then(|rest| backticked(rest).into_iter().next())
    {
        let full = if key.is_empty() {
            field
        } else {
            format!("{key}.{field}")
        };
        return ConfigError::Yaml {
            path,
            key: Some(full.clone()),
            position,
            message: "required key is missing".to_string(),
            fix: format!("add `{full}` ({EXAMPLE_HINT})"),
        };
    }
    let (key, fix) = if key.is_empty() {
        (
            None,
            format!("fix the YAML at that position ({EXAMPLE_HINT})"),
        )
    } else {
        let fix = format!("give `{key}` a value of the expected type ({EXAMPLE_HINT})");
        (Some(key), fix)
    };
    ConfigError::Yaml {
        path,
        key,
        position,
        message,
        fix,
    }
}

/// `cluster.nodes[1].host` from serde_path_to_error's path (`.` alone means the root).
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Unknown => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push('?');
            }
        }
    }
    s
}

/// yaml_serde's message without its own `path: ` prefix and ` at line L column C` suffix (we
/// report both separately).
fn bare_message(full: &str) -> String {
    let mut m = full;
    if let Some(i) = m.rfind(" at line ") {
        let tail = &m[i + " at line ".len()..];
        let looks_like_mark = tail.split_once(" column ").is_some_and(|(l, c)| {
            l.chars().all(|ch| ch.is_ascii_digit()) && c.chars().all(|ch| ch.is_ascii_digit())
        });
        if looks_like_mark {
            m = &m[..i];
        }
    }
    if let Some((prefix, rest)) = m.split_once(": ") {
        let is_path = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'));
        if is_path && !rest.is_empty() {
            m = rest;
        }
    }
    // serde names our Rust types ("expected struct RawCluster"); say what YAML wants instead.
    match m.find("expected struct Raw") {
        Some(i) => format!("{}expected a mapping of keys", &m[..i]),
        None => m.to_string(),
    }
}

/// The `x` parts of a serde message such as "unknown field `a`, expected one of `b`, `c`".
fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_message_strips_path_and_mark() {
        assert_eq!(
            bare_message("defaults: unknown field `x` at line 3 column 5"),
            "unknown field `x`"
        );
        assert_eq!(
            bare_message("invalid type: integer `3`, expected a string"),
            "invalid type: integer `3`, expected a string"
        );
    }

    #[test]
    fn backticked_extracts_names() {
        assert_eq!(
            backticked("`a`, expected one of `b`, `c`"),
            vec!["a", "b", "c"]
        );
        assert_eq!(backticked("`a`, expected `b` or `c`"), vec!["a", "b", "c"]);
    }
}
