//! `/access` reads from the scenario's users, tokens, roles and ACLs: the index, `users`
//! (+ `{userid}`), `groups` (the scenario has none), `roles` (+ `{roleid}`), `acl` and
//! `domains`, with the visibility rules of pve-access-control's `PVE::API2::{User,Group,Role,
//! ACL,Domains}`. `GET /access/ticket` is PVE's no-op (null); the login is `POST` (`ticket.rs`).

use serde_json::{Map, Value, json};

use crate::sim::api::Ctx;
use crate::sim::auth::builtin_role;
use crate::sim::http::{ApiError, ApiResult, Reply};

pub fn index(c: &Ctx) -> ApiResult {
    c.validate()?;
    let subdirs = [
        "users",
        "groups",
        "roles",
        "acl",
        "domains",
        "openid",
        "tfa",
        "ticket",
        "password",
        "permissions",
    ];
    Ok(Reply::data(Value::Array(
        subdirs.iter().map(|s| json!({ "subdir": s })).collect(),
    )))
}

pub fn ticket(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(Reply::data(Value::Null))
}

/// The user behind a request: the token's owner for API tokens.
fn me<'a>(c: &'a Ctx) -> &'a str {
    c.authid().split('!').next().unwrap_or("")
}

fn realm_type(userid: &str) -> &'static str {
    match userid.rsplit_once('@').map(|(_, r)| r) {
        Some("pam") => "pam",
        _ => "pve",
    }
}

fn user_row(c: &Ctx, userid: &str, full: bool) -> Value {
    let mut row =
        json!({ "userid": userid, "enable": 1, "expire": 0, "realm-type": realm_type(userid) });
    let tokens: Vec<Value> = c
        .st
        .access
        .tokens
        .iter()
        .filter(|(id, _)| id.split_once('!').is_some_and(|(u, _)| u == userid))
        .map(|(id, t)| {
            let name = id.split_once('!').map(|(_, n)| n).unwrap_or("");
            json!({ "tokenid": name, "privsep": u8::from(t.privsep), "expire": 0, "comment": t.comment })
        })
        .collect();
    if full {
        row["tokens"] = json!(tokens);
        row["groups"] = json!("");
    }
    row
}

/// `User.Modify` or `Sys.Audit` on `/access/groups` (the scenario's users are in no group).
fn sees_users(c: &Ctx) -> bool {
    c.can("/access/groups", &["User.Modify", "Sys.Audit"])
}

pub fn users(c: &Ctx) -> ApiResult {
    c.validate()?;
    let all = sees_users(c);
    let full = c.flag("full");
    let only_enabled = c.param("enabled").is_some();
    let out: Vec<Value> =
        c.st.access
            .users
            .iter()
            .filter(|u| all || u.as_str() == me(c))
            .filter(|_| !only_enabled || c.flag("enabled"))
            .map(|u| user_row(c, u, full))
            .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn user(c: &Ctx) -> ApiResult {
    let userid = c.param("userid").unwrap_or("");
    // `userid-group` check: on /access/groups or a group of the user
    if !sees_users(c) {
        return Err(ApiError::perm("/access/groups", "User.Modify|Sys.Audit"));
    }
    c.validate()?;
    if !c.st.access.users.contains(userid) {
        return Err(ApiError::Server(format!("no such user ('{userid}')")));
    }
    let mut row = user_row(c, userid, true);
    if let Value::Object(m) = &mut row {
        m.remove("userid");
        m.remove("realm-type");
        let tokens: Map<String, Value> = m
            .remove("tokens")
            .and_then(|t| t.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mut t| {
                let name = t["tokenid"].as_str()?.to_string();
                t.as_object_mut()?.remove("tokenid");
                Some((name, t))
            })
            .collect();
        m.insert("tokens".into(), Value::Object(tokens));
        m.insert("groups".into(), json!([]));
    }
    Ok(Reply::data(row))
}

pub fn groups(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(Reply::data(json!([])))
}

pub fn roles(c: &Ctx) -> ApiResult {
    c.validate()?;
    let out: Vec<Value> =
        c.st.access
            .roles
            .iter()
            .map(|(name, privs)| {
                let mut row = json!({ "roleid": name,
                "privs": privs.iter().cloned().collect::<Vec<_>>().join(",") });
                if builtin_role(name) {
                    row["special"] = json!(1);
                }
                row
            })
            .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn role(c: &Ctx) -> ApiResult {
    c.validate()?;
    let roleid = c.param("roleid").unwrap_or("");
    let Some(privs) = c.st.access.roles.get(roleid) else {
        return Err(ApiError::Server(format!("role '{roleid}' does not exist")));
    };
    Ok(Reply::data(Value::Object(
        privs.iter().map(|p| (p.clone(), json!(1))).collect(),
    )))
}

/// Only entries on paths where the caller may modify permissions.
pub fn acl(c: &Ctx) -> ApiResult {
    c.validate()?;
    let out: Vec<Value> =
        c.st.access
            .acl
            .iter()
            .filter(|a| c.can(&a.path, &["Permissions.Modify"]))
            .map(|a| {
                let kind = if a.ugid.contains('!') {
                    "token"
                } else {
                    "user"
                };
                json!({ "path": a.path, "type": kind, "ugid": a.ugid, "roleid": a.role,
                "propagate": u8::from(a.propagate) })
            })
            .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn domains(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(Reply::data(json!([
        { "realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication" },
        { "realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server" },
    ])))
}
