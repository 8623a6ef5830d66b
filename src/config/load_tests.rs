//! Unit tests: YAML errors with key paths and suggestions, lookup order, loading, the JSON
//! Schema, the simulator config and redaction.

use std::path::Path;

use super::tests::{EXAMPLE, edited, env_of, parse_example};
use super::*;

#[test]
fn unknown_key_names_it_lists_allowed_and_suggests() {
    let err = parse_example(&edited("  storage: local-lvm", "  stroage: local-lvm"))
        .expect_err("unknown");
    let ConfigError::UnknownKey {
        key,
        allowed,
        suggestion,
        position,
        ..
    } = &err
    else {
        panic!("expected UnknownKey, got {err:?}");
    };
    assert_eq!(key, "defaults.stroage");
    assert!(
        allowed.iter().any(|a| a == "storage") && allowed.iter().any(|a| a == "network_bridge")
    );
    assert_eq!(suggestion.as_deref(), Some("storage"));
    let line = EXAMPLE
        .lines()
        .position(|l| l == "  storage: local-lvm")
        .map(|i| i + 1);
    assert_eq!(position.map(|p| p.line), line);
    let s = err.to_string();
    assert!(
        s.contains("unknown key `defaults.stroage`; allowed: storage, network_bridge, bios"),
        "{s}"
    );
    assert!(s.ends_with("did you mean `storage`?"), "{s}");
}

#[test]
fn unknown_key_without_close_match_says_remove_it() {
    let err = parse_example(&format!("{EXAMPLE}frobnicate: 1\n")).expect_err("unknown");
    let s = err.to_string();
    assert!(
        s.contains("unknown key `frobnicate`; allowed: cluster, defaults"),
        "{s}"
    );
    assert!(s.contains("remove it"), "{s}");
}

#[test]
fn unknown_key_in_a_list_item_has_the_index_in_its_path() {
    let text = edited("    - name: pve02\n", "    - name: pve02\n      hots: x\n");
    let err = parse_example(&text).expect_err("unknown");
    let ConfigError::UnknownKey {
        key, suggestion, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(key, "cluster.nodes[1].hots");
    assert_eq!(suggestion.as_deref(), Some("host"));
}

#[test]
fn wrong_type_names_the_key_and_position() {
    let err = parse_example(&edited("guest_agent: true", "guest_agent: maybe")).expect_err("type");
    let ConfigError::Yaml {
        key,
        position,
        message,
        fix,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(key.as_deref(), Some("defaults.guest_agent"));
    assert!(message.contains("invalid type"), "{message}");
    assert!(fix.contains("`defaults.guest_agent`"), "{fix}");
    assert!(position.is_some());
    let s = err.to_string();
    assert!(s.starts_with("/etc/pm/cluster-config.yaml:"), "{s}");
    assert!(!s.contains(" at line "), "location reported once: {s}");
}

#[test]
fn missing_key_is_named_in_full() {
    let err = parse_example(&edited("  cpu: host\n", "")).expect_err("missing");
    let s = err.to_string();
    assert!(
        s.contains(": defaults.cpu: required key is missing — add `defaults.cpu`"),
        "{s}"
    );
    assert!(s.contains("add `defaults.cpu`"), "{s}");
}

#[test]
fn empty_file_and_wrong_shape_are_explained() {
    let err = parse_example("  \n").expect_err("empty");
    assert!(
        err.to_string().ends_with(
            ": the file is empty — copy config/cluster-config.example.yaml here and edit it"
        ),
        "{err}"
    );
    let err = parse_example(&edited(
        "  name: annarchy.net\n  nodes:",
        "  - x\ncluster2:\n  nodes:",
    ))
    .expect_err("shape");
    let text = err.to_string();
    assert!(
        text.contains("expected a mapping of keys") && !text.contains("Raw"),
        "{text}"
    );
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let err = parse_example("cluster: [unclosed\n").expect_err("syntax");
    let ConfigError::Yaml { position, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(position.is_some(), "{err}");
}

#[test]
fn locate_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = dir.path().join("cli.yaml");
    let envf = dir.path().join("env.yaml");
    let xdg_file = dir.path().join("xdg/proxmox-manager/cluster-config.yaml");
    let home_file = dir
        .path()
        .join("home/.config/proxmox-manager/cluster-config.yaml");
    for f in [&cli, &envf, &xdg_file, &home_file] {
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, "x").expect("write");
    }
    let s = |p: &Path| p.display().to_string();
    let (envs, xdg, home) = (
        s(&envf),
        s(&dir.path().join("xdg")),
        s(&dir.path().join("home")),
    );
    let all = env_of(&[
        (CONFIG_ENV, &envs),
        ("XDG_CONFIG_HOME", &xdg),
        ("HOME", &home),
    ]);
    assert_eq!(locate_with(Some(&cli), &all).expect("cli"), cli);
    assert_eq!(locate_with(None, &all).expect("env"), envf);
    let no_env = env_of(&[("XDG_CONFIG_HOME", &xdg), ("HOME", &home)]);
    assert_eq!(locate_with(None, &no_env).expect("xdg"), xdg_file);
    let home_only = env_of(&[("HOME", &home)]);
    assert_eq!(locate_with(None, &home_only).expect("home"), home_file);

    let missing = dir.path().join("nope.yaml");
    let err = locate_with(Some(&missing), &all).expect_err("cli missing");
    assert!(matches!(err, ConfigError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("--config"), "{err}");
    let bad_env = env_of(&[(CONFIG_ENV, "/nonexistent/c.yaml"), ("HOME", &home)]);
    let err = locate_with(None, &bad_env).expect_err("env missing");
    assert!(err.to_string().contains("$PROXMOX_MANAGER_CONFIG"), "{err}");

    let empty_home = s(&dir.path().join("empty"));
    let err = locate_with(None, &env_of(&[("HOME", &empty_home)])).expect_err("not found");
    let text = err.to_string();
    assert!(
        text.contains("--config (unset)") && text.contains("$PROXMOX_MANAGER_CONFIG (unset)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{empty_home}/.config/proxmox-manager/cluster-config.yaml"
        )),
        "{text}"
    );
    assert!(
        text.contains("config/cluster-config.example.yaml"),
        "{text}"
    );
}

#[test]
fn load_reads_a_file_and_reports_read_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("cluster-config.yaml");
    std::fs::write(&f, EXAMPLE).expect("write");
    let c = load_with(&f, &env_of(&[("HOME", "/h")])).expect("loads");
    assert_eq!(c.path, f);
    let err = load_with(&dir.path().join("nope.yaml"), &env_of(&[])).expect_err("missing");
    assert!(
        matches!(err, ConfigError::Read { .. }) && err.to_string().contains("cannot read"),
        "{err}"
    );
}

