//! proxmox-manager: an MCP server that lets an LLM agent manage a Proxmox VE cluster, plus an
//! embedded, faithful PVE simulator to try it and to test it against.
//!
//! # Module map
//!
//! | module   | owns                                                                  | may use            |
//! |----------|-----------------------------------------------------------------------|--------------------|
//! | [`config`] | `cluster-config.yaml`: raw serde shape -> validated [`config::Config`]; credentials (`pass`, env, file) | nothing of ours |
//! | [`pve`]    | the PVE REST wire: client, TLS modes, envelope, errors, lenient decoding, UPIDs, task waiting | nothing of ours |
//! | [`ops`]    | what an operation means, without MCP types, one folder per domain (`vm/`, `template/`, `cluster/`, `storage/`, `access/`, `runbook/`); shared: the tool spec type ([`ops::spec`]), the cluster snapshot, pure planners ([`ops::plan`], no I/O), the bounded batch executor ([`ops::batch`]), argument formats ([`ops::validate`]), VMID allocation, guards, the lock-aware task helper, audit log, doctor | `pve`, `ssh`, `config` |
//! | [`server`] | the MCP surface, folders matching `ops`: each tool's handler beside its [`ops::spec::ToolSpec`] (the registry derives annotations, toolsets, catalogue and access table), one mutating-call path (progress, cancellation, audit), argument checks against the input schema, resources, prompts, transports (strict stdio framing, HTTP + bearer with limits) | `ops`, `config`, `pve` (types only) |
//! | [`ssh`]    | the SSH layer: connection pool, host key policy (known_hosts, TOFU), auth (key file, agent), exec, SFTP upload, shell quoting | nothing of ours |
//! | [`sim`]    | the PVE simulator: state, HTTPS REST API, auth/ACL, parameter validation, task engine, scenarios | nothing of ours |
//! | [`sim_session`] | a client session against the simulator (`--sim`): nodes from the scenario, the user's config applied, its own audit log and runbooks | `sim`, `ops`, `config`, `ssh` |
//!
//! The binary's `main.rs` parses flags and hands over to its `commands` module (the only
//! places `anyhow` is used).
//!
//! The dependency rule `server -> ops -> {pve, ssh, config}`, `sim` independent, the planners
//! free of I/O and `pve` free of MCP, SSH and YAML are checked by `tests/architecture.rs`. `sim` must never import the client's types: the client is tested
//! against an independent implementation of PVE's behaviour.

pub mod config;
pub mod ops;
pub mod pve;
pub mod server;
pub mod sim;
pub mod sim_session;
pub mod ssh;
