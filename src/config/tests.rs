//! Unit tests of validation: the seed example, extensions, every problem (key path + fix).
//! YAML errors, lookup, schema, sim config and redaction are in `load_tests.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

pub(super) const EXAMPLE: &str = include_str!("../../config/cluster-config.example.yaml");

pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

pub(super) fn origin() -> &'static Path {
    Path::new("/etc/pm/cluster-config.yaml")
}

pub(super) fn parse_example(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, origin(), &env_of(&[("HOME", "/home/ada")]))
}

/// The example with one line replaced (the `old` text must occur exactly once).
pub(super) fn edited(old: &str, new: &str) -> String {
    assert_eq!(
        EXAMPLE.matches(old).count(),
        1,
        "`{old}` must occur once in the example"
    );
    EXAMPLE.replace(old, new)
}

/// Parse an edited example that must fail validation with a problem at `key`; returns it.
fn problem_at(text: &str, key: &str) -> Problem {
    let err = parse_example(text).expect_err("must be invalid");
    let found = err.problems().iter().find(|p| p.key == key).cloned();
    found.unwrap_or_else(|| panic!("no problem at `{key}` in: {err}"))
}

#[test]
fn seed_example_parses_to_the_seed_values() {
    let c = parse_example(EXAMPLE).expect("example is valid");
    assert_eq!(c.path, origin());
    assert_eq!(c.cluster.name, "annarchy.net");
    let nodes: Vec<(&str, &str)> = c
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.host.as_str()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("pve01", "pve01.annarchy.net"),
            ("pve02", "pve02.annarchy.net"),
            ("pve03", "pve03.annarchy.net")
        ]
    );
    let d = &c.defaults;
    assert_eq!(d.storage, "local-lvm");
    assert_eq!(d.network_bridge, "vmbr0");
    assert_eq!(d.bios, Bios::Ovmf);
    assert_eq!(d.machine, "q35");
    assert_eq!(d.cpu, "host");
    assert_eq!(d.scsi_controller, ScsiController::VirtioScsiSingle);
    assert!(!d.efidisk_pre_enrolled_keys);
    assert!(d.guest_agent);
    assert_eq!(
        (
            c.vmid_ranges.templates.start(),
            c.vmid_ranges.templates.end()
        ),
        (100, 999)
    );
    assert_eq!(
        (c.vmid_ranges.vms.start(), c.vmid_ranges.vms.end()),
        (1000, 9999)
    );
    assert!(c.vmid_ranges.templates.contains(100) && c.vmid_ranges.templates.contains(999));
    assert!(!c.vmid_ranges.templates.contains(1000) && !c.vmid_ranges.vms.contains(999));
    assert_eq!(
        c.credentials.pass_path.as_deref(),
        Some("annarchy.net/pve/api-token")
    );
    assert_eq!(c.credentials.token_file, None);
    assert_eq!(c.credentials.ssh_user, "root");
    assert_eq!(c.tags["templates"], ["template"]);
    assert_eq!(c.tags["talos"], ["talos", "kubernetes"]);
    assert_eq!(c.tags["cloudinit"], ["cloudinit"]);
    assert_eq!(c.cloudinit.default_user, "ada");
    assert_eq!(
        c.cloudinit.ssh_keys_source,
        Some(PathBuf::from("/home/ada/.ssh/authorized_keys"))
    );
    assert_eq!(c.cloudinit.vendor_snippet_path, "/var/lib/vz/snippets/");
    // Extension defaults.
    assert_eq!(c.api.port, 8006);
    assert_eq!(c.api.tls, TlsSetting::System);
    assert_eq!(c.api.timeout, Duration::from_secs(30));
    assert_eq!(c.ssh.port, 22);
    assert!(c.ssh.use_agent && !c.ssh.trust_on_first_use);
    assert_eq!(
        c.limits,
        Limits {
            max_parallel: 4,
            per_node_parallel: 2
        }
    );
    assert_eq!(c.audit_log, None);
    assert_eq!(
        c.api_endpoints(),
        [
            "https://pve01.annarchy.net:8006",
            "https://pve02.annarchy.net:8006",
            "https://pve03.annarchy.net:8006"
        ]
    );
}

