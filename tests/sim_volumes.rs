//! The simulator's storage-volume surface over real HTTPS: multipart uploads (`upload`,
//! task `imgcopy`) whose images `import-from` can use at once, and volume info/delete
//! (`GET`/`DELETE .../content/{volume}`). Tasks are polled with deadlines.

use crate::support;

use serde_json::Value;
use support::{AUDITOR, Api, CLAUDE, ROOT, message, qcow2_image, sha256_hex};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn multipart_upload() {
    let api = Api::new(0.001).await;
    let up = "/nodes/pve01/storage/local/upload";
    let img = qcow2_image("32M");
    let sum = sha256_hex(&img);
    // the least-privilege role lacks Datastore.AllocateTemplate
    let (s, b) = api
        .upload(CLAUDE, up, &[("content", "import")], "cloud.qcow2", &img)
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(
        message(&b),
        "Permission check failed (/storage/local, Datastore.AllocateTemplate)"
    );
    let (s, b) = api
        .upload(
            ROOT,
            up,
            &[
                ("content", "import"),
                ("checksum", &sum),
                ("checksum-algorithm", "sha256"),
            ],
            "cloud.qcow2",
            &img,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let upid = b["data"].as_str().expect("upid").to_string();
    let task = api.task_status(&upid).await;
    assert_eq!(
        (&task["type"], &task["id"]),
        (&"imgcopy".into(), &"".into())
    );
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert!(
        log.iter()
            .any(|l| l.starts_with("starting file import from: /var/tmp/pveupload-"))
    );
    assert!(
        log.iter()
            .any(|l| l == "target file: /var/lib/vz/import/cloud.qcow2")
    );
    let (s, b) = api
        .get("/nodes/pve01/storage/local/content/local:import/cloud.qcow2")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["size"].as_u64(), Some(32 * MIB));
    // the uploaded image is importable at once
    let st = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[
                ("vmid", "4200"),
                (
                    "virtio0",
                    "local-lvm:0,import-from=local:import/cloud.qcow2",
                ),
            ],
        )
        .await;
    assert_eq!(st, "OK");
    assert_eq!(
        api.config("pve01", 4200).await["virtio0"],
        "local-lvm:vm-4200-disk-0,size=32M"
    );
    // an ISO with a wrong checksum fails in the task; wrong extensions and contents early
    let (_, b) = api
        .upload(
            ROOT,
            up,
            &[
                ("content", "iso"),
                ("checksum", "abc"),
                ("checksum-algorithm", "sha512"),
            ],
            "tools.iso",
            b"ISO bytes",
        )
        .await;
    let exit = api.wait(b["data"].as_str().expect("upid")).await;
    assert!(exit.starts_with("checksum mismatch: got '") && exit.ends_with("' != expect 'abc'"));
    assert!(
        !api.h
            .files("pve01", "local")
            .contains(&"local:iso/tools.iso".to_string())
    );
    let (s, b) = api
        .upload(ROOT, up, &[("content", "iso")], "tools.qcow2", b"x")
        .await;
    assert_eq!(
        (s, &b["errors"]["filename"]),
        (400, &"wrong file extension".into())
    );
    let (s, b) = api
        .upload(
            ROOT,
            "/nodes/pve01/storage/nfs-shared/upload",
            &[("content", "vztmpl")],
            "d.tar.zst",
            b"x",
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        message(&b),
        "storage 'nfs-shared' does not support 'vztmpl' content"
    );
    // without a file part there is no temporary file
    let (s, b) = api
        .call(
            ROOT,
            "POST",
            up,
            &[("content", "iso"), ("filename", "x.iso")],
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(message(&b), "missing temporary file name");
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_info_and_delete() {
    let api = Api::new(0.001).await;
    let iso = "local:iso/debian-12.12.0-amd64-netinst.iso";
    let (s, b) = api
        .get(&format!("/nodes/pve01/storage/local/content/{iso}"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["path"],
        "/var/lib/vz/template/iso/debian-12.12.0-amd64-netinst.iso"
    );
    assert_eq!(b["data"]["format"], "iso");
    // a guest disk, by volume name only
    let (s, b) = api
        .get("/nodes/pve02/storage/local-lvm/content/vm-1007-disk-0")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["path"], "/dev/pve/vm-1007-disk-0");
    let (s, b) = api
        .get("/nodes/pve01/storage/local-lvm/content/local:iso/x.iso")
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["volume"],
        "storage ID mismatch (local != local-lvm)\n"
    );
    let (s, _) = api
        .get("/nodes/pve02/storage/local/content/local:iso/debian-12.12.0-amd64-netinst.iso")
        .await;
    assert_eq!(s, 500, "local files live on their node");
    let (s, _) = api
        .call(
            AUDITOR,
            "DELETE",
            &format!("/nodes/pve01/storage/local/content/{iso}"),
            &[],
        )
        .await;
    assert_eq!(s, 403);

    // delete in a task
    api.h
        .add_file("pve01", "local", "import/extra.raw", 4096, Some(4096))
        .expect("add file");
    assert!(
        api.h
            .files("pve01", "local")
            .contains(&"local:import/extra.raw".to_string())
    );
    let st = api
        .run(
            CLAUDE,
            "DELETE",
            &format!("/nodes/pve01/storage/local/content/{iso}"),
            &[],
        )
        .await;
    assert_eq!(st, "OK");
    assert!(!api.h.files("pve01", "local").contains(&iso.to_string()));
    // with `delay` the call waits and returns null
    let (s, b) = api
        .call(
            CLAUDE,
            "DELETE",
            "/nodes/pve01/storage/local/content/import/extra.raw",
            &[("delay", "5")],
        )
        .await;
    assert_eq!((s, &b["data"]), (200, &Value::Null), "{b}");
    assert!(
        !api.h
            .files("pve01", "local")
            .contains(&"local:import/extra.raw".to_string())
    );
    // a protected backup is kept
    let st = api
        .run(
            CLAUDE,
            "DELETE",
            "/nodes/pve01/storage/local/content/local:backup/vzdump-qemu-1002-2026_11_20-02_10_11.vma.zst",
            &[],
        )
        .await;
    assert_eq!(
        st,
        "cannot remove protected volume 'backup/vzdump-qemu-1002-2026_11_20-02_10_11.vma.zst' on 'local'"
    );
}