#[test]
fn json_schema_describes_the_seed_keys_and_denies_unknown() {
    let schema = json_schema();
    let text = schema.to_string();
    let props = &schema["properties"];
    for key in [
        "cluster",
        "defaults",
        "vmid_ranges",
        "credentials",
        "tags",
        "cloudinit",
        "api",
        "audit_log",
    ] {
        assert!(props.get(key).is_some(), "schema lacks {key}");
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    assert!(
        text.contains("Storage for new disks"),
        "field docs become descriptions"
    );
    assert!(text.contains("\"pass_path\"") && text.contains("\"fingerprint\""));
}

#[test]
fn sim_config_points_at_loopback_with_a_pinned_fingerprint() {
    let c = sim_config(18006, [7; 32]);
    assert_eq!(c.cluster.nodes.len(), 3);
    assert!(c.cluster.nodes.iter().all(|n| n.host == "127.0.0.1"));
    assert_eq!(c.cluster.nodes[2].name, "pve03");
    assert_eq!(c.api.port, 18006);
    assert_eq!(c.api.tls, TlsSetting::Fingerprint([7; 32]));
    assert_eq!(c.api_endpoints()[0], "https://127.0.0.1:18006");
    let seed = parse_example(EXAMPLE).expect("valid");
    assert_eq!(c.defaults, seed.defaults);
    assert_eq!(c.vmid_ranges, seed.vmid_ranges);
    assert_eq!(c.tags, seed.tags);
}

#[test]
fn redacted_json_shows_paths_only() {
    let text = edited(
        "  ssh_user: root\n",
        "  ssh_user: root\n  token_file: /run/secrets/token\n",
    );
    let c = parse_example(&text).expect("valid");
    let j = redacted_json(&c);
    assert_eq!(j["credentials"]["pass_path"], "annarchy.net/pve/api-token");
    assert_eq!(j["credentials"]["token_file"], "/run/secrets/token");
    assert_eq!(j["vmid_ranges"]["vms"], "1000-9999");
    assert_eq!(j["defaults"]["bios"], "ovmf");
    assert_eq!(j["api"]["tls"]["mode"], "system");
    let sim = redacted_json(&sim_config(1, [0xab; 32]));
    assert_eq!(sim["api"]["tls"]["fingerprint"], ["AB"; 32].join(":"));
}

#[test]
fn pass_path_env_overrides_the_file_and_is_validated_under_its_own_name() {
    let parse = |value: &str| {
        parse_with(
            EXAMPLE,
            super::tests::origin(),
            &env_of(&[("HOME", "/home/ada"), (PASS_PATH_ENV, value)]),
        )
    };
    let cfg = parse("homelab/pve/claude-token").expect("override");
    assert_eq!(
        cfg.credentials.pass_path.as_deref(),
        Some("homelab/pve/claude-token")
    );
    // Empty (an unset plugin setting) leaves the file's entry in place.
    let cfg = parse("  ").expect("empty");
    assert_eq!(
        cfg.credentials.pass_path.as_deref(),
        Some("annarchy.net/pve/api-token")
    );
    let err = parse("-rf").expect_err("option-like").to_string();
    assert!(
        err.contains("$PROXMOX_MANAGER_PASS_PATH") && err.contains("starts with '-'"),
        "{err}"
    );
}