#[test]
fn extensions_parse_and_paths_expand() {
    let text = format!(
        "{EXAMPLE}\napi:\n  port: 8443\n  tls:\n    fingerprint: \"{}\"\n  timeout_secs: 5\n\
         ssh:\n  port: 2222\n  key_file: ~/.ssh/id_ed25519\n  use_agent: false\n  known_hosts: hosts\n  trust_on_first_use: true\n\
         ansible:\n  fleet_infra: ~/src/fleet-infra\n  inventory: /srv/hosts.yaml\n\
         paths:\n  runbooks: runbooks\n  clusters: /srv/clusters\n\
         limits:\n  max_parallel: 8\n  per_node_parallel: 3\n\
         audit_log: ~/audit.jsonl\n",
        "ab:".repeat(31) + "CD"
    );
    let text = text.replace(
        "  ssh_user: root\n",
        "  ssh_user: root\n  token_file: ~/.config/pm/token\n",
    );
    let c = parse_example(&text).expect("valid");
    assert_eq!(c.api.port, 8443);
    let mut fp = [0xabu8; 32];
    fp[31] = 0xcd;
    assert_eq!(c.api.tls, TlsSetting::Fingerprint(fp));
    assert_eq!(c.api.timeout, Duration::from_secs(5));
    assert_eq!(
        c.credentials.token_file,
        Some(PathBuf::from("/home/ada/.config/pm/token"))
    );
    assert_eq!(
        c.ssh.key_file,
        Some(PathBuf::from("/home/ada/.ssh/id_ed25519"))
    );
    assert_eq!(c.ssh.known_hosts, Some(PathBuf::from("/etc/pm/hosts")));
    assert!(!c.ssh.use_agent && c.ssh.trust_on_first_use);
    assert_eq!(c.ssh.port, 2222);
    assert_eq!(
        c.ansible.fleet_infra,
        Some(PathBuf::from("/home/ada/src/fleet-infra"))
    );
    assert_eq!(c.ansible.inventory, vec![PathBuf::from("/srv/hosts.yaml")]);
    assert_eq!(c.ansible.playbook_dir, PathBuf::from("playbooks"));
    assert_eq!(c.paths.runbooks, Some(PathBuf::from("/etc/pm/runbooks")));
    assert_eq!(c.paths.clusters, Some(PathBuf::from("/srv/clusters")));
    assert_eq!(
        c.limits,
        Limits {
            max_parallel: 8,
            per_node_parallel: 3
        }
    );
    assert_eq!(c.audit_log, Some(PathBuf::from("/home/ada/audit.jsonl")));
}

#[test]
fn ca_file_and_fingerprint_forms() {
    let ca = format!("{EXAMPLE}api:\n  tls:\n    ca_file: ca.pem\n");
    assert_eq!(
        parse_example(&ca).expect("valid").api.tls,
        TlsSetting::CaFile(PathBuf::from("/etc/pm/ca.pem"))
    );
    let plain = format!(
        "{EXAMPLE}api:\n  tls:\n    fingerprint: {}\n",
        "0F".repeat(32)
    );
    assert_eq!(
        parse_example(&plain).expect("valid").api.tls,
        TlsSetting::Fingerprint([0x0f; 32])
    );
    assert_eq!(
        TlsSetting::format_fingerprint(&[0x0f; 32]),
        ["0F"; 32].join(":")
    );
}

#[test]
fn display_example_from_the_brief() {
    let err = parse_example(&edited("vms: 1000-9999", "vms: 1000-999")).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "/etc/pm/cluster-config.yaml: vmid_ranges.vms: '1000-999' ends before it starts — write it as START-END, e.g. 1000-9999"
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = edited("bios: ovmf", "bios: uefi").replace("  machine: q35", "  machine: i440");
    let err = parse_example(&text).expect_err("invalid");
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["defaults.bios", "defaults.machine"]);
    assert!(err.to_string().contains("2 problems:"), "{err}");
}

