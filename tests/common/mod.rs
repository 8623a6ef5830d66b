//! Shared test setup: an in-process simulator, a config file pointing at it, the binary.
#![allow(dead_code)]

pub mod clients;
pub mod elicit;
pub mod external;
pub mod fake_clis;
pub mod fake_pve;
pub mod http;
pub mod images;
pub mod mcp;
pub mod pass;
pub mod sshd;

use std::path::{Path, PathBuf};

use proxmox_manager::sim::{self, Scenario, SimHandle, SimOptions};

/// Fast enough for tests, slow enough that tasks are observably `running` for a moment.
pub const TIME_SCALE: f64 = 0.001;

pub async fn start_sim() -> SimHandle {
    start_scenario(Scenario::embedded().expect("embedded scenario parses")).await
}

/// A simulator running `scenario` (a generated cluster, say) at the tests' time scale.
pub async fn start_scenario(scenario: Scenario) -> SimHandle {
    sim::start(SimOptions {
        scenario,
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale: TIME_SCALE,
    })
    .await
    .expect("simulator starts")
}

/// The server over MCP (stdio) against `sim` with the manager token, its config and state in
/// the returned directory (keep it while the client runs).
pub async fn connect_server(sim: &SimHandle) -> (mcp::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(dir.path(), sim);
    let (client, _) = mcp::connect(&cfg, &token_env(sim), dir.path(), &[]).await;
    (client, dir)
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

/// A config like [`write_config`] that also reaches the simulator's SSH front: a fresh
/// ed25519 key made by `ssh-keygen` (authorized in the simulator) as `ssh.key_file`, the
/// simulator's host keys in a known_hosts file, each node's SSH port.
pub fn write_ssh_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    write_ssh_config_with(dir, sim, None)
}

/// [`write_ssh_config`] with a passphrase-protected key: `(passphrase, pass entry)` — the
/// config names the entry as `ssh.key_passphrase_pass_path` (the caller stores it in `pass`).
pub fn write_ssh_config_with(
    dir: &Path,
    sim: &SimHandle,
    passphrase: Option<(&str, &str)>,
) -> PathBuf {
    let key = dir.join("id_ed25519");
    sshd::keygen(&key, "ed25519", passphrase.map_or("", |(p, _)| p));
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    sim.authorize_ssh_key(public.trim()).expect("key accepted");
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, sim.ssh_known_hosts()).expect("write known_hosts");
    let mut yaml = config_yaml(sim.addr().port(), &sim.fingerprint());
    for node in ["pve01", "pve02", "pve03"] {
        let port = sim.ssh_addr(node).expect("ssh front").port();
        yaml = yaml.replace(
            &format!("    - name: {node}\n      host: 127.0.0.1\n"),
            &format!("    - name: {node}\n      host: 127.0.0.1\n      ssh_port: {port}\n"),
        );
    }
    let entry = passphrase
        .map(|(_, e)| format!("  key_passphrase_pass_path: {e}\n"))
        .unwrap_or_default();
    yaml.push_str(&format!(
        "\nssh:\n  key_file: {}\n{entry}  use_agent: false\n  known_hosts: {}\n",
        key.display(),
        known_hosts.display()
    ));
    let path = dir.join("cluster-config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// A private copy of the fixture fleet-infra repository (`tests/fixtures/fleet-infra`) at
/// `dir/fleet-infra`, so a test's Ansible runs never write inside the checkout.
pub fn copy_fleet_infra(dir: &Path) -> PathBuf {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read fixture") {
            let e = e.expect("entry");
            let target = to.join(e.file_name());
            if e.file_type().expect("type").is_dir() {
                copy_dir(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).expect("copy");
            }
        }
    }
    let repo = dir.join("fleet-infra");
    copy_dir(&clients::repo().join("tests/fixtures/fleet-infra"), &repo);
    repo
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

/// A Talos cluster profile on template 101: three control planes and `workers` workers, with
/// `extra_net` lines added to its `network` block.
pub fn lab_profile(
    name: &str,
    extra_net: &str,
    workers: u32,
    tags: &str,
    flux_path: &str,
) -> String {
    format!(
        "name: {name}
type: talos
network:
  api_endpoint: {name}.example.net:6443
  pod_cidr: 10.244.0.0/16
  service_cidr: 10.96.0.0/12
{extra_net}nodes:
  controlplane:
    count: 3
    cores: 2
    memory: 2048
    disk: 12G
    placement: spread
  workers:
    count: {workers}
    cores: 2
    memory: 2048
    disk: 12G
    placement: spread
template: 101
tags: {tags}
flux:
  repo: git@github.com:example/fleet-infra.git
  path: {flux_path}
  branch: main
"
    )
}
