//! Parameter validation with PVE's wording (semantics item 2): a small declarative spec per
//! endpoint (hand-written from the schema), `additionalProperties: 0` (unknown parameters are
//! rejected), and the error texts of pve-common's JSONSchema.pm.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

/// Parameter types and named formats.
#[derive(Clone, Copy)]
pub enum Ty {
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Bool,
    Str {
        max_len: Option<usize>,
    },
    Enum(&'static [&'static str]),
    Node,
    StorageId,
    ConfigId,
    StorageContent,
    StorageContentList,
    /// `user@realm` or `user@realm!token`.
    UserId,
    /// A string matched against an anchored pattern (the schema's `pattern`).
    Pattern(&'static LazyLock<Option<Regex>>),
    /// `pve-tag-list`.
    TagList,
    /// `dns-name` (guest names).
    DnsName,
    /// `CIDR` (`migration_network`).
    Cidr,
    /// `storage-pair-list` (`targetstorage`): `1`, `target` or `source:target` entries.
    StoragePairList,
}

pub const VMID: Ty = Ty::Int {
    min: Some(100),
    max: Some(999_999_999),
};
pub const UINT: Ty = Ty::Int {
    min: Some(0),
    max: None,
};
pub const INT: Ty = Ty::Int {
    min: None,
    max: None,
};

pub struct Param {
    /// The schema's name; `net[n]` for indexed families.
    pub name: &'static str,
    pub ty: Ty,
    pub optional: bool,
    /// For `xxx[n]` families: the highest index PVE accepts.
    pub max_index: u32,
}

pub const fn req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        optional: false,
        max_index: 0,
    }
}
pub const fn opt(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        optional: true,
        max_index: 0,
    }
}
/// An optional indexed family such as `net[n]` (`net0` .. `net<max>`).
pub const fn idx(name: &'static str, max_index: u32, ty: Ty) -> Param {
    Param {
        name,
        ty,
        optional: true,
        max_index,
    }
}

impl Param {
    /// Whether the request parameter `k` is this parameter (or a member of its family).
    pub fn accepts(&self, k: &str) -> bool {
        match self.name.strip_suffix("[n]") {
            None => self.name == k,
            Some(prefix) => k.strip_prefix(prefix).is_some_and(|n| {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && (n == "0" || !n.starts_with('0'))
                    && n.parse::<u32>().is_ok_and(|i| i <= self.max_index)
            }),
        }
    }
}

const CONTENT_TYPES: &[&str] = &[
    "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
];

static NODE_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$"));
static STORAGE_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"^(?i:[a-z][a-z0-9\-_.]*[a-z0-9])$"));
static CONFIGID_RE: LazyLock<Option<Regex>> = LazyLock::new(|| rx(r"^(?i:[a-z][a-z0-9_-]+)$"));
static DNS_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    rx(
        r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$",
    )
});
static INT_RE: LazyLock<Option<Regex>> = LazyLock::new(|| rx(r"^-?\d+$"));
/// `userid` of `/access/permissions`: a user or a token id.
pub static USERID_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+(?:![A-Za-z][A-Za-z0-9.\-_]+)?$"));

/// Compiles a literal pattern. The patterns are constants checked by the unit tests; should one
/// ever fail to compile, it matches nothing instead of panicking.
fn rx(p: &str) -> Option<Regex> {
    Regex::new(p).ok()
}

/// True if the (lazily compiled) pattern matches.
pub fn matches(re: &LazyLock<Option<Regex>>, v: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(v))
}

/// Whether `v` is a valid node name (`pve-node`).
pub fn matches_node(v: &str) -> bool {
    matches(&NODE_RE, v)
}

