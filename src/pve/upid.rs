//! Typed task handles: PVE's `UPID:node:PID:PSTART:STARTTIME:type:id:user:`.
//!
//! Parsing follows pve-common `UPID.pm`'s decode regex exactly (8 hex digits for pid and
//! starttime, 8 or 9 for pstart, an optional empty id, a `user@realm!token` user). The original
//! text is kept: PVE finds the task's log file by the exact string, so we send back what it gave.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::Error;

/// Characters percent-encoded in one URL path segment (everything but unreserved).
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed PVE task id. The node it names is the node to poll. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upid(Arc<Parts>);

#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Parts {
    raw: String,
    node: String,
    pid: u32,
    pstart: u64,
    starttime: i64,
    task_type: String,
    id: String,
    user: String,
}

impl Upid {
    /// Builds a UPID from its parts, formatted as PVE does (uppercase hex, 8 digits minimum).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a part would not survive a parse (e.g. a `:` in `id`).
    pub fn new(
        node: &str,
        pid: u32,
        pstart: u64,
        starttime: u32,
        task_type: &str,
        id: &str,
        user: &str,
    ) -> Result<Upid, Error> {
        format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{task_type}:{id}:{user}:")
            .parse()
    }

    /// The node that runs the task (and serves its status and log).
    pub fn node(&self) -> &str {
        &self.0.node
    }
    pub fn pid(&self) -> u32 {
        self.0.pid
    }
    pub fn pstart(&self) -> u64 {
        self.0.pstart
    }
    /// Unix time the task started.
    pub fn starttime(&self) -> i64 {
        self.0.starttime
    }
    /// Task type, e.g. `qmclone`, `vzdump`.
    pub fn task_type(&self) -> &str {
        &self.0.task_type
    }
    /// Task id (usually a vmid); may be empty.
    pub fn id(&self) -> &str {
        &self.0.id
    }
    /// `user@realm` or `user@realm!token`.
    pub fn user(&self) -> &str {
        &self.0.user
    }
    /// The exact text PVE produced.
    pub fn as_str(&self) -> &str {
        &self.0.raw
    }
    /// The UPID percent-encoded for use as one URL path segment.
    pub fn to_path_segment(&self) -> String {
        utf8_percent_encode(&self.0.raw, SEGMENT).to_string()
    }
}

fn hex_field(text: &str, digits: std::ops::RangeInclusive<usize>) -> Option<u64> {
    if !digits.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

fn valid_node(node: &str) -> bool {
    let b = node.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// `[^:\s/]` repeated; `allow_empty` for the id field.
fn valid_free(text: &str, allow_empty: bool) -> bool {
    (allow_empty || !text.is_empty())
        && text
            .chars()
            .all(|c| c != ':' && c != '/' && !c.is_whitespace())
}

impl FromStr for Upid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Upid, Error> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "invalid task id {s:?}: {why}; a upid looks like UPID:node:PID:PSTART:STARTTIME:type:id:user:"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [
            prefix,
            node,
            pid,
            pstart,
            starttime,
            task_type,
            id,
            user,
            tail,
        ] = parts[..]
        else {
            return Err(bad("wrong number of fields"));
        };
        if prefix != "UPID" || !tail.is_empty() {
            return Err(bad("it must start with UPID: and end with ':'"));
        }
        if !valid_node(node) {
            return Err(bad("bad node name"));
        }
        let pid = hex_field(pid, 8..=8).ok_or_else(|| bad("pid is not 8 hex digits"))?;
        let pstart = hex_field(pstart, 8..=9).ok_or_else(|| bad("pstart is not 8-9 hex digits"))?;
        let starttime =
            hex_field(starttime, 8..=8).ok_or_else(|| bad("starttime is not 8 hex digits"))?;
        if !valid_free(task_type, false) {
            return Err(bad("bad task type"));
        }
        if !valid_free(id, true) {
            return Err(bad("bad task id field"));
        }
        if !valid_free(user, false) {
            return Err(bad("bad user"));
        }
        Ok(Upid(Arc::new(Parts {
            raw: s.to_owned(),
            node: node.to_owned(),
            pid: u32::try_from(pid).map_err(|_| bad("pid out of range"))?,
            pstart,
            starttime: i64::try_from(starttime).map_err(|_| bad("starttime out of range"))?,
            task_type: task_type.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
        })))
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.raw)
    }
}

impl fmt::Debug for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upid({})", self.0.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Upid, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Upid;

    const CLONE: &str =
        "UPID:pve01:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:claude-code@pve!automation:";

    #[test]
    fn parses_token_user_and_round_trips() -> Result<(), super::Error> {
        let u: Upid = CLONE.parse()?;
        assert_eq!(u.node(), "pve01");
        assert_eq!(u.pid(), 0x0002_A1B3);
        assert_eq!(u.pstart(), 0x00C8_D2F1);
        assert_eq!(u.starttime(), 0x6745_A3B2);
        assert_eq!(u.task_type(), "qmclone");
        assert_eq!(u.id(), "9000");
        assert_eq!(u.user(), "claude-code@pve!automation");
        assert_eq!(u.to_string(), CLONE);
        let again: Upid = u.to_string().parse()?;
        assert_eq!(again, u);
        Ok(())
    }

    #[test]
    fn nine_digit_pstart_and_empty_id() -> Result<(), super::Error> {
        let u: Upid = "UPID:n1:00001234:1A2B3C4D5:6745A3B2:vzdump::root@pam:".parse()?;
        assert_eq!(u.pstart(), 0x1_A2B3_C4D5);
        assert_eq!(u.id(), "");
        assert_eq!(u.node(), "n1");
        let built = Upid::new(
            "n1",
            0x1234,
            0x1_A2B3_C4D5,
            0x6745_A3B2,
            "vzdump",
            "",
            "root@pam",
        )?;
        assert_eq!(built, u);
        Ok(())
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPID:pve01:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam",
            "upid:pve01:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam:",
            "UPID:-pve:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam:",
            "UPID:pve-:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam:",
            "UPID:pve01:2A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam:",
            "UPID:pve01:0002A1B3:00C8D2F1A1:6745A3B2:qmclone:9000:root@pam:",
            "UPID:pve01:0002A1B3:00C8D2F1:6745A3BZ:qmclone:9000:root@pam:",
            "UPID:pve01:0002A1B3:00C8D2F1:6745A3B2::9000:root@pam:",
            "UPID:pve01:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000::",
            "UPID:pve01:0002A1B3:00C8D2F1:6745A3B2:qm clone:9000:root@pam:",
            "UPID:pve01:0002A1B3:00C8D2F1:6745A3B2:qmclone:a/b:root@pam:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn serde_as_string_and_path_encoding() -> Result<(), Box<dyn std::error::Error>> {
        let u: Upid = CLONE.parse()?;
        let json = serde_json::to_string(&u)?;
        assert_eq!(json, format!("\"{CLONE}\""));
        let back: Upid = serde_json::from_str(&json)?;
        assert_eq!(back, u);
        assert!(serde_json::from_str::<Upid>("\"nope\"").is_err());
        let seg = u.to_path_segment();
        assert!(seg.starts_with("UPID%3Apve01%3A0002A1B3"), "{seg}");
        assert!(seg.contains("claude-code%40pve%21automation"), "{seg}");
        assert!(!seg.contains(':') && !seg.contains('/'));
        Ok(())
    }
}
