//! Authentication and authorization: API-token header parsing (semantics item 12), built-in and
//! custom roles, ACL evaluation with propagation, privilege separation (the intersection rule of
//! item 14) and the effective-permission map behind `/access/permissions` (item 16).

use std::collections::{BTreeMap, BTreeSet};

use super::scenario::Scenario;

/// Privileges with their propagate flag, as `/access/permissions` shows them.
pub type PrivMap = BTreeMap<String, bool>;

const VM_PRIVS: &[&str] = &[
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.Unrestricted",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Replicate",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];
const OTHER_PRIVS: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
];

/// Whether `p` is a privilege PVE 9 knows.
pub fn valid_privilege(p: &str) -> bool {
    VM_PRIVS.contains(&p) || OTHER_PRIVS.contains(&p)
}

/// Whether `role` is one of PVE's built-in (special) roles.
pub fn builtin_role(role: &str) -> bool {
    builtin_roles().contains_key(role)
}

/// Built-in roles (PVE 9), hand-written from the admin guide's role table.
fn builtin_roles() -> BTreeMap<String, BTreeSet<String>> {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let all: BTreeSet<String> = VM_PRIVS
        .iter()
        .chain(OTHER_PRIVS)
        .map(|s| s.to_string())
        .collect();
    let admin_minus = all
        .iter()
        .filter(|p| {
            !matches!(
                p.as_str(),
                "Permissions.Modify"
                    | "Realm.Allocate"
                    | "Realm.AllocateUser"
                    | "User.Modify"
                    | "Group.Allocate"
            )
        })
        .cloned()
        .collect();
    let mut vm_admin = set(VM_PRIVS);
    vm_admin.extend(set(&[
        "Datastore.AllocateSpace",
        "Datastore.Audit",
        "Pool.Audit",
        "SDN.Use",
        "Mapping.Use",
    ]));
    BTreeMap::from([
        ("Administrator".to_string(), all),
        ("PVEAdmin".to_string(), admin_minus),
        ("NoAccess".to_string(), BTreeSet::new()),
        (
            "PVEAuditor".to_string(),
            set(&[
                "Datastore.Audit",
                "Mapping.Audit",
                "Pool.Audit",
                "SDN.Audit",
                "Sys.Audit",
                "VM.Audit",
                "VM.GuestAgent.Audit",
            ]),
        ),
        ("PVEVMAdmin".to_string(), vm_admin),
        (
            "PVEVMUser".to_string(),
            set(&[
                "VM.Audit",
                "VM.Backup",
                "VM.Config.CDROM",
                "VM.Config.Cloudinit",
                "VM.Console",
                "VM.PowerMgmt",
                "VM.GuestAgent.Audit",
                "Pool.Audit",
                "Datastore.AllocateSpace",
                "Datastore.Audit",
            ]),
        ),
        (
            "PVEDatastoreUser".to_string(),
            set(&[
                "Datastore.AllocateSpace",
                "Datastore.AllocateTemplate",
                "Datastore.Audit",
            ]),
        ),
        (
            "PVEDatastoreAdmin".to_string(),
            set(&[
                "Datastore.Allocate",
                "Datastore.AllocateSpace",
                "Datastore.AllocateTemplate",
                "Datastore.Audit",
            ]),
        ),
        (
            "PVESysAdmin".to_string(),
            set(&[
                "Sys.AccessNetwork",
                "Sys.Audit",
                "Sys.Console",
                "Sys.Incoming",
                "Sys.Modify",
                "Sys.PowerMgmt",
                "Sys.Syslog",
                "Pool.Audit",
                "Permissions.Modify",
            ]),
        ),
    ])
}

pub struct Token {
    pub secret: String,
    pub privsep: bool,
    pub comment: String,
}

pub struct AclEntry {
    pub path: String,
    pub ugid: String,
    pub role: String,
    pub propagate: bool,
}