/// (edit old, edit new, key path, substring of the message, substring of the fix)
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "name: annarchy.net",
        "name: \"\"",
        "cluster.name",
        "is empty",
        "name the cluster",
    ),
    (
        "- name: pve02",
        "- name: pve_02",
        "cluster.nodes[1].name",
        "not a valid PVE node name",
        "letters, digits and inner hyphens",
    ),
    (
        "- name: pve02",
        "- name: -pve02",
        "cluster.nodes[1].name",
        "not a valid PVE node name",
        "e.g. pve01",
    ),
    (
        "- name: pve03",
        "- name: pve01",
        "cluster.nodes[2].name",
        "listed twice",
        "list every node once",
    ),
    (
        "host: pve02.annarchy.net",
        "host: https://pve02.annarchy.net",
        "cluster.nodes[1].host",
        "not a bare host name",
        "drop the scheme `https://` (the API is always https): write `pve02.annarchy.net`",
    ),
    (
        "host: pve02.annarchy.net",
        "host: pve02.annarchy.net:8006",
        "cluster.nodes[1].host",
        "not a bare host name",
        "drop the port `:8006` (set api.port instead): write `pve02.annarchy.net`",
    ),
    (
        "host: pve02.annarchy.net",
        "host: \"[fd00::2]:8006\"",
        "cluster.nodes[1].host",
        "not a bare host name",
        "write `fd00::2`",
    ),
    (
        "host: pve02.annarchy.net",
        "host: \"\"",
        "cluster.nodes[1].host",
        "is empty",
        "host name or IP address",
    ),
    (
        "host: pve02.annarchy.net",
        "host: pve 02",
        "cluster.nodes[1].host",
        "not a valid host name or IP address",
        "without scheme or port",
    ),
    (
        "templates: 100-999",
        "templates: 100",
        "vmid_ranges.templates",
        "'100' is not a range",
        "write it as START-END, e.g. 100-999",
    ),
    (
        "templates: 100-999",
        "templates: a-b",
        "vmid_ranges.templates",
        "not a range of two numbers",
        "START-END",
    ),
    (
        "templates: 100-999",
        "templates: 50-999",
        "vmid_ranges.templates",
        "starts below 100",
        "start at 100 or above",
    ),
    (
        "vms: 1000-9999",
        "vms: 1000-1000000000",
        "vmid_ranges.vms",
        "ends above 999999999",
        "end at 999999999 or below",
    ),
    (
        "vms: 1000-9999",
        "vms: 500-9999",
        "vmid_ranges",
        "templates 100-999 and vms 500-9999 overlap (500-999)",
        "make them disjoint",
    ),
    (
        "storage: local-lvm",
        "storage: Local LVM",
        "defaults.storage",
        "not a valid PVE storage id",
        "e.g. local-lvm",
    ),
    (
        "network_bridge: vmbr0",
        "network_bridge: vmbr0 trunk",
        "defaults.network_bridge",
        "not a valid bridge name",
        "e.g. vmbr0",
    ),
    (
        "bios: ovmf",
        "bios: uefi",
        "defaults.bios",
        "'uefi' is not a PVE bios",
        "seabios, ovmf",
    ),
    (
        "machine: q35",
        "machine: i440fx",
        "defaults.machine",
        "not a QEMU machine type",
        "pc-q35-9.0",
    ),
    (
        "cpu: host",
        "cpu: \"host cpu\"",
        "defaults.cpu",
        "not a CPU type",
        "x86-64-v2-AES",
    ),
    (
        "scsi_controller: virtio-scsi-single",
        "scsi_controller: virtio",
        "defaults.scsi_controller",
        "not a PVE SCSI controller",
        "lsi, lsi53c810, virtio-scsi-pci, virtio-scsi-single, megasas, pvscsi",
    ),
    (
        "pass_path: annarchy.net/pve/api-token",
        "pass_path: --help",
        "credentials.pass_path",
        "starts with '-'",
        "without a leading '-'",
    ),
    (
        "pass_path: annarchy.net/pve/api-token",
        "pass_path: /abs/token",
        "credentials.pass_path",
        "is absolute",
        "relative to the password store",
    ),
    (
        "pass_path: annarchy.net/pve/api-token",
        "pass_path: ../x",
        "credentials.pass_path",
        "contains '..'",
        "without '..'",
    ),
    (
        "pass_path: annarchy.net/pve/api-token",
        "pass_path: x/token.gpg",
        "credentials.pass_path",
        "ends with .gpg",
        "drop the .gpg suffix",
    ),
    (
        "ssh_user: root",
        "ssh_user: \"ro ot\"",
        "credentials.ssh_user",
        "not a user name",
        "e.g. root",
    ),
    (
        "talos: [\"talos\", \"kubernetes\"]",
        "talos: [\"talos\", \"Kubernetes\"]",
        "tags.talos[1]",
        "'Kubernetes' is not a valid PVE tag",
        "write it in lowercase: kubernetes",
    ),
    (
        "talos: [\"talos\", \"kubernetes\"]",
        "talos: [\"-talos\"]",
        "tags.talos[0]",
        "not a valid PVE tag",
        "lowercase letters, digits",
    ),
    (
        "talos: [\"talos\", \"kubernetes\"]",
        "talos: []",
        "tags.talos",
        "lists no tag",
        "remove the group",
    ),
    (
        "default_user: ada",
        "default_user: \"\"",
        "cloudinit.default_user",
        "not a user name",
        "e.g. ada",
    ),
    (
        "vendor_snippet_path: /var/lib/vz/snippets/",
        "vendor_snippet_path: snippets/",
        "cloudinit.vendor_snippet_path",
        "not an absolute path",
        "/var/lib/vz/snippets/",
    ),
    (
        "ssh_keys_source: ~/.ssh/authorized_keys",
        "ssh_keys_source: ~ada/.ssh/authorized_keys",
        "cloudinit.ssh_keys_source",
        "~user paths are not supported",
        "starting with ~/",
    ),
    (
        "vms: 1000-9999",
        "vms: 1000-99999999999999999999",
        "vmid_ranges.vms",
        "has a number too large",
        "e.g. 1000-9999",
    ),
    (
        "pass_path: annarchy.net/pve/api-token",
        "pass_path: \"\"",
        "credentials.pass_path",
        "is empty",
        "name the pass entry",
    ),
    (
        "pass_path: annarchy.net/pve/api-token",
        "pass_path: \"a\\tb\"",
        "credentials.pass_path",
        "control character",
        "on one line",
    ),
    (
        "  cloudinit: [\"cloudinit\"]\n",
        "  cloudinit: [\"cloudinit\"]\n  \"\": [\"x\"]\n",
        "tags",
        "group with an empty name",
        "name every tag group",
    ),
    (
        "vendor_snippet_path: /var/lib/vz/snippets/",
        "vendor_snippet_path: /var/lib/../x/",
        "cloudinit.vendor_snippet_path",
        "not an absolute path",
        "snippets",
    ),
];

