//! Ticket login as PVE does it (`POST /access/ticket`, pve-access-control
//! `PVE::API2::AccessControl` / `PVE::AccessControl`): a user with a password (the scenario's
//! `password`) gets a ticket `PVE:<user>:<HEXTIME>::<signature>` and a CSRF prevention token
//! `<HEXTIME>:<signature>`. Requests authenticate with the `PVEAuthCookie` cookie (or an
//! `Authorization: PVEAuthCookie=<ticket>` header); writes also need the
//! `CSRFPreventionToken` header. A valid ticket given as the password renews it.
//!
//! Lifetime: PVE's 2 hours, in simulated time — scaled with the simulator's time scale (at
//! 0.001 a ticket lasts 7.2 s of real time), so tests can watch one expire.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::auth::Access;

/// PVE's ticket lifetime (`$ticket_lifetime = 3600 * 2`).
pub const LIFETIME_SECS: f64 = 7200.0;

pub struct Tickets {
    key: String,
    issued: BTreeMap<String, (String, Instant)>,
}

impl Tickets {
    pub fn new() -> Tickets {
        Tickets {
            key: format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
            issued: BTreeMap::new(),
        }
    }

    fn sign(&self, what: &str) -> String {
        let digest = Sha256::digest(format!("{}:{what}", self.key).as_bytes());
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    }

    fn issue(&mut self, user: &str) -> (String, String) {
        let t = format!("{:08X}", super::state::now());
        let plain = format!("PVE:{user}:{t}");
        let ticket = format!("{plain}::{}", self.sign(&plain));
        let csrf = format!("{t}:{}", self.sign(&format!("csrf:{t}:{user}")));
        self.issued
            .insert(ticket.clone(), (user.to_string(), Instant::now()));
        (ticket, csrf)
    }

    /// The user a ticket was issued to, while it is younger than `max_age`.
    pub fn user(&self, ticket: &str, max_age: Duration) -> Option<&str> {
        let (user, at) = self.issued.get(ticket)?;
        (at.elapsed() <= max_age).then_some(user.as_str())
    }

    /// Whether `token` is the CSRF prevention token issued to `user`.
    pub fn csrf_ok(&self, user: &str, token: &str) -> bool {
        let Some((t, sig)) = token.split_once(':') else {
            return false;
        };
        let want = self.sign(&format!("csrf:{t}:{user}"));
        subtle::ConstantTimeEq::ct_eq(want.as_bytes(), sig.as_bytes()).into()
    }
}

impl Default for Tickets {
    fn default() -> Self {
        Tickets::new()
    }
}

/// `POST /access/ticket`: `Some(data)` on success, `None` for "authentication failure".
pub fn login(a: &mut Access, username: &str, password: &str, max_age: Duration) -> Option<Value> {
    let by_password = a
        .passwords
        .get(username)
        .is_some_and(|p| subtle::ConstantTimeEq::ct_eq(p.as_bytes(), password.as_bytes()).into());
    let by_ticket = a.tickets.user(password, max_age) == Some(username);
    if !(by_password || by_ticket) || !a.users.contains(username) {
        return None;
    }
    let (ticket, csrf) = a.tickets.issue(username);
    Some(json!({
        "username": username,
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "cap": cap(a, username),
    }))
}

/// The `cap` map the GUI uses (`compute_api_permission`): per area, the privileges held on its
/// root path, each as `1`.
fn cap(a: &Access, user: &str) -> Value {
    let areas: [(&str, &str, &[&str]); 7] = [
        ("vms", "/vms", &["VM."]),
        ("storage", "/storage", &["Datastore."]),
        (
            "access",
            "/access",
            &[
                "User.Modify",
                "Group.Allocate",
                "Permissions.Modify",
                "Realm.",
            ],
        ),
        ("nodes", "/nodes", &["Sys."]),
        ("sdn", "/sdn", &["SDN."]),
        ("dc", "/", &["Sys.Audit", "Sys.Modify", "SDN.", "Pool."]),
        ("mapping", "/mapping", &["Mapping."]),
    ];
    let mut out = Map::new();
    for (name, path, prefixes) in areas {
        let privs: Map<String, Value> = a
            .privileges(user, path)
            .keys()
            .filter(|p| prefixes.iter().any(|x| p.starts_with(x)))
            .map(|p| (p.clone(), json!(1)))
            .collect();
        out.insert(name.to_string(), Value::Object(privs));
    }
    Value::Object(out)
}

/// The ticket of a request: the `PVEAuthCookie` cookie, or `Authorization: PVEAuthCookie=..`.
pub fn from_headers(cookie: Option<&str>, authorization: Option<&str>) -> Option<String> {
    let from_cookie = cookie.and_then(|c| {
        c.split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == "PVEAuthCookie")
            .map(|(_, v)| v.to_string())
    });
    let from_auth = authorization
        .and_then(|h| h.trim().strip_prefix("PVEAuthCookie="))
        .map(str::to_string);
    from_cookie.or(from_auth).map(|t| {
        percent_encoding::percent_decode_str(&t)
            .decode_utf8_lossy()
            .to_string()
    })
}
