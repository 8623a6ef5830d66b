//! One declaration per tool: what it is called, where it belongs, how it behaves (the four MCP
//! annotations), which arguments make a call destructive, and which PVE endpoints it calls
//! with the privileges each one checks.
//!
//! A [`ToolSpec`] is written beside the tool's handler in `server`; the toolsets, the MCP
//! annotations, the catalogue, the access table of `access_check`/`check` and the skill and
//! agent checks all derive from the specs. The privileges are written against the endpoint's
//! path templates exactly as PVE's schema states them (`/vms/{vmid}`, `/storage/{storage}`),
//! so a test compares every declared endpoint with `apidata.json` mechanically.
//!
//! No I/O and no MCP types here: `ops` evaluates specs, `server` declares them.

/// What a tool does to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only.
    Read,
    /// Changes something, nothing is lost (create, start, tag).
    Write,
    /// Can destroy or interrupt: needs `confirm: true`, else it returns a preview.
    Destructive,
}

/// Privileges an endpoint checks on an ACL path.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// ACL path template as PVE's schema writes it: `/`, `/vms/{vmid}`, `/storage/{storage}`,
    /// `/nodes/{node}`, `/sdn/zones/localnetwork/{bridge}`.
    pub path: &'static str,
    pub privs: &'static [&'static str],
    /// One of `privs` is enough (the schema's `"any", 1`).
    pub any: bool,
    /// `Some(what degrades)` when PVE does not refuse the tool without it.
    pub optional: Option<&'static str>,
}

/// Every privilege of `privs` on `path`.
pub const fn all(path: &'static str, privs: &'static [&'static str]) -> Need {
    Need {
        path,
        privs,
        any: false,
        optional: None,
    }
}

/// One privilege of `privs` on `path`.
pub const fn any(path: &'static str, privs: &'static [&'static str]) -> Need {
    Need {
        path,
        privs,
        any: true,
        optional: None,
    }
}

/// One of `privs` on `path`; without it the tool works but `why` degrades.
pub const fn optional(
    path: &'static str,
    privs: &'static [&'static str],
    why: &'static str,
) -> Need {
    Need {
        path,
        privs,
        any: true,
        optional: Some(why),
    }
}

/// One PVE API endpoint a tool calls, and what PVE checks for it the way the tool calls it
/// (a config write checks the privilege of each option it sets).
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    /// The schema's path template, `/nodes/{node}/qemu/{vmid}/config`.
    pub path: &'static str,
    pub needs: &'static [Need],
}

impl Endpoint {
    pub const fn get(path: &'static str, needs: &'static [Need]) -> Self {
        Endpoint {
            method: "GET",
            path,
            needs,
        }
    }
    pub const fn post(path: &'static str, needs: &'static [Need]) -> Self {
        Endpoint {
            method: "POST",
            path,
            needs,
        }
    }
    pub const fn put(path: &'static str, needs: &'static [Need]) -> Self {
        Endpoint {
            method: "PUT",
            path,
            needs,
        }
    }
    pub const fn delete(path: &'static str, needs: &'static [Need]) -> Self {
        Endpoint {
            method: "DELETE",
            path,
            needs,
        }
    }
}

/// The declaration of one tool.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// The MCP tool name (noun first, at most 31 characters).
    pub name: &'static str,
    /// The toolset `--toolsets` selects it by.
    pub toolset: &'static str,
    /// Human title (the `title` annotation).
    pub title: &'static str,
    pub effect: Effect,
    /// Calling it twice with the same arguments has no further effect.
    pub idempotent: bool,
    /// It reaches beyond the cluster (downloads from URLs the caller names).
    pub open_world: bool,
    /// Arguments that make a call destructive: when one is set the call needs
    /// `confirm: true` like a destructive tool (e.g. `force_after_timeout`, `replace`).
    pub confirm_args: &'static [&'static str],
    /// A write tool whose confirmed call the person approves like a destructive one (its
    /// preview is a plan: `node_evacuate` moves every guest off a node).
    pub person_approves: bool,
    /// The PVE endpoints it calls.
    pub calls: &'static [Endpoint],
}

impl ToolSpec {
    const fn new(name: &'static str, title: &'static str, effect: Effect) -> Self {
        ToolSpec {
            name,
            toolset: "",
            title,
            effect,
            idempotent: matches!(effect, Effect::Read),
            open_world: false,
            confirm_args: &[],
            person_approves: false,
            calls: &[],
        }
    }

    /// A read-only tool (idempotent).
    pub const fn read(name: &'static str, title: &'static str) -> Self {
        Self::new(name, title, Effect::Read)
    }

    /// A tool that changes something without destroying anything (not idempotent unless
    /// [`Self::idempotent`] says so).
    pub const fn write(name: &'static str, title: &'static str) -> Self {
        Self::new(name, title, Effect::Write)
    }

