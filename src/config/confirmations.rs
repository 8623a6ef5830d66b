//! `confirmations:` and `elicitation:` — who approves a destructive call.
//!
//! ```yaml
//! confirmations: auto        # auto (default) | elicit | argument
//! elicitation:
//!   timeout_secs: 300        # how long the confirmation dialog waits for the person
//!   typed_name_above: 10     # more guests than this: the person types a name or count
//! ```
//!
//! - `auto`: when the MCP client declared the elicitation capability, the person approves every
//!   destructive call in the client's own dialog (`confirm: true` from the model is not enough);
//!   otherwise the `confirm: true` argument approves, as before.
//! - `elicit`: destructive calls from a client that cannot ask the person are refused (shared or
//!   unattended setups where nobody should act on the model's word alone).
//! - `argument`: `confirm: true` approves, no dialog (scripted clients).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

/// `elicitation:` — the confirmation dialog (optional).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawElicitation {
    /// Seconds the confirmation dialog waits for the person before nothing is done (default
    /// 300, at most 3600).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// When a call touches more guests (or volumes) than this, the person also types what the
    /// dialog names (the node, profile, or the count) instead of only ticking approve
    /// (default 10).
    #[serde(default)]
    pub typed_name_above: Option<u32>,
}

/// Who approves destructive calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfirmMode {
    /// The person through the client's dialog when the client can elicit, else `confirm: true`.
    #[default]
    Auto,
    /// Only the person through the client's dialog; clients that cannot elicit are refused.
    Elicit,
    /// `confirm: true` alone (no dialog).
    Argument,
}

impl ConfirmMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmMode::Auto => "auto",
            ConfirmMode::Elicit => "elicit",
            ConfirmMode::Argument => "argument",
        }
    }

    /// Parses `auto`, `elicit` or `argument`.
    ///
    /// # Errors
    /// Any other word, with the accepted ones.
    pub fn parse(word: &str) -> Result<Self, String> {
        match word.trim() {
            "auto" => Ok(ConfirmMode::Auto),
            "elicit" => Ok(ConfirmMode::Elicit),
            "argument" => Ok(ConfirmMode::Argument),
            other => Err(format!(
                "`{other}` is not a confirmation mode: use auto, elicit or argument"
            )),
        }
    }
}

impl std::fmt::Display for ConfirmMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The validated `confirmations:` + `elicitation:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmations {
    pub mode: ConfirmMode,
    /// How long the dialog waits for the person.
    pub timeout: Duration,
    /// More guests or volumes than this: the person types a name or count.
    pub typed_name_above: u32,
}

pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_TYPED_NAME_ABOVE: u32 = 10;

impl Default for Confirmations {
    fn default() -> Self {
        Confirmations {
            mode: ConfirmMode::Auto,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            typed_name_above: DEFAULT_TYPED_NAME_ABOVE,
        }
    }
}

/// One problem: (key path, what is wrong, the fix).
pub type Problem = (&'static str, String, String);

/// Validates the two keys; every problem found is returned.
///
/// # Errors
/// An unknown mode, a zero or too long timeout.
pub fn validate(mode: Option<&str>, raw: &RawElicitation) -> Result<Confirmations, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out = Confirmations::default();
    if let Some(word) = mode {
        match ConfirmMode::parse(word) {
            Ok(m) => out.mode = m,
            Err(e) => problems.push((
                "confirmations",
                e,
                "write confirmations: auto (the default), elicit or argument".to_string(),
            )),
        }
    }
    if let Some(secs) = raw.timeout_secs {
        if (1..=3600).contains(&secs) {
            out.timeout = Duration::from_secs(secs);
        } else {
            problems.push((
                "elicitation.timeout_secs",
                format!("{secs} is not between 1 and 3600"),
                format!("give the seconds the dialog waits, e.g. {DEFAULT_TIMEOUT_SECS}"),
            ));
        }
    }
    if let Some(n) = raw.typed_name_above {
        out.typed_name_above = n;
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_words() {
        let c = validate(None, &RawElicitation::default()).expect("defaults");
        assert_eq!(c, Confirmations::default());
        assert_eq!(c.mode, ConfirmMode::Auto);
        for (w, m) in [
            ("auto", ConfirmMode::Auto),
            ("elicit", ConfirmMode::Elicit),
            ("argument", ConfirmMode::Argument),
        ] {
            assert_eq!(
                validate(Some(w), &RawElicitation::default())
                    .expect("valid")
                    .mode,
                m
            );
            assert_eq!(m.as_str(), w);
        }
        let raw = RawElicitation {
            timeout_secs: Some(2),
            typed_name_above: Some(0),
        };
        let c = validate(Some("elicit"), &raw).expect("valid");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.typed_name_above, 0);
    }

    #[test]
    fn problems_name_the_key_and_the_fix() {
        let raw = RawElicitation {
            timeout_secs: Some(0),
            typed_name_above: None,
        };
        let p = validate(Some("always"), &raw).expect_err("invalid");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "confirmations");
        assert!(p[0].1.contains("always") && p[0].2.contains("elicit"));
        assert_eq!(p[1].0, "elicitation.timeout_secs");
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::config::tests::{EXAMPLE, parse_example};

    #[test]
    fn the_keys_parse_from_the_file_and_default_when_absent() {
        let c = parse_example(EXAMPLE).expect("example");
        assert_eq!(c.confirmations, Confirmations::default());
        let text = format!(
            "{EXAMPLE}\nconfirmations: elicit\nelicitation:\n  timeout_secs: 20\n  typed_name_above: 3\n"
        );
        let c = parse_example(&text).expect("with confirmations");
        assert_eq!(c.confirmations.mode, ConfirmMode::Elicit);
        assert_eq!(c.confirmations.timeout, Duration::from_secs(20));
        assert_eq!(c.confirmations.typed_name_above, 3);
        let bad = format!("{EXAMPLE}\nconfirmations: sometimes\n");
        let err = parse_example(&bad).expect_err("bad mode").to_string();
        assert!(
            err.contains("confirmations") && err.contains("auto, elicit or argument"),
            "{err}"
        );
        let typo = format!("{EXAMPLE}\nelicitation:\n  timeout: 20\n");
        assert!(parse_example(&typo).is_err(), "unknown keys are refused");
    }
}
