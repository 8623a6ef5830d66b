//! Errors of the configuration module: every one names the file, the key path and the fix.
//! Credential errors live in [`super::credentials`]; neither kind ever carries a secret.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with an otherwise well-formed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `cluster.nodes[1].host`.
    pub key: String,
    /// What is wrong, e.g. `'1000-999' ends before it starts`.
    pub message: String,
    /// How to fix it, e.g. `write it as START-END, e.g. 1000-9999`.
    pub fix: String,
}

impl Problem {
    pub(crate) fn new(
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        Problem {
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} — {}", self.key, self.message, self.fix)
    }
}

/// A line/column position in the YAML file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where the file was looked for, for [`ConfigError::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookedAt {
    /// `--config`, `$PROXMOX_MANAGER_CONFIG`, `$XDG_CONFIG_HOME`, `$HOME`.
    pub source: String,
    /// The path tried, or `None` when the source was unset.
    pub path: Option<PathBuf>,
}

/// Everything that can go wrong finding, reading, parsing or validating `cluster-config.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No configuration file in any of the places looked.
    #[error("no cluster configuration found; looked at: {}; copy config/cluster-config.example.yaml to one of these places (or pass --config PATH) and edit it", looked_list(.looked))]
    NotFound { looked: Vec<LookedAt> },

    /// `--config` or `$PROXMOX_MANAGER_CONFIG` names a file that does not exist.
    #[error("{}: configuration file given by {source_name} does not exist — check the path, or copy config/cluster-config.example.yaml there", .path.display())]
    Missing { path: PathBuf, source_name: String },

    /// The file exists but cannot be read.
    #[error("{}: cannot read the configuration: {source} — check the path and its permissions", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Not valid YAML, a value of the wrong type, or a required key missing.
    #[error("{}{}: {}{} — {}", .path.display(), pos(.position), key_prefix(.key), .message, .fix)]
    Yaml {
        path: PathBuf,
        key: Option<String>,
        position: Option<Position>,
        message: String,
        fix: String,
    },

    /// A key the format does not have (typo or misplaced key).
    #[error("{}{}: unknown key `{}`; allowed: {}{}", .path.display(), pos(.position), .key, .allowed.join(", "), suggestion_text(.suggestion))]
    UnknownKey {
        path: PathBuf,
        /// Full dotted path of the unknown key, e.g. `defaults.stroage`.
        key: String,
        allowed: Vec<String>,
        /// The closest allowed key, when one is close.
        suggestion: Option<String>,
        position: Option<Position>,
    },

    /// Well-formed YAML whose values are wrong; all problems, not just the first.
    #[error("{}: {}", .path.display(), problems_text(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`] (empty for other kinds).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn looked_list(looked: &[LookedAt]) -> String {
    looked
        .iter()
        .map(|l| match &l.path {
            Some(p) => format!("{} ({})", p.display(), l.source),
            None => format!("{} (unset)", l.source),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pos(p: &Option<Position>) -> String {
    match p {
        Some(p) => format!(":{}:{}", p.line, p.column),
        None => String::new(),
    }
}

fn key_prefix(k: &Option<String>) -> String {
    match k {
        Some(k) if !k.is_empty() => format!("{k}: "),
        _ => String::new(),
    }
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("; did you mean `{s}`?"),
        None => " — remove it or move it under the right section".to_string(),
    }
}

fn problems_text(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} problems:", many.len());
            for p in many {
                s.push_str("\n  - ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment),
/// for "did you mean" suggestions on short key names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The allowed key closest to `key`, if it is plausibly a typo of it.
pub(crate) fn closest<'a>(key: &str, allowed: &'a [String]) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("stroage", "storage"), 1);
        assert_eq!(edit_distance("hots", "host"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("bios", "bios"), 0);
    }

    #[test]
    fn closest_suggests_only_near_keys() {
        let allowed = vec![
            "storage".to_string(),
            "network_bridge".to_string(),
            "bios".to_string(),
        ];
        assert_eq!(closest("stroage", &allowed), Some("storage"));
        assert_eq!(closest("zzzzzzzz", &allowed), None);
    }

    #[test]
    fn invalid_lists_every_problem() {
        let e = ConfigError::Invalid {
            path: PathBuf::from("/c.yaml"),
            problems: vec![
                Problem::new("a", "bad", "fix a"),
                Problem::new("b", "worse", "fix b"),
            ],
        };
        let s = e.to_string();
        assert!(s.starts_with("/c.yaml: 2 problems:"), "{s}");
        assert!(s.contains("\n  - a: bad — fix a"), "{s}");
        assert!(s.contains("\n  - b: worse — fix b"), "{s}");
    }
}