pub struct Access {
    pub roles: BTreeMap<String, BTreeSet<String>>,
    pub users: BTreeSet<String>,
    /// Keyed by full token id `user@realm!name`.
    pub tokens: BTreeMap<String, Token>,
    pub acl: Vec<AclEntry>,
    /// Login passwords of the scenario's users that have one (`POST /access/ticket`).
    pub passwords: BTreeMap<String, String>,
    /// Issued tickets (see `ticket.rs`).
    pub tickets: super::ticket::Tickets,
}

/// Why authentication failed; decides the 401 reason phrase.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    NoTicket,
    Failure,
    /// A write authenticated by ticket without a valid `CSRFPreventionToken` header.
    Csrf,
}

impl AuthFailure {
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::NoTicket => "No ticket",
            AuthFailure::Failure => "Authentication failed!",
            AuthFailure::Csrf => "Permission denied - invalid csrf token",
        }
    }
}

impl Access {
    pub fn from_scenario(s: &Scenario) -> Result<Access, String> {
        let mut roles = builtin_roles();
        for (name, privs) in &s.roles {
            roles.insert(name.clone(), privs.iter().cloned().collect());
        }
        let mut users = BTreeSet::new();
        let mut tokens = BTreeMap::new();
        for u in &s.users {
            users.insert(u.userid.clone());
            for t in &u.tokens {
                let token = Token {
                    secret: uuid::Uuid::new_v4().to_string(),
                    privsep: t.privsep,
                    comment: t.comment.clone(),
                };
                tokens.insert(format!("{}!{}", u.userid, t.name), token);
            }
        }
        let mut acl = Vec::new();
        for a in &s.acl {
            if !roles.contains_key(&a.role) {
                return Err(format!(
                    "acl on '{}' names unknown role '{}'",
                    a.path, a.role
                ));
            }
            if !users.contains(&a.ugid) && !tokens.contains_key(&a.ugid) {
                return Err(format!(
                    "acl on '{}' names unknown user or token '{}'",
                    a.path, a.ugid
                ));
            }
            acl.push(AclEntry {
                path: normalize(&a.path),
                ugid: a.ugid.clone(),
                role: a.role.clone(),
                propagate: a.propagate,
            });
        }
        let passwords = s
            .users
            .iter()
            .filter_map(|u| u.password.clone().map(|p| (u.userid.clone(), p)))
            .collect();
        Ok(Access {
            roles,
            users,
            tokens,
            acl,
            passwords,
            tickets: super::ticket::Tickets::new(),
        })
    }

    /// Authenticates an `Authorization` header value; returns the token id.
    pub fn authenticate(&self, header: Option<&str>) -> Result<String, AuthFailure> {
        let raw = header.ok_or(AuthFailure::NoTicket)?;
        let rest = raw
            .trim()
            .strip_prefix("PVEAPIToken")
            .ok_or(AuthFailure::NoTicket)?;
        let rest = rest
            .strip_prefix('=')
            .or_else(|| rest.strip_prefix(' '))
            .ok_or(AuthFailure::NoTicket)?;
        let value = percent_encoding::percent_decode_str(rest.trim())
            .decode_utf8_lossy()
            .to_string();
        // split at the LAST '=' (AccessControl.pm), also accepting a space
        let (id, secret) = value
            .rsplit_once('=')
            .or_else(|| value.rsplit_once(' '))
            .ok_or(AuthFailure::Failure)?;
        let (user, name) = id.split_once('!').ok_or(AuthFailure::Failure)?;
        if !valid_token_name(name) || !user.contains('@') {
            return Err(AuthFailure::Failure);
        }
        let token = self.tokens.get(id).ok_or(AuthFailure::Failure)?;
        let ok: bool =
            subtle::ConstantTimeEq::ct_eq(token.secret.as_bytes(), secret.as_bytes()).into();
        if ok {
            Ok(id.to_string())
        } else {
            Err(AuthFailure::Failure)
        }
    }