#[test]
fn empty_node_list_is_a_problem() {
    let start = EXAMPLE.find("  nodes:\n").expect("nodes");
    let end = EXAMPLE.find("\ndefaults:").expect("defaults");
    let text = format!("{}  nodes: []\n{}", &EXAMPLE[..start], &EXAMPLE[end..]);
    let p = problem_at(&text, "cluster.nodes");
    assert_eq!(p.message, "lists no node");
    assert!(p.fix.contains("add at least one node"), "{p}");
}

#[test]
fn each_validation_problem_names_key_message_and_fix() {
    for (old, new, key, message, fix) in CASES {
        let p = problem_at(&edited(old, new), key);
        assert!(
            p.message.contains(message),
            "{key}: message `{}` lacks `{message}`",
            p.message
        );
        assert!(p.fix.contains(fix), "{key}: fix `{}` lacks `{fix}`", p.fix);
    }
}

/// (appended YAML, key path, substring of the message, substring of the fix)
const EXTENSION_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "api:\n  port: 0\n",
        "api.port",
        "0 is not a port",
        "between 1 and 65535",
    ),
    (
        "api:\n  timeout_secs: 0\n",
        "api.timeout_secs",
        "out of range",
        "between 1 and 3600",
    ),
    (
        "api:\n  tls:\n    fingerprint: \"AB:CD\"\n",
        "api.tls.fingerprint",
        "not a SHA-256 fingerprint",
        "openssl x509",
    ),
    (
        "api:\n  tls:\n    ca_file: /ca.pem\n    fingerprint: \"AB:CD\"\n",
        "api.tls",
        "both set",
        "keep one",
    ),
    (
        "ssh:\n  port: 0\n",
        "ssh.port",
        "0 is not a port",
        "default 22",
    ),
    (
        "limits:\n  max_parallel: 0\n",
        "limits.max_parallel",
        "is 0",
        "at least 1",
    ),
    (
        "limits:\n  per_node_parallel: 0\n",
        "limits.per_node_parallel",
        "is 0",
        "at least 1",
    ),
    (
        "limits:\n  max_parallel: 2\n  per_node_parallel: 3\n",
        "limits.per_node_parallel",
        "more than limits.max_parallel (2)",
        "at most max_parallel",
    ),
    ("audit_log: \"\"\n", "audit_log", "is empty", "give a path"),
];

