//! `pveum` (pve-access-control's `PVE::CLI::pveum`) on the simulator's access model
//! ([`super::super::auth::Access`]): roles, users, API tokens, ACLs and effective permissions.
//! A token made here authenticates against the HTTPS API at once. Errors carry the prefix
//! `lock_user_config` adds (`create role failed: ...`). Not modelled: groups, realms other
//! than `pam` and `pve`, passwords, token expiry, `yaml` output.

use serde_json::{Value, json};

use super::super::auth::{
    Access, AclEntry, Token, builtin_role, normalize, valid_privilege, valid_token_name,
};
use super::super::http::ApiError;
use super::cli_out::{emit, table};
use super::cmd_qm::{api_error, parse};
use super::exec::{Io, NodeCtx, Opts};

pub fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let words: Vec<&str> = args.iter().take(3).map(String::as_str).collect();
    let mut st = ctx.lock();
    let a = &mut st.access;
    match words.as_slice() {
        ["role", "add", ..] => role_set(a, &args[2..], io, true),
        ["role", "modify", ..] => role_set(a, &args[2..], io, false),
        ["role", "list", ..] => role_list(a, &args[2..], io),
        ["user", "add", ..] => user_add(a, &args[2..], io),
        ["user", "list", ..] => user_list(a, &args[2..], io),
        ["user", "token", "add", ..] => token_add(a, &args[3..], io),
        ["user", "token", "remove", ..] => token_remove(a, &args[3..], io),
        ["user", "token", "list", ..] => token_list(a, &args[3..], io),
        ["user", "permissions", ..] => permissions(a, &args[2..], io),
        ["acl", "modify", ..] => acl_modify(a, &args[2..], io),
        ["acl", "list", ..] => acl_list(a, &args[2..], io),
        _ => io.die(&format!(
            "ERROR: unknown command 'pveum {}'\nUSAGE: pveum <COMMAND> [ARGS] [OPTIONS]",
            words.join(" ")
        )),
    }
}

fn opt<'a>(opts: &'a Opts, k: &str) -> Option<&'a str> {
    opts.iter()
        .rev()
        .find(|(x, _)| x == k)
        .map(|(_, v)| v.as_str())
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', ';', ' ', '\0'])
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn role_set(a: &mut Access, args: &[String], io: &mut Io, create: bool) -> u32 {
    let (usage, what) = if create {
        ("pveum role add <roleid> [OPTIONS]", "create role failed")
    } else {
        ("pveum role modify <roleid> [OPTIONS]", "update role failed")
    };
    let Ok((pos, opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let role = &pos[0];
    if create && a.roles.contains_key(role) {
        return io.die(&format!("{what}: role '{role}' already exists"));
    }
    if !create && !a.roles.contains_key(role) {
        return io.die(&format!("{what}: role '{role}' does not exist"));
    }
    if !create && builtin_role(role) {
        return io.die(&format!(
            "{what}: auto-generated role '{role}' cannot be modified"
        ));
    }
    let privs = split_list(opt(&opts, "privs").unwrap_or(""));
    if let Some(bad) = privs.iter().find(|p| !valid_privilege(p)) {
        return io.die(&format!("{what}: invalid privilege '{bad}'"));
    }
    let append = opt(&opts, "append").is_some_and(|v| v == "1");
    let set = a.roles.entry(role.clone()).or_default();
    if !append {
        set.clear();
    }
    set.extend(privs);
    0
}

fn role_list(a: &Access, args: &[String], io: &mut Io) -> u32 {
    let Ok((_, opts)) = parse(io, args, 0, "pveum role list [OPTIONS]") else {
        return 255;
    };
    let rows: Vec<Value> = a
        .roles
        .iter()
        .map(|(r, p)| {
            let privs: Vec<&str> = p.iter().map(String::as_str).collect();
            json!({"privs": privs.join(","), "roleid": r, "special": u8::from(builtin_role(r))})
        })
        .collect();
    let text = || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r["roleid"].as_str().unwrap_or("").to_string(),
                    r["privs"].as_str().unwrap_or("").to_string(),
                ]
            })
            .collect();
        table(&["roleid", "privs"], &cells)
    };
    emit(io, &opts, &Value::Array(rows.clone()), text)
}