    /// Effective privileges of a user or token on `path`.
    pub fn privileges(&self, authid: &str, path: &str) -> PrivMap {
        let path = normalize(path);
        if authid == "root@pam" {
            // PVE's root bypass: the superuser itself (never one of its tokens) holds every
            // privilege everywhere. Only the node's CLI tools (run over SSH as root) act as it.
            return VM_PRIVS
                .iter()
                .chain(OTHER_PRIVS)
                .map(|p| (p.to_string(), true))
                .collect();
        }
        match authid.split_once('!') {
            None => self.ugid_privs(authid, &path),
            Some((user, _)) => {
                let user_privs = self.ugid_privs(user, &path);
                match self.tokens.get(authid) {
                    None => PrivMap::new(),
                    Some(t) if !t.privsep => user_privs,
                    Some(_) => {
                        let tok = self.ugid_privs(authid, &path);
                        user_privs
                            .into_iter()
                            .filter_map(|(p, prop)| tok.get(&p).map(|tp| (p, prop && *tp)))
                            .collect()
                    }
                }
            }
        }
    }

    /// The paths ACL entries sit on: a path without one has the privileges its parents pass
    /// down, the same as any sibling without one.
    pub fn acl_paths(&self) -> std::collections::BTreeSet<&str> {
        self.acl.iter().map(|a| a.path.as_str()).collect()
    }

    /// True if `authid` holds all (or with `any`, one) of `privs` on `path`.
    pub fn check(&self, authid: &str, path: &str, privs: &[&str], any: bool) -> bool {
        let have = self.privileges(authid, path);
        if any {
            privs.iter().any(|p| have.contains_key(*p))
        } else {
            privs.iter().all(|p| have.contains_key(*p))
        }
    }

    /// Roles of one ACL subject on a path: deeper entries replace inherited ones, and an entry
    /// above the path only counts if it propagates.
    fn ugid_privs(&self, ugid: &str, path: &str) -> PrivMap {
        let mut roles: Vec<(&str, bool)> = Vec::new();
        for prefix in prefixes(path) {
            let last = prefix == path;
            let here: Vec<(&str, bool)> = self
                .acl
                .iter()
                .filter(|a| a.ugid == ugid && a.path == prefix && (last || a.propagate))
                .map(|a| (a.role.as_str(), a.propagate))
                .collect();
            if !here.is_empty() {
                roles = here;
            }
        }
        if roles.iter().any(|(r, _)| *r == "NoAccess") {
            return PrivMap::new();
        }
        let mut out = PrivMap::new();
        for (role, prop) in roles {
            for p in self.roles.get(role).into_iter().flatten() {
                let e = out.entry(p.clone()).or_insert(false);
                *e |= prop;
            }
        }
        out
    }