/// Parses PVE's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn check(ty: Ty, v: &str) -> Result<(), String> {
    match ty {
        Ty::Int { min, max } => {
            if !matches(&INT_RE, v) {
                return Err(format!("type check ('integer') failed - got '{v}'"));
            }
            let n: i64 = v
                .parse()
                .map_err(|_| format!("type check ('integer') failed - got '{v}'"))?;
            if let Some(m) = min.filter(|m| n < *m) {
                return Err(format!("value must have a minimum value of {m}"));
            }
            if let Some(m) = max.filter(|m| n > *m) {
                return Err(format!("value must have a maximum value of {m}"));
            }
            Ok(())
        }
        Ty::Bool => parse_bool(v)
            .map(|_| ())
            .ok_or_else(|| format!("type check ('boolean') failed - got '{v}'")),
        Ty::Str { max_len } => match max_len {
            Some(m) if v.chars().count() > m => {
                Err(format!("value may only be {m} characters long"))
            }
            _ => Ok(()),
        },
        Ty::Enum(vals) => {
            if vals.contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "value '{v}' does not have a value in the enumeration '{}'",
                    vals.join(", ")
                ))
            }
        }
        Ty::Node => fmt_ok(
            matches(&NODE_RE, v),
            "value does not look like a valid node name".into(),
        ),
        Ty::StorageId => fmt_ok(
            matches(&STORAGE_RE, v),
            format!("storage ID '{v}' contains illegal characters"),
        ),
        Ty::ConfigId => {
            if v.chars().count() > 40 {
                return Err("value may only be 40 characters long".into());
            }
            fmt_ok(
                matches(&CONFIGID_RE, v),
                format!("invalid configuration ID '{v}'"),
            )
        }
        Ty::StorageContent => fmt_ok(
            CONTENT_TYPES.contains(&v),
            format!("invalid content type '{v}'"),
        ),
        Ty::StorageContentList => {
            let bad = v
                .split([',', ';', ' '])
                .filter(|s| !s.is_empty())
                .find(|c| !CONTENT_TYPES.contains(c));
            match bad {
                Some(c) => Err(format!("invalid format - invalid content type '{c}'\n")),
                None => Ok(()),
            }
        }
        Ty::Pattern(re) => fmt_ok_plain(matches(re, v), "value does not match the regex pattern"),
        Ty::DnsName => fmt_ok(
            matches(&DNS_RE, v),
            "value does not look like a valid DNS name".into(),
        ),
        Ty::TagList => {
            let bad = super::volumes::split_tags(v)
                .into_iter()
                .find(|t| !super::volumes::valid_tag(t));
            match bad {
                Some(t) => Err(format!("invalid format - invalid tag '{t}'\n")),
                None => Ok(()),
            }
        }
        Ty::Cidr => fmt_ok(
            valid_cidr(v),
            "value does not look like a valid CIDR network".into(),
        ),
        Ty::StoragePairList => {
            for entry in v.split([',', ';', ' ', '\0']).filter(|e| !e.is_empty()) {
                if entry == "1" {
                    continue;
                }
                let ids: Vec<&str> = match entry.split_once(':') {
                    Some((a, b)) if !a.contains(':') && !b.contains(':') => vec![a, b],
                    Some(_) => vec![entry],
                    None => vec![entry],
                };
                if let Some(bad) = ids.iter().find(|id| !matches(&STORAGE_RE, id)) {
                    return Err(format!(
                        "invalid format - entry '{entry}' contains invalid ID - storage ID '{bad}' contains illegal characters\n"
                    ));
                }
            }
            Ok(())
        }
        Ty::UserId => fmt_ok_plain(
            matches(&USERID_RE, v),
            "value does not match the regex pattern",
        ),
    }
}

/// An IPv4 or IPv6 network in CIDR notation (`pve_verify_cidr`).
fn valid_cidr(v: &str) -> bool {
    let Some((ip, len)) = v.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len <= 32,
        Ok(std::net::IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}

fn fmt_ok(ok: bool, msg: String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("invalid format - {msg}\n"))
    }
}

fn fmt_ok_plain(ok: bool, msg: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(msg.to_string()) }
}

/// Validates `params` against `spec`; returns the per-parameter errors PVE would send.
pub fn validate(
    spec: &[Param],
    params: &BTreeMap<String, String>,
) -> Result<(), BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    for (k, v) in params {
        match spec.iter().find(|p| p.accepts(k)) {
            None => {
                errors.insert(
                    k.clone(),
                    "property is not defined in schema and the schema does not allow additional properties".to_string(),
                );
            }
            Some(p) => {
                if let Err(e) = check(p.ty, v) {
                    errors.insert(k.clone(), e);
                }
            }
        }
    }
    for p in spec.iter().filter(|p| !p.optional) {
        if !params.contains_key(p.name) {
            errors.insert(
                p.name.to_string(),
                "property is missing and it is not optional".to_string(),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(spec: &[Param], kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        let m = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        validate(spec, &m).err().unwrap_or_default()
    }

    #[test]
    fn wording_matches_jsonschema_pm() {
        let spec = [
            req("vmid", VMID),
            opt("full", Ty::Bool),
            opt("type", Ty::Enum(&["vm", "storage"])),
            opt("snapshot", Ty::ConfigId),
        ];
        let e = run(&spec, &[("vmid", "abc")]);
        assert_eq!(e["vmid"], "type check ('integer') failed - got 'abc'");
        let e = run(&spec, &[("vmid", "99")]);
        assert_eq!(e["vmid"], "value must have a minimum value of 100");
        let e = run(&spec, &[("vmid", "100"), ("bogus", "1")]);
        assert_eq!(
            e["bogus"],
            "property is not defined in schema and the schema does not allow additional properties"
        );
        let e = run(&spec, &[]);
        assert_eq!(e["vmid"], "property is missing and it is not optional");
        let e = run(&spec, &[("vmid", "100"), ("type", "x")]);
        assert_eq!(
            e["type"],
            "value 'x' does not have a value in the enumeration 'vm, storage'"
        );
        let e = run(&spec, &[("vmid", "100"), ("full", "maybe")]);
        assert_eq!(e["full"], "type check ('boolean') failed - got 'maybe'");
        let e = run(&spec, &[("vmid", "100"), ("snapshot", "1bad")]);
        assert_eq!(
            e["snapshot"],
            "invalid format - invalid configuration ID '1bad'\n"
        );
        assert!(run(&spec, &[("vmid", "100"), ("full", "yes"), ("type", "vm")]).is_empty());
    }

    #[test]
    fn patterns_compile_and_match() {
        assert!(matches(&NODE_RE, "pve01") && !matches(&NODE_RE, "-x"));
        assert!(matches(&STORAGE_RE, "local-lvm") && !matches(&STORAGE_RE, "a"));
        assert!(matches(&USERID_RE, "auditor@pve!ro") && !matches(&USERID_RE, "nobody"));
        assert!(matches(&DNS_RE, "Copy-of-VM-web-01") && matches(&DNS_RE, "a.b-c"));
        assert!(!matches(&DNS_RE, "bad name") && !matches(&DNS_RE, "-x"));
    }
}
