//! The integration suite: one test binary for every file in `tests/` (one binary links the
//! crate once, where one per file made ~50 copies of it: gigabytes of target directory and a
//! minute of linking on a small CI machine). Each file is a module; run one with
//! `cargo test --test suite <file>::`. `architecture::every_test_file_is_in_the_suite` fails
//! when a file here is missing.

mod common;
#[path = "common/sim_support.rs"]
mod support;

mod architecture;
mod arguments;
mod claude_plugin;
mod cli;
mod client_sim;
mod cluster_snapshot;
mod config_example;
mod credentials_pass;
mod failure_messages;
mod fuzz_args;
mod http_limits;
mod http_transport;
mod link_order;
mod mcp_access;
mod mcp_ansible;
mod mcp_backups;
mod mcp_bulk;
mod mcp_call_bounds;
mod mcp_clients;
mod mcp_containers;
mod mcp_containers_create;
mod mcp_content_pages;
mod mcp_elicitation;
mod mcp_images;
mod mcp_lifecycle;
mod mcp_migrate;
mod mcp_orphans;
mod mcp_paging;
mod mcp_profiles;
mod mcp_runbooks;
mod mcp_scale;
mod mcp_snapshots;
mod mcp_stdio;
mod mcp_template_replace;
mod mcp_templates;
mod mcp_templates_ssh;
mod mcp_vm_guards;
mod ops_locks;
mod pve_client;
mod pve_keepalive;
mod pve_tls;
mod pve_write;
mod python_client;
mod rbac_bootstrap;
mod registry;
mod schema_conformance;
mod secret_hygiene;
mod sim_backups;
mod sim_ct_tools;
mod sim_generate;
mod sim_http;
mod sim_images;
mod sim_lifecycle;
mod sim_listing;
mod sim_locks;
mod sim_lxc;
mod sim_migrate;
mod sim_power;
mod sim_reads;
mod sim_sdn;
mod sim_snapshots;
mod sim_ssh;
mod sim_tls;
mod sim_volumes;
mod ssh_config;
mod ssh_hostkeys;
mod ssh_pool;
mod stdio_framing;
mod test_script;
mod tool_names;
mod tool_specs;
mod tools_snapshot;