    /// The `/access/permissions` map: default paths plus ACL paths, empty ones left out.
    pub fn permission_map(&self, authid: &str, only: Option<&str>) -> BTreeMap<String, PrivMap> {
        let paths: BTreeSet<String> = match only {
            Some(p) => BTreeSet::from([normalize(p)]),
            None => [
                "/",
                "/access",
                "/access/groups",
                "/nodes",
                "/pool",
                "/sdn",
                "/storage",
                "/vms",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(self.acl.iter().map(|a| a.path.clone()))
            .collect(),
        };
        paths
            .into_iter()
            .map(|p| {
                let privs = self.privileges(authid, &p);
                (p, privs)
            })
            // an explicitly asked path is answered even when empty
            .filter(|(_, m)| only.is_some() || !m.is_empty())
            .collect()
    }

    pub fn exists(&self, authid: &str) -> bool {
        self.users.contains(authid) || self.tokens.contains_key(authid)
    }
}

pub fn valid_token_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// `/vms/100` -> `/`, `/vms`, `/vms/100`.
fn prefixes(path: &str) -> Vec<String> {
    let mut out = vec!["/".to_string()];
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        out.push(cur.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        let s = Scenario::embedded().expect("scenario");
        Access::from_scenario(&s).expect("access")
    }

    #[test]
    fn privsep_token_gets_the_intersection() {
        let a = access();
        // user auditor@pve has PVEAuditor on /, token only on /vms
        assert!(a.check("auditor@pve", "/nodes/pve01", &["Sys.Audit"], false));
        assert!(!a.check("auditor@pve!ro", "/nodes/pve01", &["Sys.Audit"], false));
        assert!(a.check("auditor@pve!ro", "/vms/1000", &["VM.Audit"], false));
        assert!(!a.check("auditor@pve!ro", "/vms/1000", &["VM.PowerMgmt"], false));
        assert!(!a.check(
            "auditor@pve!ro",
            "/storage/local",
            &["Datastore.Audit"],
            false
        ));
    }

    #[test]
    fn non_privsep_token_equals_user() {
        let a = access();
        let id = "claude-code@pve!automation";
        assert!(a.check(id, "/vms/1000", &["VM.Clone", "VM.Migrate"], false));
        assert!(!a.check(id, "/", &["Sys.Modify"], false));
        assert!(a.check(id, "/", &["Sys.Modify", "Sys.Audit"], true));
        assert_eq!(
            a.privileges(id, "/vms/1"),
            a.privileges("claude-code@pve", "/vms/1")
        );
    }

    #[test]
    fn deeper_acl_replaces_and_noaccess_wins() {
        let mut a = access();
        a.acl.push(AclEntry {
            path: "/vms/1002".into(),
            ugid: "claude-code@pve".into(),
            role: "NoAccess".into(),
            propagate: true,
        });
        a.acl.push(AclEntry {
            path: "/vms".into(),
            ugid: "claude-code@pve".into(),
            role: "PVEVMUser".into(),
            propagate: false,
        });
        let id = "claude-code@pve!automation";
        assert!(a.privileges(id, "/vms/1002").is_empty());
        // /vms entry does not propagate, so /vms/1000 still inherits from /
        assert!(a.check(id, "/vms/1000", &["VM.Clone"], false));
        // on /vms itself the non-propagating PVEVMUser replaces the inherited role
        assert!(!a.check(id, "/vms", &["VM.Clone"], false));
        assert!(a.check(id, "/vms", &["VM.PowerMgmt"], false));
    }

    #[test]
    fn header_parsing_follows_pve() {
        let a = access();
        let secret = a
            .tokens
            .get("root@pam!admin")
            .map(|t| t.secret.clone())
            .unwrap_or_default();
        assert_eq!(
            a.authenticate(Some(&format!("PVEAPIToken=root@pam!admin={secret}"))),
            Ok("root@pam!admin".into())
        );
        assert_eq!(
            a.authenticate(Some(&format!("PVEAPIToken root@pam!admin={secret}"))),
            Ok("root@pam!admin".into())
        );
        assert_eq!(
            a.authenticate(Some(&format!("PVEAPIToken=root%40pam%21admin={secret}"))),
            Ok("root@pam!admin".into())
        );
        assert_eq!(a.authenticate(None), Err(AuthFailure::NoTicket));
        assert_eq!(
            a.authenticate(Some("PVEAPIToken=root@pam!admin=nope")),
            Err(AuthFailure::Failure)
        );
        assert_eq!(
            a.authenticate(Some(&format!("PVEAPIToken=root@pam!9x={secret}"))),
            Err(AuthFailure::Failure)
        );
    }

    #[test]
    fn permission_map_omits_empty_paths() {
        let a = access();
        let m = a.permission_map("auditor@pve!ro", None);
        assert!(m.contains_key("/vms"));
        assert!(!m.contains_key("/"));
        assert_eq!(m.get("/vms").and_then(|p| p.get("VM.Audit")), Some(&true));
    }
}