#[test]
fn each_extension_problem_names_key_message_and_fix() {
    for (extra, key, message, fix) in EXTENSION_CASES {
        let p = problem_at(&format!("{EXAMPLE}{extra}"), key);
        assert!(
            p.message.contains(message),
            "{key}: message `{}` lacks `{message}`",
            p.message
        );
        assert!(p.fix.contains(fix), "{key}: fix `{}` lacks `{fix}`", p.fix);
    }
}

#[test]
fn tilde_without_home_is_a_problem() {
    let err = parse_with(EXAMPLE, origin(), &env_of(&[])).expect_err("no HOME");
    let p = &err.problems()[0];
    assert_eq!(p.key, "cloudinit.ssh_keys_source");
    assert!(
        p.message.contains("HOME is not set") && p.fix.contains("absolute path"),
        "{p}"
    );
}

#[test]
fn accepted_values() {
    for m in [
        "q35",
        "pc",
        "pc-q35-9.0",
        "pc-i440fx-8.1+pve1",
        "pc-q35-7.2.pxe",
        "pc-6.2",
        "virt",
        "virt-9.0",
    ] {
        let c = parse_example(&edited("machine: q35", &format!("machine: {m}")));
        assert!(c.is_ok(), "machine {m}: {:?}", c.err());
    }
    for h in ["10.0.0.1", "fd00::1", "pve-01"] {
        let c = parse_example(&edited(
            "host: pve02.annarchy.net",
            &format!("host: \"{h}\""),
        ));
        assert!(c.is_ok(), "host {h}: {:?}", c.err());
    }
    for s in ["lsi", "lsi53c810", "virtio-scsi-pci", "megasas", "pvscsi"] {
        let text = edited(
            "scsi_controller: virtio-scsi-single",
            &format!("scsi_controller: {s}"),
        );
        assert_eq!(
            parse_example(&text)
                .expect("valid")
                .defaults
                .scsi_controller
                .as_str(),
            s
        );
    }
    let c =
        parse_example(&edited("cpu: host", "cpu: \"x86-64-v2-AES,flags=+aes\"")).expect("valid");
    assert_eq!(c.defaults.cpu, "x86-64-v2-AES,flags=+aes");
}

#[test]
fn the_ansible_section_resolves_inventories_in_the_repository_and_keeps_the_playbooks_inside() {
    let c = parse_example(&format!(
        "{EXAMPLE}\nansible:\n  fleet_infra: ~/src/fleet-infra\n  inventory:\n    - playbooks/inventories/annarchy.net/hosts.yaml\n    - /srv/lab.ini\n  playbook_dir: plays\n  ansible_playbook: /opt/ansible/bin/ansible-playbook\n  extra_args: [\"--forks\", \"5\"]\n  timeout_secs: 120\n  host_vars:\n    vmid: [guest_id]\n"
    ))
    .expect("valid");
    let a = &c.ansible;
    assert_eq!(
        a.inventory,
        vec![
            PathBuf::from(
                "/home/ada/src/fleet-infra/playbooks/inventories/annarchy.net/hosts.yaml"
            ),
            PathBuf::from("/srv/lab.ini")
        ]
    );
    assert_eq!(a.playbook_dir, PathBuf::from("plays"));
    assert_eq!(a.extra_args, ["--forks", "5"]);
    assert_eq!(a.timeout, Duration::from_secs(120));
    assert_eq!(a.host_vars.vmid, ["guest_id"]);
    assert_eq!(a.host_vars.node, ["proxmox_node", "node"]);
    let p = problem_at(
        &format!("{EXAMPLE}\nansible:\n  fleet_infra: /f\n  playbook_dir: ../elsewhere\n"),
        "ansible.playbook_dir",
    );
    assert!(p.to_string().contains(".."), "{p}");
    problem_at(
        &format!("{EXAMPLE}\nansible:\n  inventory: /i.yaml\n"),
        "ansible.fleet_infra",
    );
    problem_at(
        &format!(
            "{EXAMPLE}\nansible:\n  fleet_infra: /f\n  host_vars:\n    node: [\"no-dashes\"]\n"
        ),
        "ansible.host_vars.node",
    );
    problem_at(
        &format!("{EXAMPLE}\nansible:\n  fleet_infra: /f\n  timeout_secs: 0\n"),
        "ansible.timeout_secs",
    );
}
