//! `SDN.Use` on bridges as PVE 8/9 check it (`check_bridge_access` -> `check_vnet_access`):
//! creating a VM with a NIC, cloning a VM with NICs and changing or deleting a `netN` need
//! `SDN.Use` on `/sdn/zones/localnetwork/<bridge>`, or on `.../<bridge>/<tag>` for a VLAN tag
//! and each trunk tag; without it, 403 naming the path and the privilege.

use crate::support;

use proxmox_manager::sim::Scenario;
use proxmox_manager::sim::scenario::AclSpec;
use support::{Api, CLAUDE, message};

const NOSDN: &str = "nosdn@pve!test";
const DENIED: &str = "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)";

#[tokio::test(flavor = "multi_thread")]
async fn nics_need_sdn_use_on_their_bridge() {
    let api = Api::new(0.001).await;
    let create = [
        ("vmid", "2200"),
        ("net0", "virtio,bridge=vmbr0"),
        ("memory", "512"),
    ];
    let (s, b) = api.call(NOSDN, "POST", "/nodes/pve02/qemu", &create).await;
    assert_eq!((s, message(&b).as_str()), (403, DENIED));
    let (s, b) = api.call(CLAUDE, "POST", "/nodes/pve02/qemu", &create).await;
    assert_eq!(s, 200, "the manager's role has SDN.Use: {b}");

    // clone checks the source's NICs
    let (s, b) = api
        .call(
            NOSDN,
            "POST",
            "/nodes/pve02/qemu/102/clone",
            &[("newid", "2201")],
        )
        .await;
    assert_eq!((s, message(&b).as_str()), (403, DENIED));
    assert!(api.resource(2201).await.is_none());
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/102/clone",
            &[("newid", "2201")],
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // config writes: other keys pass; setting or deleting a NIC needs the bridge
    let cfg = "/nodes/pve02/qemu/1007/config";
    let (s, b) = api
        .call(NOSDN, "PUT", cfg, &[("name", "no-nic-change")])
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = api
        .call(NOSDN, "PUT", cfg, &[("net1", "virtio,bridge=vmbr0")])
        .await;
    assert_eq!((s, message(&b).as_str()), (403, DENIED));
    let (s, b) = api.call(NOSDN, "PUT", cfg, &[("delete", "net0")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (403, DENIED),
        "the bridge it leaves"
    );
    let (s, b) = api
        .call(CLAUDE, "PUT", cfg, &[("net1", "virtio,bridge=vmbr0")])
        .await;
    assert_eq!(s, 200, "{b}");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vlan_tags_and_trunks_are_checked_per_tag() {
    let mut scenario = Scenario::embedded().expect("scenario");
    scenario
        .roles
        .insert("SdnUser".into(), vec!["SDN.Use".into()]);
    scenario.acl.push(AclSpec {
        path: "/sdn/zones/localnetwork/vmbr0/20".into(),
        ugid: "nosdn@pve".into(),
        role: "SdnUser".into(),
        propagate: true,
    });
    let api = Api::with_scenario(scenario, 0.001).await;
    let create =
        |vmid: &'static str, net: &'static str| [("vmid", vmid), ("net0", net), ("memory", "512")];
    let (s, b) = api
        .call(
            NOSDN,
            "POST",
            "/nodes/pve02/qemu",
            &create("2300", "virtio,bridge=vmbr0,tag=20"),
        )
        .await;
    assert_eq!(s, 200, "SDN.Use on the tag's path is enough: {b}");
    let (s, b) = api
        .call(
            NOSDN,
            "POST",
            "/nodes/pve02/qemu",
            &create("2301", "virtio,bridge=vmbr0,tag=30"),
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            403,
            "Permission check failed (/sdn/zones/localnetwork/vmbr0/30, SDN.Use)"
        )
    );
    let (s, b) = api
        .call(
            NOSDN,
            "POST",
            "/nodes/pve02/qemu",
            &create("2302", "virtio,bridge=vmbr0,trunks=20;30-31"),
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            403,
            "Permission check failed (/sdn/zones/localnetwork/vmbr0/30, SDN.Use)"
        )
    );
    // a tagged NIC does not need the whole bridge; an untagged one does
    let (s, b) = api
        .call(
            NOSDN,
            "POST",
            "/nodes/pve02/qemu",
            &create("2303", "virtio,bridge=vmbr0"),
        )
        .await;
    assert_eq!((s, message(&b).as_str()), (403, DENIED));
    api.h.shutdown().await;
}
