//! Template builds through MCP over the SSH path: the least-privilege token (no download
//! privileges) makes the server download with wget, check the digest, grow the image with
//! qemu-img, import it with `qm disk import` and write the vendor snippet over SFTP, all on the
//! simulator's SSH front — reached with a key file and known_hosts from the config, as a user
//! would set it up. Also: ISOs uploaded from a local file, node paths, `replace`.

use crate::common;

use serde_json::{Value, json};

use common::images::{qcow2, serve, sha256};
use common::mcp::{Client, call, call_with, connect};
use proxmox_manager::sim::SimHandle;

struct Setup {
    sim: SimHandle,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

async fn setup() -> Setup {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_ssh_config(dir.path(), &sim);
    Setup { sim, dir, config }
}

impl Setup {
    async fn manager(&self) -> Client {
        self.manager_recorded().await.0
    }
    async fn manager_recorded(&self) -> (Client, common::mcp::Recorder) {
        connect(
            &self.config,
            &common::token_env(&self.sim),
            self.dir.path(),
            &[],
        )
        .await
    }
    async fn admin(&self) -> Client {
        let admin = self.sim.token("root@pam!admin").expect("admin token");
        connect(
            &self.config,
            &format!("{}={}", admin.id, admin.secret),
            self.dir.path(),
            &[],
        )
        .await
        .0
    }
    /// Programs the simulator's SSH front ran, in order (`qm disk import` as `qm disk`).
    fn programs(&self) -> Vec<String> {
        self.sim
            .ssh_commands()
            .iter()
            .map(|c| c.argv.iter().take(2).cloned().collect::<Vec<_>>().join(" "))
            .collect()
    }
    fn staged_files(&self, node: &str) -> Vec<String> {
        self.sim
            .node_paths(node)
            .into_iter()
            .filter(|p| p.starts_with("/var/tmp/proxmox-manager-"))
            .collect()
    }
    fn assert_no_shell_syntax(&self) {
        let bad: Vec<String> = self
            .sim
            .ssh_commands()
            .iter()
            .filter(|c| c.shell_syntax)
            .map(|c| c.line.clone())
            .collect();
        assert!(bad.is_empty(), "unquoted shell syntax sent: {bad:?}");
    }
}

fn template_named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|t| t["name"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_image_over_ssh_with_the_least_privilege_token() {
    let image = qcow2();
    let digest = sha256(&image);
    let url = serve("noble-server-cloudimg-amd64.img", image).await;
    let s = setup().await;
    let (c, recorder) = s.manager_recorded().await;

    let (err, r, text) = call_with(&c, "template_from_cloud_image", json!({
        "image_url": url, "checksum": digest, "name": "noble-ssh-tmpl", "node": "pve02", "disk_size": "2G"
    }), true)
    .await;
    assert!(!err, "{text}");
    let progress = recorder.progress.lock().expect("lock").clone();
    assert!(
        progress
            .iter()
            .any(|p| p.contains("pve02: qm disk: transferred")),
        "the import's output is streamed as progress: {progress:?}"
    );
    assert_eq!(r["path"]["path"], "ssh", "{r}");
    assert!(
        r["path"]["reason"]
            .as_str()
            .is_some_and(|x| x.contains("Datastore.AllocateTemplate")),
        "{r}"
    );
    assert_eq!(r["disk_size"], "2G");
    let vmid = r["vmid"].as_u64().expect("vmid");
    assert_eq!(
        r["config"]["cicustom"], "vendor=local:snippets/noble-ssh-tmpl-vendor.yaml",
        "{r}"
    );
    let programs = s.programs();
    for p in [
        "wget -nv",
        "sha256sum --",
        "qemu-img info",
        "qemu-img resize",
        "qm disk",
        "pvesm path",
        "rm -f",
    ] {
        assert!(programs.iter().any(|x| x == p), "{p} not run: {programs:?}");
    }
    s.assert_no_shell_syntax();

    let snippet = s
        .sim
        .node_file("pve02", "/var/lib/vz/snippets/noble-ssh-tmpl-vendor.yaml")
        .expect("vendor snippet written");
    let text = String::from_utf8(snippet.content.expect("small file kept")).expect("utf-8");
    assert!(text.starts_with("#cloud-config") && text.contains("qemu-guest-agent"));
    assert!(
        s.staged_files("pve02").is_empty(),
        "the download was removed"
    );

    let (_, v, _) = call(&c, "vm_get", json!({"vmid": vmid})).await;
    assert_eq!(v["template"], true, "{v}");
    assert_eq!(v["node"], "pve02");
    let disks = v["disks"].as_array().expect("disks");
    let boot = disks
        .iter()
        .find(|d| d["key"] == "scsi0")
        .expect("imported boot disk attached");
    assert_eq!(boot["size"], "2G", "{boot}");
    assert!(disks.iter().any(|d| d["media"] == "cloudinit"), "{v}");
    assert!(
        !disks
            .iter()
            .any(|d| d["key"].as_str().is_some_and(|k| k.starts_with("unused"))),
        "no unused disk left: {v}"
    );
    assert_eq!(v["cloudinit"]["ciuser"], "ada");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checksum_mismatch_over_ssh_is_refused_and_leaves_nothing() {
    let url = serve("noble.qcow2", qcow2()).await;
    let s = setup().await;
    let c = s.manager().await;
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (err, _, text) = call(
        &c,
        "template_from_cloud_image",
        json!({"image_url": url, "checksum": wrong, "name": "bad-sum", "node": "pve01"}),
    )
    .await;
    assert!(err, "{text}");
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(text.contains("was removed"), "says what it cleaned: {text}");
    assert!(s.staged_files("pve01").is_empty());
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    assert!(template_named(&t, "bad-sum").is_none());
    let (_, l, _) = call(&c, "vm_list", json!({"name": "bad-sum"})).await;
    assert_eq!(l["vms"].as_array().map(Vec::len), Some(0), "{l}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_download_over_ssh_names_wget_and_leaves_nothing() {
    let url = serve("noble.qcow2", qcow2()).await;
    let missing = url.replace("noble.qcow2", "missing.qcow2");
    let s = setup().await;
    let c = s.manager().await;
    let (err, _, text) = call(
        &c,
        "template_from_cloud_image",
        json!({"image_url": missing, "name": "gone-tmpl", "node": "pve03"}),
    )
    .await;
    assert!(err, "{text}");
    assert!(text.contains("`wget -nv` on pve03"), "{text}");
    assert!(
        text.contains("exit 8") && text.contains("ERROR 404"),
        "{text}"
    );
    assert!(
        s.staged_files("pve03").is_empty(),
        "wget's empty file removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_urls_reach_the_node_as_one_quoted_word() {
    let url = serve("noble.qcow2", qcow2()).await;
    let hostile = format!("{url}?a=$(touch${{IFS}}/tmp/pwned);b=`id`&c='q'\"d\"|e");
    let s = setup().await;
    let c = s.manager().await;
    let (err, _, text) = call(
        &c,
        "template_import_disk",
        json!({"image_url": hostile, "name": "hostile-tmpl", "node": "pve01"}),
    )
    .await;
    assert!(!err, "{text}");
    s.assert_no_shell_syntax();
    let wget = s
        .sim
        .ssh_commands()
        .into_iter()
        .find(|c| c.argv.first().map(String::as_str) == Some("wget"))
        .expect("wget ran");
    assert_eq!(wget.argv.last(), Some(&hostile), "{:?}", wget.argv);

    let before = s.sim.ssh_commands().len();
    let (err, _, text) = call(
        &c,
        "template_import_disk",
        json!({"image_url": url, "name": "x;rm -rf /", "node": "pve01"}),
    )
    .await;
    // Refused at the argument's schema (a DNS name), before anything reaches the node.
    assert!(err && text.contains("argument `name`"), "{text}");
    let (err, _, text) = call(
        &c,
        "template_import_disk",
        json!({"image_path": "/var/tmp/$(reboot).qcow2\n", "name": "p-tmpl", "node": "pve01"}),
    )
    .await;
    assert!(err && text.contains("image_path"), "{text}");
    assert_eq!(s.sim.ssh_commands().len(), before, "refused before any ssh");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_image_already_on_the_node_is_imported_in_place() {
    let url = serve("appliance.qcow2", qcow2()).await;
    let s = setup().await;
    // Put the image on pve02 the way an operator would: with wget on the node.
    let pool = common_ssh_pool(&s);
    let target = proxmox_manager::ssh::SshTarget::new(
        "127.0.0.1",
        s.sim.ssh_addr("pve02").expect("ssh").port(),
    );
    let out = pool
        .exec(
            &target,
            &proxmox_manager::ssh::Command::new("wget")
                .args(["-q", "-O", "/root/appliance.qcow2"])
                .arg(&url),
            proxmox_manager::ssh::ExecOptions::with_timeout(std::time::Duration::from_secs(30)),
        )
        .await
        .expect("ssh");
    assert!(out.success(), "{out:?}");

    let c = s.manager().await;
    let (err, r, text) = call(&c, "template_import_disk", json!({
        "image_path": "/root/appliance.qcow2", "node": "pve02", "name": "appliance-tmpl", "disk_size": "1G"
    }))
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["path"]["path"], "ssh");
    assert_eq!(r["disk_size"], "1G", "grown after the import: {r}");
    assert!(
        s.sim.node_file("pve02", "/root/appliance.qcow2").is_some(),
        "the operator's file is left in place"
    );
    let (_, v, _) = call(&c, "vm_get", json!({"vmid": r["vmid"]})).await;
    assert_eq!(v["template"], true);

    let (err, _, text) = call(
        &c,
        "template_import_disk",
        json!({"image_path": "/root/appliance.qcow2", "name": "no-node-tmpl"}),
    )
    .await;
    assert!(err && text.contains("node"), "{text}");
}

fn common_ssh_pool(s: &Setup) -> proxmox_manager::ssh::SshPool {
    use proxmox_manager::ssh::{HostKeyPolicy, PoolOptions, SshAuth, SshPool};
    let auth = SshAuth::KeyFile {
        path: s.dir.path().join("id_ed25519"),
        passphrase: None,
    };
    let policy = HostKeyPolicy::strict(s.dir.path().join("known_hosts"));
    SshPool::new(PoolOptions::new("root", auth, policy))
}

#[tokio::test(flavor = "multi_thread")]
async fn isos_from_a_local_file_upload_over_the_api_or_sftp_and_urls_over_ssh() {
    let s = setup().await;
    // Local uploads come only from paths.uploads, as regular files with an ISO 9660 signature.
    let uploads = s.dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).expect("uploads dir");
    let mut yaml = std::fs::read_to_string(&s.config).expect("config");
    yaml.push_str(&format!("paths:\n  uploads: [{}]\n", uploads.display()));
    std::fs::write(&s.config, yaml).expect("config");
    let iso = uploads.join("tiny-installer.iso");
    let mut bytes = vec![0u8; 0x8000];
    bytes.extend_from_slice(b"\x01CD001 tiny installer image for the simulator");
    bytes.resize(0x9000, 0);
    std::fs::write(&iso, &bytes).expect("write iso");
    let digest = sha256(&bytes);

    let admin = s.admin().await;
    let (err, r, text) = call(&admin, "template_from_iso", json!({
        "iso": iso.display().to_string(), "checksum": digest, "name": "installer-api", "node": "pve01"
    }))
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["download"]["path"], "api", "{r}");
    assert_eq!(r["iso"], "local:iso/tiny-installer.iso");
    assert!(
        s.sim
            .files("pve01", "local")
            .contains(&"local:iso/tiny-installer.iso".to_string())
    );

    let manager = s.manager().await;
    let (err, r, text) = call(&manager, "template_from_iso", json!({
        "iso": iso.display().to_string(), "checksum": digest, "name": "installer-sftp", "node": "pve02"
    }))
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["download"]["path"], "ssh", "{r}");
    assert!(
        s.sim
            .files("pve02", "local")
            .contains(&"local:iso/tiny-installer.iso".to_string())
    );
    let (_, v, _) = call(&manager, "vm_get", json!({"vmid": r["vmid"]})).await;
    assert!(
        v["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .any(|d| d["volume"] == "local:iso/tiny-installer.iso"),
        "{v}"
    );

    let (err, _, text) = call(
        &manager,
        "template_from_iso",
        json!({
            "iso": iso.display().to_string(), "name": "installer-again", "node": "pve02"
        }),
    )
    .await;
    assert!(
        err && text.contains("already exists"),
        "not overwritten: {text}"
    );

    // A symlink named .iso in the upload directory (to /etc/passwd), and a file outside it.
    std::os::unix::fs::symlink("/etc/passwd", uploads.join("passwd.iso")).expect("symlink");
    for path in [
        uploads.join("passwd.iso").display().to_string(),
        "/etc/passwd.iso".to_string(),
    ] {
        let (err, _, text) = call(
            &manager,
            "template_from_iso",
            json!({"iso": path, "name": "installer-evil", "node": "pve02"}),
        )
        .await;
        assert!(
            err && text.contains("not an allowed upload source"),
            "{text}"
        );
    }

    let url = serve("netinst.iso", bytes.clone()).await;
    let (err, r, text) = call(
        &manager,
        "template_from_iso",
        json!({
            "iso": url, "checksum": digest, "name": "installer-url", "node": "pve03"
        }),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["download"]["path"], "ssh");
    assert_eq!(r["iso"], "local:iso/netinst.iso");
    assert!(
        s.sim
            .files("pve03", "local")
            .contains(&"local:iso/netinst.iso".to_string())
    );
    s.assert_no_shell_syntax();

    // replace: a preview names the template it would delete; linked clones and VMs refuse.
    let volume = json!({"iso": "local:iso/netinst.iso", "node": "pve03", "replace": true});
    let mut preview = volume.clone();
    preview["name"] = json!("talos-1.8-tmpl");
    let (err, p, text) = call(&manager, "template_from_iso", preview).await;
    assert!(!err, "{text}");
    assert_eq!(p["preview"], true);
    assert_eq!(p["replaced"]["vmid"], 101, "{p}");
    assert!(
        p["vmid"].as_u64().is_some_and(|v| (100..=999).contains(&v)),
        "{p}"
    );
    let mut blocked = volume.clone();
    blocked["name"] = json!("ubuntu-noble-tmpl");
    let (err, _, text) = call(&manager, "template_from_iso", blocked).await;
    assert!(
        err && text.contains("linked clones") && text.contains("1011"),
        "{text}"
    );
    let mut vm = volume;
    vm["name"] = json!("installer-url");
    let (err, _, text) = call(&manager, "template_from_iso", vm).await;
    assert!(err && text.contains("not a template"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replace_previews_without_confirm_and_replaces_only_a_free_template() {
    let url = serve("noble.qcow2", qcow2()).await;
    let s = setup().await;
    let c = s.manager().await;
    let args = json!({"image_url": url, "name": "rolling-tmpl", "node": "pve02"});
    let (err, first, text) = call(&c, "template_import_disk", args.clone()).await;
    assert!(!err, "{text}");
    let old = first["vmid"].as_u64().expect("vmid");

    let (err, _, text) = call(&c, "template_import_disk", args.clone()).await;
    assert!(err && text.contains("replace: true"), "{text}");

    let mut preview = args.clone();
    preview["replace"] = json!(true);
    let before = s.sim.ssh_commands().len();
    let (err, p, text) = call(&c, "template_import_disk", preview.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(p["preview"], true, "{p}");
    assert_eq!(p["replaced"]["vmid"], old);
    assert_eq!(s.sim.ssh_commands().len(), before, "a preview runs nothing");
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    assert_eq!(
        template_named(&t, "rolling-tmpl").expect("old kept")["vmid"],
        old
    );

    let mut confirmed = preview.clone();
    confirmed["confirm"] = json!(true);
    let (err, r, text) = call(&c, "template_import_disk", confirmed.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(r["preview"], false);
    assert_eq!(r["replaced"]["executed"], true, "{r}");
    let new = r["vmid"].as_u64().expect("vmid");
    assert_ne!(new, old);
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    let named: Vec<&Value> = t["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .filter(|x| x["name"] == "rolling-tmpl")
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0]["vmid"], new);

    // A linked clone depends on the template now: replacing it is refused before any change.
    let (err, linked, text) = call(
        &c,
        "vm_create",
        json!({"template": new, "name": "linked-01", "full": false}),
    )
    .await;
    assert!(!err, "{text}");
    // template_list finds it from the storage listings it reads once per storage.
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    let listed = t["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|x| x["vmid"] == new)
        .cloned()
        .expect("the template is listed");
    assert_eq!(listed["linked_clones"], json!([linked["vmid"]]), "{listed}");
    let (err, _, text) = call(&c, "template_import_disk", confirmed).await;
    assert!(err && text.contains("linked clones"), "{text}");

    let mut vm = preview.clone();
    vm["name"] = json!("web-01");
    vm["confirm"] = json!(true);
    let (err, _, text) = call(&c, "template_import_disk", vm).await;
    assert!(err && text.contains("not a template"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn iso_upload_fetches_over_ssh_refuses_an_existing_name_and_previews_a_replacement() {
    let s = setup().await;
    let mut bytes = vec![0u8; 0x8000];
    bytes.extend_from_slice(b"\x01CD001 rescue image for the simulator");
    bytes.resize(0x9000, 0);
    let digest = sha256(&bytes);
    let url = serve("rescue.iso", bytes.clone()).await;
    let manager = s.manager().await;
    let args = json!({"source": url, "checksum": digest, "node": "pve03"});
    let (err, r, text) = call(&manager, "iso_upload", args.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(r["volid"], "local:iso/rescue.iso", "{r}");
    assert_eq!(
        r["path"]["path"], "ssh",
        "the manager token downloads over SSH: {r}"
    );
    assert!(
        s.sim
            .files("pve03", "local")
            .contains(&"local:iso/rescue.iso".to_string())
    );

    let (err, _, text) = call(&manager, "iso_upload", args.clone()).await;
    assert!(
        err && text.contains("already exists") && text.contains("replace"),
        "{text}"
    );

    let mut replace = args.clone();
    replace["replace"] = json!(true);
    let (err, r, text) = call(&manager, "iso_upload", replace.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(r["preview"], true, "a replacement is previewed: {r}");

    // Once a VM has it in its CD drive it is never replaced.
    let (err, _, text) = call(
        &manager,
        "template_from_iso",
        json!({
            "iso": "local:iso/rescue.iso", "name": "rescue-vm", "node": "pve03"
        }),
    )
    .await;
    assert!(!err, "{text}");
    replace["confirm"] = json!(true);
    let (err, _, text) = call(&manager, "iso_upload", replace).await;
    assert!(err && text.contains("CD drive"), "{text}");

    // A wrong checksum leaves nothing behind.
    let (err, _, text) = call(
        &manager,
        "iso_upload",
        json!({"source": serve("other.iso", bytes.clone()).await, "checksum": format!("sha256:{}", "0".repeat(64)), "node": "pve03"}),
    )
    .await;
    assert!(err, "{text}");
    assert!(
        !s.sim
            .files("pve03", "local")
            .contains(&"local:iso/other.iso".to_string()),
        "no partial file: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn iso_upload_of_a_local_file_goes_through_the_api_and_a_confirmed_replace_swaps_it() {
    let s = setup().await;
    let uploads = s.dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).expect("uploads dir");
    let mut yaml = std::fs::read_to_string(&s.config).expect("config");
    yaml.push_str(&format!("paths:\n  uploads: [{}]\n", uploads.display()));
    std::fs::write(&s.config, yaml).expect("config");
    let iso = uploads.join("tools.iso");
    let image = |len: usize, label: &[u8]| {
        let mut b = vec![0u8; 0x8000];
        b.extend_from_slice(b"\x01CD001 ");
        b.extend_from_slice(label);
        b.resize(len, 0);
        b
    };
    let first = image(0x9000, b"tools v1");
    std::fs::write(&iso, &first).expect("write iso");
    // The root token may upload (Datastore.AllocateTemplate, Sys.Modify): the API path.
    let admin = s.admin().await;
    let args =
        json!({"source": iso.display().to_string(), "checksum": sha256(&first), "node": "pve01"});
    let (err, r, text) = call(&admin, "iso_upload", args).await;
    assert!(!err, "{text}");
    assert_eq!(r["volid"], "local:iso/tools.iso", "{r}");
    assert_eq!(r["path"]["path"], "api", "{r}");
    let uploads_sent = |sim: &SimHandle| {
        sim.requests()
            .iter()
            .filter(|q| q.method == "POST" && q.path == "/nodes/pve01/storage/local/upload")
            .count()
    };
    assert_eq!(uploads_sent(&s.sim), 1);
    assert!(s.sim.ssh_commands().is_empty(), "nothing over SSH");
    let c = common::client_for(&s.sim, common::MANAGER);
    let size = || {
        let c = c.clone();
        async move {
            let v: Value = c
                .get(
                    "/nodes/pve01/storage/local/content",
                    &[("content", "iso".to_string())],
                )
                .await
                .expect("content");
            v.as_array()
                .and_then(|a| a.iter().find(|x| x["volid"] == "local:iso/tools.iso"))
                .and_then(|x| x["size"].as_u64())
        }
    };
    assert_eq!(size().await, Some(first.len() as u64));

    // A new build of the same name: previewed, then replaced with confirm.
    let second = image(0xA000, b"tools v2");
    std::fs::write(&iso, &second).expect("write iso");
    let replace = json!({"source": iso.display().to_string(), "checksum": sha256(&second), "node": "pve01", "replace": true});
    let (err, p, text) = call(&admin, "iso_upload", replace.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(p["preview"], true, "{p}");
    assert_eq!(p["replaced"], "local:iso/tools.iso", "{p}");
    assert_eq!(uploads_sent(&s.sim), 1, "a preview sends nothing");
    assert_eq!(size().await, Some(first.len() as u64));
    let mut confirmed = replace;
    confirmed["confirm"] = json!(true);
    let (err, r, text) = call(&admin, "iso_upload", confirmed).await;
    assert!(!err, "{text}");
    assert_eq!(r["preview"], false, "{r}");
    assert_eq!(r["path"]["path"], "api", "{r}");
    assert_eq!(uploads_sent(&s.sim), 2);
    assert_eq!(
        size().await,
        Some(second.len() as u64),
        "the new image replaced the old one"
    );
}
