//! proxmox-manager: an MCP server that lets an LLM agent manage a Proxmox VE cluster, plus an
//! embedded, faithful PVE simulator to try it and to test it against.
//!
//! # Module map
//!
//! | module   | owns                                                                  | may use            |
//! |----------|-----------------------------------------------------------------------|--------------------|
//! | [`config`] | `cluster-config.yaml`: raw serde shape -> validated [`config::Config`]; credentials (`pass`, env, file) | nothing of ours |
//! | [`pve`]    | the PVE REST wire: client, TLS modes, envelope, errors, lenient decoding, UPIDs, task waiting | nothing of ours |
//! | [`ops`]    | what an operation means, without MCP types: status, inventory, storage, tasks, VM lifecycle, templates, VMID allocation, guards, audit log, doctor | `pve`, `ssh`, `config` |
//! | [`server`] | the MCP surface: toolsets, typed tools, transports (stdio, HTTP + bearer), error boundary | `ops`, `config`, `pve` (types only) |
//! | [`ssh`]    | the SSH layer: connection pool, host key policy (known_hosts, TOFU), auth (key file, agent), exec, SFTP upload, shell quoting | nothing of ours |
//! | [`sim`]    | the PVE simulator: state, HTTPS REST API, auth/ACL, parameter validation, task engine, scenarios | nothing of ours |
//! | [`sim_session`] | a client session against the simulator (`--sim`): nodes from the scenario, the user's config applied, its own audit log and runbooks | `sim`, `ops`, `config`, `ssh` |
//!
//! The dependency rule `server -> ops -> {pve, ssh, config}`, `sim` independent, is checked by
//! `tests/architecture.rs`. `sim` must never import the client's types: the client is tested
//! against an independent implementation of PVE's behaviour.

pub mod config;
pub mod ops;
pub mod pve;
pub mod server;
pub mod sim;
pub mod sim_session;
pub mod ssh;
