//! Shared test setup: an in-process simulator, a config file pointing at it, the binary.
#![allow(dead_code)]

pub mod fake_pve;
pub mod mcp;
pub mod pass;
pub mod sshd;

use std::path::{Path, PathBuf};

use proxmox_manager::sim::{self, Scenario, SimHandle, SimOptions};

/// Fast enough for tests, slow enough that tasks are observably `running` for a moment.
pub const TIME_SCALE: f64 = 0.001;

pub async fn start_sim() -> SimHandle {
    let scenario = Scenario::embedded().expect("embedded scenario parses");
    sim::start(SimOptions {
        scenario,
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale: TIME_SCALE,
    })
    .await
    .expect("simulator starts")
}

/// `PROXMOX_MANAGER_TOKEN` value for the simulator's manager token.
pub fn token_env(sim: &SimHandle) -> String {
    let t = sim
        .token("claude-code@pve!automation")
        .expect("scenario has the manager token");
    format!("{}={}", t.id, t.secret)
}

/// A cluster-config.yaml in the seed format pointing at the simulator with its pinned
/// fingerprint. `extra_api` lets a test replace the `api:` block.
pub fn config_yaml(port: u16, fingerprint: &str) -> String {
    format!(
        r#"cluster:
  name: annarchy.net
  nodes:
    - name: pve01
      host: 127.0.0.1
    - name: pve02
      host: 127.0.0.1
    - name: pve03
      host: 127.0.0.1

defaults:
  storage: local-lvm
  network_bridge: vmbr0
  bios: ovmf
  machine: q35
  cpu: host
  scsi_controller: virtio-scsi-single
  efidisk_pre_enrolled_keys: false
  guest_agent: true

vmid_ranges:
  templates: 100-999
  vms: 1000-9999

credentials:
  pass_path: annarchy.net/pve/api-token
  ssh_user: root

tags:
  templates: ["template"]
  talos: ["talos", "kubernetes"]
  cloudinit: ["cloudinit"]

cloudinit:
  default_user: ada
  ssh_keys_source: ~/.ssh/authorized_keys
  vendor_snippet_path: /var/lib/vz/snippets/

api:
  port: {port}
  tls:
    fingerprint: "{fingerprint}"
"#
    )
}

pub fn write_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    let path = dir.join("cluster-config.yaml");
    std::fs::write(&path, config_yaml(sim.addr().port(), &sim.fingerprint()))
        .expect("write config");
    path
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_proxmox-manager"))
}

/// A PVE client for the simulator with the given token, pinned to its fingerprint.
pub fn client_for(sim: &SimHandle, token_id: &str) -> proxmox_manager::pve::Client {
    use proxmox_manager::pve::{ApiToken, Client, ClientOptions, TlsMode, parse_fingerprint};
    let t = sim.token(token_id).expect("scenario token");
    let token = ApiToken::new(t.id, secrecy::SecretString::from(t.secret)).expect("token id");
    let mut opts = ClientOptions::new(vec![sim.url()], token);
    opts.tls = TlsMode::Fingerprint(parse_fingerprint(&sim.fingerprint()).expect("fingerprint"));
    Client::new(opts).expect("client")
}

pub const MANAGER: &str = "claude-code@pve!automation";
pub const AUDITOR: &str = "auditor@pve!ro";