fn user_add(a: &mut Access, args: &[String], io: &mut Io) -> u32 {
    let usage = "pveum user add <userid> [OPTIONS]";
    let Ok((pos, _opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let user = &pos[0];
    let Some((name, realm)) = user
        .rsplit_once('@')
        .filter(|(n, r)| !n.is_empty() && !r.is_empty())
    else {
        let e = ApiError::param("userid", "value does not look like a valid user name");
        return api_error(io, e, usage);
    };
    if name.contains(':') || name.contains('/') {
        let e = ApiError::param("userid", "value does not look like a valid user name");
        return api_error(io, e, usage);
    }
    if !matches!(realm, "pam" | "pve") {
        return io.die(&format!(
            "create user failed: domain '{realm}' does not exist"
        ));
    }
    if !a.users.insert(user.clone()) {
        return io.die(&format!("create user failed: user '{user}' already exists"));
    }
    0
}

fn user_list(a: &Access, args: &[String], io: &mut Io) -> u32 {
    let Ok((_, opts)) = parse(io, args, 0, "pveum user list [OPTIONS]") else {
        return 255;
    };
    let rows: Vec<Value> = a
        .users
        .iter()
        .map(|u| json!({"enable": 1, "expire": 0, "userid": u}))
        .collect();
    let text = || {
        let cells: Vec<Vec<String>> = a
            .users
            .iter()
            .map(|u| vec![u.clone(), "1".into()])
            .collect();
        table(&["userid", "enable"], &cells)
    };
    emit(io, &opts, &Value::Array(rows.clone()), text)
}

fn token_add(a: &mut Access, args: &[String], io: &mut Io) -> u32 {
    let usage = "pveum user token add <userid> <tokenid> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 2, usage) else {
        return 255;
    };
    let (user, id) = (&pos[0], &pos[1]);
    if !valid_token_name(id) {
        return api_error(
            io,
            ApiError::param("tokenid", "invalid format - invalid token ID"),
            usage,
        );
    }
    if !a.users.contains(user) {
        return io.die(&format!("generating token failed: no such user ('{user}')"));
    }
    let full = format!("{user}!{id}");
    if a.tokens.contains_key(&full) {
        return io.die("generating token failed: Token already exists.");
    }
    let privsep = opt(&opts, "privsep").unwrap_or("1").to_string();
    let secret = uuid::Uuid::new_v4().to_string();
    a.tokens.insert(
        full.clone(),
        Token {
            secret: secret.clone(),
            privsep: privsep != "0",
            comment: opt(&opts, "comment").unwrap_or("").to_string(),
        },
    );
    let mut info = json!({"privsep": privsep});
    if let Some(c) = opt(&opts, "comment") {
        info["comment"] = json!(c);
    }
    let value = json!({"full-tokenid": full, "info": info, "value": secret});
    let text = || {
        let rows = vec![
            vec!["full-tokenid".to_string(), full.clone()],
            vec!["info".to_string(), info.to_string()],
            vec!["value".to_string(), secret.clone()],
        ];
        table(&["key", "value"], &rows)
    };
    emit(io, &opts, &value, text)
}

/// `pveum user token list <userid>`: the user's tokens (never their secrets).
fn token_list(a: &Access, args: &[String], io: &mut Io) -> u32 {
    let Ok((pos, opts)) = parse(io, args, 1, "pveum user token list <userid> [OPTIONS]") else {
        return 255;
    };
    let user = &pos[0];
    if !a.users.contains(user) {
        return io.die(&format!("no such user ('{user}')"));
    }
    let prefix = format!("{user}!");
    let rows: Vec<Value> = a
        .tokens
        .iter()
        .filter_map(|(full, t)| {
            let id = full.strip_prefix(&prefix)?;
            Some(json!({"tokenid": id, "privsep": u8::from(t.privsep), "comment": t.comment, "expire": 0}))
        })
        .collect();
    let text = || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r["tokenid"].as_str().unwrap_or("").to_string(),
                    r["privsep"].to_string(),
                ]
            })
            .collect();
        table(&["tokenid", "privsep"], &cells)
    };
    emit(io, &opts, &Value::Array(rows.clone()), text)
}

fn token_remove(a: &mut Access, args: &[String], io: &mut Io) -> u32 {
    let Ok((pos, _)) = parse(io, args, 2, "pveum user token remove <userid> <tokenid>") else {
        return 255;
    };
    let (user, id) = (&pos[0], &pos[1]);
    let full = format!("{user}!{id}");
    if a.tokens.remove(&full).is_none() {
        return io.die(&format!(
            "deleting token failed: no such token '{id}' for user '{user}'"
        ));
    }
    a.acl.retain(|e| e.ugid != full);
    0
}

/// ACL paths PVE accepts (`check_path`).
fn valid_acl_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').filter(|x| !x.is_empty()).collect();
    matches!(
        parts.as_slice(),
        [] | ["access"]
            | ["access", "groups" | "realm"]
            | ["access", "groups" | "realm", _]
            | ["nodes" | "storage" | "vms" | "pool" | "sdn" | "mapping"]
            | ["nodes" | "storage" | "vms" | "pool", _]
            | ["sdn" | "mapping", ..]
    )
}

