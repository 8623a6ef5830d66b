//! The simulator's image surface over real HTTPS with raw reqwest: `download-url` fetching a
//! real qcow2 from a loopback HTTP server (permissions, checksums, non-loopback URLs, early
//! errors), `POST /nodes/{node}/qemu` with `import-from`, EFI and cloud-init drives followed by
//! template conversion. Uploads and volume info/delete are in `sim_volumes.rs`. Tasks are
//! polled with deadlines.

use crate::support;

use serde_json::Value;
use support::{AUDITOR, Api, CLAUDE, ROOT, message, qcow2_image, serve_files, sha256_hex};

const MIB: u64 = 1024 * 1024;
const DL: &str = "/nodes/pve01/storage/local/download-url";

async fn content(api: &Api, node: &str, storage: &str) -> Vec<Value> {
    let (s, b) = api
        .get(&format!("/nodes/{node}/storage/{storage}/content"))
        .await;
    assert_eq!(s, 200, "{b}");
    b["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn download_create_with_import_and_template() {
    let api = Api::new(0.001).await;
    let img = qcow2_image("64M");
    let sum = sha256_hex(&img);
    let base = serve_files(vec![("noble.qcow2".into(), img.clone())]).await;
    let url = format!("{base}/noble.qcow2");
    let params = [
        ("url", url.as_str()),
        ("content", "import"),
        ("filename", "noble.qcow2"),
        ("checksum", sum.as_str()),
        ("checksum-algorithm", "sha256"),
    ];
    let upid = api.upid(ROOT, "POST", DL, &params).await;
    let task = api.task_status(&upid).await;
    assert_eq!(
        (&task["type"], &task["id"]),
        (&Value::from("download"), &Value::from("noble.qcow2"))
    );
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert!(
        log.iter()
            .any(|l| l == "calculating checksum...OK, checksum verified"),
        "{log:?}"
    );
    assert!(
        api.h
            .files("pve01", "local")
            .contains(&"local:import/noble.qcow2".to_string())
    );
    // listed with its file size; volume info reports the virtual size
    let items = content(&api, "pve01", "local").await;
    let row = items
        .iter()
        .find(|i| i["volid"] == "local:import/noble.qcow2")
        .expect("listed");
    assert_eq!(
        (&row["content"], &row["format"]),
        (&"import".into(), &"qcow2".into())
    );
    assert_eq!(row["size"].as_u64(), Some(img.len() as u64));
    let (s, b) = api
        .get("/nodes/pve01/storage/local/content/local:import%2Fnoble.qcow2")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["size"].as_u64(), Some(64 * MIB));
    assert_eq!(b["data"]["path"], "/var/lib/vz/import/noble.qcow2");
    assert_eq!(b["data"]["format"], "qcow2");
    // a second download of the same name fails in its task
    let st = api.run(ROOT, "POST", DL, &params[..3]).await;
    assert_eq!(
        st,
        "refusing to override existing file '/var/lib/vz/import/noble.qcow2'"
    );

    // create from the image, as the least-privilege token (it may import what exists)
    api.h.slow_node("pve01", 2000.0);
    let create = [
        ("vmid", "4000"),
        ("name", "noble-tmpl"),
        (
            "scsi0",
            "local-lvm:0,import-from=local:import/noble.qcow2,discard=on",
        ),
        ("efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=1"),
        ("ide2", "local-lvm:cloudinit"),
        ("serial0", "socket"),
        ("vga", "serial0"),
        ("agent", "enabled=1"),
        ("ostype", "l26"),
        ("bios", "ovmf"),
        ("scsihw", "virtio-scsi-single"),
        ("net0", "virtio,bridge=vmbr0"),
        ("memory", "2048"),
        ("cores", "2"),
    ];
    let upid = api.upid(CLAUDE, "POST", "/nodes/pve01/qemu", &create).await;
    let task = api.task_status(&upid).await;
    assert_eq!(
        (&task["type"], &task["id"]),
        (&Value::from("qmcreate"), &Value::from("4000"))
    );
    assert_eq!(api.config("pve01", 4000).await["lock"], "create");
    let (s, b) = api.call(CLAUDE, "POST", "/nodes/pve01/qemu", &create).await;
    assert_eq!(s, 500);
    assert_eq!(
        message(&b),
        "unable to create VM 4000 - VM 4000 already exists on node 'pve01'"
    );
    api.h.slow_node("pve01", 1.0);
    assert_eq!(api.wait(&upid).await, "OK");
    let c = api.config("pve01", 4000).await;
    assert!(c.get("lock").is_none(), "{c}");
    assert_eq!(c["scsi0"], "local-lvm:vm-4000-disk-0,discard=on,size=64M");
    assert_eq!(
        c["efidisk0"],
        "local-lvm:vm-4000-disk-1,efitype=4m,pre-enrolled-keys=1,size=528K"
    );
    assert_eq!(c["ide2"], "local-lvm:vm-4000-cloudinit,media=cdrom");
    assert_eq!(c["boot"], "order=scsi0;net0");
    assert_eq!(
        (&c["serial0"], &c["vga"]),
        (&"socket".into(), &"serial0".into())
    );
    assert!(
        c["net0"]
            .as_str()
            .is_some_and(|n| n.starts_with("virtio=BC:24:11:"))
    );
    assert!(
        c["smbios1"]
            .as_str()
            .is_some_and(|s| s.starts_with("uuid="))
    );
    assert!(
        api.task_log(&upid)
            .await
            .iter()
            .any(|l| l == "create full clone of drive scsi0 (local:import/noble.qcow2)")
    );

    // grow and convert to a template
    assert_eq!(
        api.run(
            CLAUDE,
            "PUT",
            "/nodes/pve01/qemu/4000/resize",
            &[("disk", "scsi0"), ("size", "+1G")]
        )
        .await,
        "OK"
    );
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/qemu/4000/template", &[])
            .await,
        "OK"
    );
    let c = api.config("pve01", 4000).await;
    assert_eq!(c["template"], 1);
    assert_eq!(
        c["scsi0"],
        "local-lvm:base-4000-disk-0,discard=on,size=1088M"
    );
    // and the template clones
    assert_eq!(
        api.run(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/4000/clone",
            &[("newid", "4001"), ("name", "from-image")]
        )
        .await,
        "OK"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn download_url_permissions_and_failures() {
    let api = Api::new(0.001).await;
    let img = qcow2_image("16M");
    let base = serve_files(vec![
        ("img.qcow2".into(), img.clone()),
        ("junk.qcow2".into(), b"definitely not qcow2".to_vec()),
    ])
    .await;
    let url = format!("{base}/img.qcow2");
    let p = |filename: &'static str| {
        vec![
            ("url", url.clone()),
            ("content", "import".to_string()),
            ("filename", filename.to_string()),
        ]
    };
    let call = |who: &'static str, params: Vec<(&'static str, String)>| {
        let api = &api;
        async move {
            let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            api.call(who, "POST", DL, &refs).await
        }
    };
    // the seed's role lacks Datastore.AllocateTemplate (and Sys.AccessNetwork)
    let (s, b) = call(CLAUDE, p("img.qcow2")).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(
        message(&b),
        "Permission check failed (/storage/local, Datastore.AllocateTemplate)"
    );
    let (s, _) = call(AUDITOR, p("img.qcow2")).await;
    assert_eq!(s, 403);

    // checksum mismatch: the task fails and no file is left
    let mut bad = p("img.qcow2");
    bad.push(("checksum", "00".repeat(32)));
    bad.push(("checksum-algorithm", "sha256".into()));
    let (s, b) = call(ROOT, bad).await;
    assert_eq!(s, 200, "{b}");
    let upid = b["data"].as_str().expect("upid").to_string();
    let got = sha256_hex(&img);
    assert_eq!(
        api.wait(&upid).await,
        format!(
            "checksum mismatch: got '{got}' != expect '{}'",
            "00".repeat(32)
        )
    );
    assert!(
        !api.h
            .files("pve01", "local")
            .iter()
            .any(|f| f.ends_with("img.qcow2"))
    );

    // never the network: other hosts fail like an unresolvable name
    let mut far = p("far.qcow2");
    far[0].1 = "http://images.example.invalid/noble.qcow2".into();
    let (_, b) = call(ROOT, far).await;
    let upid = b["data"].as_str().expect("upid").to_string();
    let exit = api.wait(&upid).await;
    assert!(exit.starts_with("download failed: command 'wget"), "{exit}");
    assert!(
        api.task_log(&upid)
            .await
            .iter()
            .any(|l| l == "wget: unable to resolve host address 'images.example.invalid'")
    );
    // a 404 and an invalid image fail too
    let mut missing = p("missing.qcow2");
    missing[0].1 = format!("{base}/nope.qcow2");
    let (_, b) = call(ROOT, missing).await;
    let exit = api.wait(b["data"].as_str().expect("upid")).await;
    assert!(exit.ends_with("exit code 8"), "{exit}");
    let mut junk = p("junk.qcow2");
    junk[0].1 = format!("{base}/junk.qcow2");
    let (_, b) = call(ROOT, junk).await;
    let exit = api.wait(b["data"].as_str().expect("upid")).await;
    assert!(exit.contains("not in qcow2 format"), "{exit}");
    assert!(
        !api.h
            .files("pve01", "local")
            .iter()
            .any(|f| f.contains("junk"))
    );

    // early errors
    let (s, b) = call(ROOT, p("noble.img")).await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["filename"],
        "invalid filename or wrong extension"
    );
    let lvm: Vec<(&str, &str)> = vec![
        ("url", &url),
        ("content", "import"),
        ("filename", "x.qcow2"),
    ];
    let (s, b) = api
        .call(
            ROOT,
            "POST",
            "/nodes/pve01/storage/local-lvm/download-url",
            &lvm,
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        message(&b),
        "can't upload to storage type 'lvmthin', not a file based storage!"
    );
    let mut tmpl = p("d.tar.zst");
    tmpl[1].1 = "vztmpl".into();
    let refs: Vec<(&str, &str)> = tmpl.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, b) = api
        .call(
            ROOT,
            "POST",
            "/nodes/pve01/storage/nfs-shared/download-url",
            &refs,
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        message(&b),
        "storage 'nfs-shared' is not configured for content-type 'vztmpl'"
    );
    let mut half = p("img.qcow2");
    half.push(("checksum", "ab".into()));
    let (s, b) = call(ROOT, half).await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["checksum-algorithm"],
        "missing property - 'checksum' requires this property"
    );
    let mut md5 = p("img.qcow2");
    md5.push(("checksum", "ab".into()));
    md5.push(("checksum-algorithm", "md5".into()));
    let (s, _) = call(ROOT, md5).await;
    assert_eq!(s, 501);
    let mut extra = p("img.qcow2");
    extra.push(("bogus", "1".into()));
    let (s, b) = call(ROOT, extra).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["errors"]["bogus"].is_string());

    // a good download after all that, with sha512, lands on pve01 only
    let mut good = p("img.qcow2");
    use sha2::Digest;
    let sha512: String = sha2::Sha512::digest(&img)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    good.push(("checksum", sha512.to_uppercase()));
    good.push(("checksum-algorithm", "sha512".into()));
    let (_, b) = call(ROOT, good).await;
    assert_eq!(api.wait(b["data"].as_str().expect("upid")).await, "OK");
    assert!(
        api.h
            .files("pve01", "local")
            .contains(&"local:import/img.qcow2".to_string())
    );
    assert!(
        !api.h
            .files("pve02", "local")
            .iter()
            .any(|f| f.ends_with("img.qcow2"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_early_errors_and_failed_task() {
    let api = Api::new(0.001).await;
    let create = |vmid: &'static str, scsi0: &'static str| vec![("vmid", vmid), ("scsi0", scsi0)];
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &create("4100", "local-lvm:0,import-from=local:import/missing.qcow2"),
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        message(&b),
        "volume 'local:import/missing.qcow2' does not exist"
    );
    assert!(api.resource(4100).await.is_none());
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &create(
                "4100",
                "local-lvm:8,import-from=local:import/noble-server-cloudimg-amd64.qcow2",
            ),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["scsi0"],
        "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &create(
                "4100",
                "local-lvm:0,import-from=local:iso/debian-12.12.0-amd64-netinst.iso",
            ),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        b["errors"]["scsi0"]
            .as_str()
            .is_some_and(|e| e.ends_with("has wrong type 'iso' - needs to be 'images' or 'import'"))
    );
    let abs = create(
        "4100",
        "local-lvm:0,import-from=/var/lib/vz/import/noble-server-cloudimg-amd64.qcow2",
    );
    let (s, b) = api.call(CLAUDE, "POST", "/nodes/pve01/qemu", &abs).await;
    assert_eq!(s, 403);
    assert_eq!(
        message(&b),
        "Only root can pass arbitrary filesystem paths."
    );
    let (s, _) = api.call(ROOT, "POST", "/nodes/pve01/qemu", &abs).await;
    // root@pam!admin is a token, not root@pam itself
    assert_eq!(s, 403);
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[("vmid", "4100"), ("archive", "local:backup/x.vma.zst")],
        )
        .await;
    // a restore (`api::backup::restore`): the archive must exist on the node
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "can't find file 'local:backup/x.vma.zst'"),
        "{b}"
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[("vmid", "4100"), ("serial0", "/dev/ttyS0")],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        message(&b),
        "only root can set 'serial0' config for real devices"
    );
    let (s, b) = api
        .call(AUDITOR, "POST", "/nodes/pve01/qemu", &[("vmid", "4100")])
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        message(&b),
        "Permission check failed (/vms/4100, VM.Allocate)"
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[("vmid", "4100"), ("scsi0", "local:4")],
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(message(&b), "storage 'local' does not support vm images");

    // the seeded cloud image (3.5 GiB virtual); a failing task removes the new guest
    api.h.fail_next_task(
        "pve01",
        "qmcreate",
        "unable to create VM 4100 - disk import failed",
    );
    let seeded = create(
        "4100",
        "local-lvm:0,import-from=local:import/noble-server-cloudimg-amd64.qcow2",
    );
    let st = api.run(CLAUDE, "POST", "/nodes/pve01/qemu", &seeded).await;
    assert_eq!(st, "unable to create VM 4100 - disk import failed");
    assert!(api.resource(4100).await.is_none());
    let mut start = seeded.clone();
    start.push(("start", "1"));
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/qemu", &start).await,
        "OK"
    );
    let c = api.config("pve01", 4100).await;
    assert_eq!(c["scsi0"], "local-lvm:vm-4100-disk-0,size=3584M");
    assert_eq!(api.status("pve01", 4100).await["status"], "running");
    // an import on the shared NFS is visible from every node
    let nfs = create(
        "4101",
        "nfs-shared:0,import-from=nfs-shared:import/debian-12-genericcloud-amd64.qcow2",
    );
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve03/qemu", &nfs).await,
        "OK"
    );
    assert_eq!(
        api.config("pve03", 4101).await["scsi0"],
        "nfs-shared:4101/vm-4101-disk-0.qcow2,size=3G"
    );
    // an installer ISO as cdrom next to a new empty disk: default boot order disk, cdrom, NIC
    let iso = [
        ("vmid", "4102"),
        ("virtio0", "local-lvm:8"),
        (
            "ide2",
            "local:iso/debian-12.12.0-amd64-netinst.iso,media=cdrom",
        ),
        ("net0", "virtio,bridge=vmbr0"),
    ];
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/qemu", &iso).await,
        "OK"
    );
    let c = api.config("pve01", 4102).await;
    assert_eq!(c["virtio0"], "local-lvm:vm-4102-disk-0,size=8G");
    assert_eq!(c["boot"], "order=virtio0;ide2;net0");
}