    /// A destructive tool: `confirm: true` or a preview.
    pub const fn destructive(name: &'static str, title: &'static str) -> Self {
        Self::new(name, title, Effect::Destructive)
    }

    pub const fn toolset(mut self, toolset: &'static str) -> Self {
        self.toolset = toolset;
        self
    }

    pub const fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    pub const fn open_world(mut self) -> Self {
        self.open_world = true;
        self
    }

    pub const fn confirm_args(mut self, args: &'static [&'static str]) -> Self {
        self.confirm_args = args;
        self
    }

    /// The confirmed call needs the person's approval like a destructive one (see
    /// [`Self::person_approves`]).
    pub const fn person_approves(mut self) -> Self {
        self.person_approves = true;
        self
    }

    pub const fn calls(mut self, calls: &'static [Endpoint]) -> Self {
        self.calls = calls;
        self
    }

    pub fn read_only(&self) -> bool {
        self.effect == Effect::Read
    }

    pub fn destructive_hint(&self) -> bool {
        self.effect == Effect::Destructive || !self.confirm_args.is_empty()
    }

    /// Whether a call with these (JSON) arguments is only a preview: the tool or one of the
    /// arguments set is destructive, and `confirm` is not `true`.
    pub fn is_preview_call(&self, args: &serde_json::Value) -> bool {
        let confirmed = args.get("confirm").and_then(|c| c.as_bool()) == Some(true);
        let gated = self.effect == Effect::Destructive
            || self.confirm_args.iter().any(|a| {
                args.get(*a)
                    .is_some_and(|v| !v.is_null() && v != &serde_json::Value::Bool(false))
            });
        gated && !confirmed
    }

    /// Whether a call with these (JSON) arguments destroys or interrupts something once
    /// confirmed — the destructive tool, a destructive option set, or a tool whose plan the
    /// person approves — whatever `confirm` says. These are the calls the person approves.
    pub fn needs_approval(&self, args: &serde_json::Value) -> bool {
        if self.person_approves {
            return true;
        }
        let mut unconfirmed = args.clone();
        if let Some(m) = unconfirmed.as_object_mut() {
            m.remove("confirm");
        }
        self.is_preview_call(&unconfirmed)
    }

    /// Every need of every endpoint, in declaration order.
    pub fn needs(&self) -> impl Iterator<Item = &'static Need> + '_ {
        self.calls.iter().flat_map(|e| e.needs.iter())
    }
}

/// What a mutating operation's report says about itself: a preview changed nothing (no audit
/// record, no UPIDs). Reports of operations that always act answer `false`.
pub trait Outcome {
    fn is_preview(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn previews_follow_confirm_and_the_destructive_arguments() {
        let del = ToolSpec::destructive("vm_delete", "Delete VM");
        assert!(del.is_preview_call(&json!({"vmid": 1})));
        assert!(del.is_preview_call(&json!({"vmid": 1, "confirm": false})));
        assert!(!del.is_preview_call(&json!({"vmid": 1, "confirm": true})));
        let shut =
            ToolSpec::write("vm_shutdown", "Shut down").confirm_args(&["force_after_timeout"]);
        assert!(shut.destructive_hint());
        assert!(!shut.is_preview_call(&json!({"vmid": 1})));
        assert!(!shut.is_preview_call(&json!({"vmid": 1, "force_after_timeout": false})));
        assert!(shut.is_preview_call(&json!({"vmid": 1, "force_after_timeout": true})));
        assert!(
            !shut
                .is_preview_call(&json!({"vmid": 1, "force_after_timeout": true, "confirm": true}))
        );
        let start = ToolSpec::write("vm_start", "Start");
        assert!(!start.destructive_hint());
        assert!(!start.is_preview_call(&json!({"vmid": 1})));
    }

    #[test]
    fn approval_is_needed_whatever_confirm_says() {
        let del = ToolSpec::destructive("vm_delete", "Delete VM");
        assert!(del.needs_approval(&json!({"vmid": 1, "confirm": true})));
        assert!(del.needs_approval(&json!({"vmid": 1})));
        let shut =
            ToolSpec::write("vm_shutdown", "Shut down").confirm_args(&["force_after_timeout"]);
        assert!(!shut.needs_approval(&json!({"vmid": 1, "confirm": true})));
        assert!(
            shut.needs_approval(&json!({"vmid": 1, "force_after_timeout": true, "confirm": true}))
        );
        let evac = ToolSpec::write("node_evacuate", "Evacuate").person_approves();
        assert!(evac.needs_approval(&json!({"node": "pve01", "confirm": true})));
        assert!(!evac.destructive_hint());
        assert!(!ToolSpec::write("vm_start", "Start").needs_approval(&json!({"confirm": true})));
    }
}
