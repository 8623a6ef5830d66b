//! Which guests a call addresses: the one selector `vm_list` filters with and every bulk
//! operation acts on (tags all/any, node, status, name glob, explicit vmids). Pure.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::inventory::{VmSummary, glob_match};
use crate::ops::Error;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TagsMatch {
    #[default]
    All,
    Any,
}

/// Guest states a selector may ask for.
pub const STATES: [&str; 4] = ["running", "stopped", "paused", "unknown"];

/// The criteria of one selection; every one given must hold (AND).
#[derive(Debug, Clone, Copy, Default)]
pub struct Selector<'a> {
    pub tags: &'a [String],
    pub tags_match: TagsMatch,
    pub node: Option<&'a str>,
    pub status: Option<&'a str>,
    pub name: Option<&'a str>,
    pub vmids: Option<&'a [u32]>,
    pub include_templates: bool,
}

impl Selector<'_> {
    /// Whether any criterion is given (a bulk operation without one would address every guest).
    pub fn is_narrowed(&self) -> bool {
        !self.tags.is_empty()
            || self.node.is_some()
            || self.status.is_some()
            || self.name.is_some()
            || self.vmids.is_some()
    }

    /// Checks the values PVE does not validate for us.
    ///
    /// # Errors
    /// An unknown status.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(s) = self.status.filter(|s| !STATES.contains(s)) {
            return Err(Error::invalid(
                "status",
                format!(
                    "{} is not one of {}",
                    crate::ops::error::quote(s),
                    STATES.join(", ")
                ),
            ));
        }
        Ok(())
    }

    pub fn matches(&self, v: &VmSummary) -> bool {
        let has = |t: &String| v.tags.iter().any(|x| x.eq_ignore_ascii_case(t));
        let tags_ok = self.tags.is_empty()
            || match self.tags_match {
                TagsMatch::All => self.tags.iter().all(has),
                TagsMatch::Any => self.tags.iter().any(has),
            };
        (self.include_templates || !v.template)
            && tags_ok
            && self.node.is_none_or(|n| v.node == n)
            && self.status.is_none_or(|s| v.status == s)
            && self.name.is_none_or(|p| glob_match(p, &v.name))
            && self.vmids.is_none_or(|ids| ids.contains(&v.vmid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(vmid: u32, name: &str, node: &str, status: &str, tags: &[&str]) -> VmSummary {
        VmSummary {
            vmid,
            name: name.into(),
            node: node.into(),
            kind: "qemu".into(),
            status: status.into(),
            template: false,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            lock: None,
            vcpus: 1,
            memory_mib: 1024,
            disk_gib: 1.0,
            uptime_s: 0,
        }
    }

    #[test]
    fn criteria_combine_and_tags_match_all_or_any() {
        let web = vm(1, "web-01", "pve01", "running", &["prod", "web"]);
        let db = vm(2, "db-01", "pve02", "stopped", &["prod"]);
        let tags = vec!["prod".to_string(), "web".to_string()];
        let all = Selector {
            tags: &tags,
            ..Selector::default()
        };
        assert!(all.matches(&web) && !all.matches(&db));
        let any = Selector {
            tags_match: TagsMatch::Any,
            ..all
        };
        assert!(any.matches(&web) && any.matches(&db));
        let narrow = Selector {
            node: Some("pve02"),
            name: Some("DB-*"),
            vmids: Some(&[2, 3]),
            ..any
        };
        assert!(narrow.matches(&db) && !narrow.matches(&web));
        assert!(!Selector::default().is_narrowed() && narrow.is_narrowed());
        let mut tpl = web.clone();
        tpl.template = true;
        assert!(!Selector::default().matches(&tpl));
        assert!(
            Selector {
                status: Some("nope"),
                ..Selector::default()
            }
            .validate()
            .is_err()
        );
    }
}