fn acl_modify(a: &mut Access, args: &[String], io: &mut Io) -> u32 {
    let usage = "pveum acl modify <path> --roles <string> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let fail = |io: &mut Io, m: String| io.die(&format!("update ACL failed: {m}"));
    let path = normalize(&pos[0]);
    if !valid_acl_path(&path) {
        return fail(io, format!("invalid ACL path '{path}'"));
    }
    let Some(roles) = opt(&opts, "roles").map(split_list) else {
        return api_error(
            io,
            ApiError::param("roles", "property is missing and it is not optional"),
            usage,
        );
    };
    if let Some(r) = roles.iter().find(|r| !a.roles.contains_key(*r)) {
        return fail(io, format!("role '{r}' does not exist"));
    }
    if let Some(g) = opt(&opts, "groups")
        .map(split_list)
        .and_then(|g| g.into_iter().next())
    {
        return fail(io, format!("group '{g}' does not exist"));
    }
    let users = opt(&opts, "users").map(split_list).unwrap_or_default();
    let tokens = opt(&opts, "tokens").map(split_list).unwrap_or_default();
    if users.is_empty() && tokens.is_empty() {
        return fail(
            io,
            "either 'users', 'groups' or 'tokens' is required".into(),
        );
    }
    if let Some(u) = users.iter().find(|u| !a.users.contains(*u)) {
        return fail(io, format!("user '{u}' does not exist"));
    }
    if let Some(t) = tokens.iter().find(|t| !a.tokens.contains_key(*t)) {
        let (u, id) = t.split_once('!').unwrap_or((t, ""));
        return fail(io, format!("no such token '{id}' for user '{u}'"));
    }
    let propagate = opt(&opts, "propagate").is_none_or(|v| v != "0");
    let delete = opt(&opts, "delete").is_some_and(|v| v == "1");
    for ugid in users.iter().chain(&tokens) {
        for role in &roles {
            a.acl
                .retain(|e| !(e.path == path && e.ugid == *ugid && e.role == *role));
            if !delete {
                a.acl.push(AclEntry {
                    path: path.clone(),
                    ugid: ugid.clone(),
                    role: role.clone(),
                    propagate,
                });
            }
        }
    }
    0
}

fn acl_list(a: &Access, args: &[String], io: &mut Io) -> u32 {
    let Ok((_, opts)) = parse(io, args, 0, "pveum acl list [OPTIONS]") else {
        return 255;
    };
    let rows: Vec<Value> = a
        .acl
        .iter()
        .map(|e| {
            let kind = if e.ugid.contains('!') { "token" } else { "user" };
            json!({"path": e.path, "propagate": u8::from(e.propagate), "roleid": e.role, "type": kind, "ugid": e.ugid})
        })
        .collect();
    let text = || {
        let cells: Vec<Vec<String>> = a
            .acl
            .iter()
            .map(|e| {
                vec![
                    e.path.clone(),
                    e.ugid.clone(),
                    e.role.clone(),
                    u8::from(e.propagate).to_string(),
                ]
            })
            .collect();
        table(&["path", "ugid", "roleid", "propagate"], &cells)
    };
    emit(io, &opts, &Value::Array(rows.clone()), text)
}

fn permissions(a: &Access, args: &[String], io: &mut Io) -> u32 {
    let usage = "pveum user permissions [<userid>] [OPTIONS]";
    let Ok((pos, opts)) = pve_one(io, args, usage) else {
        return 255;
    };
    let who = pos.unwrap_or_else(|| "root@pam".to_string());
    if who != "root@pam" && !a.exists(&who) {
        return io.die(&format!("no such user/token '{who}'"));
    }
    let map = a.permission_map(&who, opt(&opts, "path"));
    let value: Value = map
        .iter()
        .map(|(p, privs)| {
            let m: serde_json::Map<String, Value> = privs
                .iter()
                .map(|(k, prop)| (k.clone(), json!(u8::from(*prop))))
                .collect();
            (p.clone(), Value::Object(m))
        })
        .collect::<serde_json::Map<String, Value>>()
        .into();
    let text = || {
        let cells: Vec<Vec<String>> = map
            .iter()
            .map(|(p, privs)| {
                let list: Vec<String> = privs
                    .iter()
                    .map(|(k, prop)| if *prop { format!("{k} (*)") } else { k.clone() })
                    .collect();
                vec![p.clone(), list.join(", ")]
            })
            .collect();
        table(&["ACL path", "Permissions"], &cells)
    };
    emit(io, &opts, &value, text)
}

/// An optional single positional argument.
fn pve_one(io: &mut Io, args: &[String], usage: &str) -> Result<(Option<String>, Opts), u32> {
    let (pos, opts) =
        super::exec::pve_opts(args, &[]).map_err(|e| io.die(&format!("400 {e}\n{usage}")))?;
    if pos.len() > 1 {
        return Err(io.die(&format!("400 too many arguments\n{usage}")));
    }
    Ok((pos.into_iter().next(), opts))
}
