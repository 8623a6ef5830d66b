//! The PVE endpoints the tools call, with the privileges PVE checks for each the way our tools
//! call it. Tool specs (`server`) list these; `tests/tool_specs.rs` compares every one with
//! the permissions in PVE's API schema.
//!
//! Paths are the schema's templates. Where the schema says `user: all` and filters or checks
//! in code, the comment says what the code checks (qemu-server `PVE/API2/Qemu.pm`,
//! pve-manager `PVE/API2/Cluster.pm`, pve-storage `PVE/API2/Storage/*.pm`).

use crate::ops::spec::{Endpoint, Need, all, any, optional};

use super::check::GUEST_AGENT;

/// Guests in `/cluster/resources` and `/nodes/{node}/qemu` are filtered by VM.Audit.
pub const SEE_GUESTS: Need = all("/vms/{vmid}", &["VM.Audit"]);
/// Storages in `/cluster/resources` and `/nodes/{node}/storage` are filtered by
/// Datastore.Audit or Datastore.AllocateSpace.
pub const SEE_STORAGE: Need = any(
    "/storage/{storage}",
    &["Datastore.Audit", "Datastore.AllocateSpace"],
);
/// `SDN.Use` on the bridge of every NIC a create, clone or config write names (PVE 8+).
pub const USE_BRIDGE: Need = all("/sdn/zones/localnetwork/{bridge}", &["SDN.Use"]);

/// `GET /cluster/resources` for its guest rows.
pub const RESOURCES_GUESTS: Endpoint = Endpoint::get("/cluster/resources", &[SEE_GUESTS]);
/// `GET /cluster/resources` for guests, nodes and storages.
pub const RESOURCES_ALL: Endpoint = Endpoint::get("/cluster/resources", &[SEE_GUESTS, SEE_STORAGE]);
/// `GET /cluster/status`.
pub const CLUSTER_STATUS: Endpoint = Endpoint::get("/cluster/status", &[all("/", &["Sys.Audit"])]);
/// `GET /nodes/{node}/status`.
pub const NODE_STATUS: Endpoint = Endpoint::get(
    "/nodes/{node}/status",
    &[all("/nodes/{node}", &["Sys.Audit"])],
);
/// `GET /nodes` (user: all): the cluster's real node names, to check a node argument.
pub const NODES: Endpoint = Endpoint::get("/nodes", &[]);
/// `GET /nodes/{node}/version` (user: all).
pub const NODE_VERSION: Endpoint = Endpoint::get("/nodes/{node}/version", &[]);
/// `GET /nodes/{node}/network` (user: all).
pub const NODE_NETWORK: Endpoint = Endpoint::get("/nodes/{node}/network", &[]);
/// `GET /nodes/{node}/storage` (filtered like the resources).
pub const NODE_STORAGE: Endpoint = Endpoint::get("/nodes/{node}/storage", &[SEE_STORAGE]);
/// `GET /nodes/{node}/storage/{storage}/content`.
pub const STORAGE_CONTENT: Endpoint = Endpoint::get(
    "/nodes/{node}/storage/{storage}/content",
    &[any(
        "/storage/{storage}",
        &["Datastore.Audit", "Datastore.AllocateSpace"],
    )],
);
/// `DELETE /nodes/{node}/storage/{storage}/content/{volume}`: Datastore.Allocate on the
/// storage (the backup-volume alternative does not apply to images and ISOs).
pub const STORAGE_DELETE_VOLUME: Endpoint = Endpoint::delete(
    "/nodes/{node}/storage/{storage}/content/{volume}",
    &[all("/storage/{storage}", &["Datastore.Allocate"])],
);
/// What degrades when the token may not download or upload: the transfer runs over SSH on
/// the node instead (`access_check` lists these tools under `ssh_fallback`).
pub const VIA_SSH: &str = "downloads and uploads use SSH on the node";
/// `POST /nodes/{node}/storage/{storage}/download-url`: Datastore.AllocateTemplate on the
/// storage, and Sys.AccessNetwork on the node (or Sys.Audit + Sys.Modify on `/`, which the
/// manager role never has).
pub const STORAGE_DOWNLOAD: Endpoint = Endpoint::post(
    "/nodes/{node}/storage/{storage}/download-url",
    &[
        optional(
            "/storage/{storage}",
            &["Datastore.AllocateTemplate"],
            VIA_SSH,
        ),
        optional("/nodes/{node}", &["Sys.AccessNetwork"], VIA_SSH),
    ],
);
/// `POST /nodes/{node}/storage/{storage}/upload`: Datastore.AllocateTemplate on the storage.
pub const STORAGE_UPLOAD: Endpoint = Endpoint::post(
    "/nodes/{node}/storage/{storage}/upload",
    &[optional(
        "/storage/{storage}",
        &["Datastore.AllocateTemplate"],
        VIA_SSH,
    )],
);

/// `GET /nodes/{node}/tasks/{upid}/status`: Sys.Audit for tasks the token did not start.
pub const TASK_STATUS: Endpoint = Endpoint::get(
    "/nodes/{node}/tasks/{upid}/status",
    &[optional(
        "/nodes/{node}",
        &["Sys.Audit"],
        "only tasks this token started can be read",
    )],
);
/// `GET /nodes/{node}/tasks/{upid}/log`: as [`TASK_STATUS`].
pub const TASK_LOG: Endpoint = Endpoint::get(
    "/nodes/{node}/tasks/{upid}/log",
    &[optional(
        "/nodes/{node}",
        &["Sys.Audit"],
        "only tasks this token started can be read",
    )],
);

/// `GET /nodes/{node}/qemu/{vmid}/config`.
pub const QEMU_CONFIG: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/config",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `GET /nodes/{node}/qemu/{vmid}/status/current`.
pub const QEMU_STATUS: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/status/current",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `GET /nodes/{node}/qemu/{vmid}/pending`.
pub const QEMU_PENDING: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/pending",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces` for `vm_get`: without the
/// privilege it shows no guest address.
pub const AGENT_INTERFACES: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
    &[optional(
        "/vms/{vmid}",
        &[GUEST_AGENT],
        "no guest IP addresses",
    )],
);
/// The same read when `vm_create` waits for the new VM's address.
pub const AGENT_INTERFACES_WAIT: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
    &[optional(
        "/vms/{vmid}",
        &[GUEST_AGENT],
        "wait_for_ip cannot learn the address",
    )],
);

/// `POST /nodes/{node}/qemu/{vmid}/status/{action}`: VM.PowerMgmt.
const POWER: &[Need] = &[all("/vms/{vmid}", &["VM.PowerMgmt"])];
pub const QEMU_START: Endpoint = Endpoint::post("/nodes/{node}/qemu/{vmid}/status/start", POWER);
pub const QEMU_STOP: Endpoint = Endpoint::post("/nodes/{node}/qemu/{vmid}/status/stop", POWER);
pub const QEMU_SHUTDOWN: Endpoint =
    Endpoint::post("/nodes/{node}/qemu/{vmid}/status/shutdown", POWER);
pub const QEMU_REBOOT: Endpoint = Endpoint::post("/nodes/{node}/qemu/{vmid}/status/reboot", POWER);

/// `POST /nodes/{node}/qemu/{vmid}/clone`: VM.Clone on the source, VM.Allocate on the new
/// VMID, Datastore.AllocateSpace on the target storage, SDN.Use on the bridges the copied
/// NICs use.
pub const QEMU_CLONE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/clone",
    &[
        all("/vms/{vmid}", &["VM.Clone"]),
        all("/vms/{newid}", &["VM.Allocate"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
        USE_BRIDGE,
    ],
);

/// `POST /nodes/{node}/qemu` (create_vm): VM.Allocate on the new VMID,
/// Datastore.AllocateSpace on the storage of each disk, SDN.Use on each NIC's bridge, and the
/// config privilege of each option given (check_vm_create_*: cores/sockets CPU, memory, disks
/// and efidisk Disk, net Network, machine/bios/scsihw HWType, agent/name/tags/ostype Options,
/// ciuser/ipconfig/sshkeys Cloudinit, the ISO drive CDROM).
pub const QEMU_CREATE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu",
    &[
        all("/vms/{vmid}", &["VM.Allocate"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
        USE_BRIDGE,
        all(
            "/vms/{vmid}",
            &[
                "VM.Config.Disk",
                "VM.Config.CDROM",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.HWType",
                "VM.Config.Options",
                "VM.Config.Cloudinit",
            ],
        ),
    ],
);

/// `POST /nodes/{node}/qemu/{vmid}/config` as `vm_create` calls it on the clone: cores and
/// sockets, memory, agent/tags/description, ciuser/ipconfig/sshkeys, net0 (and its bridge).
pub const QEMU_CONFIG_CREATE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/config",
    &[
        all(
            "/vms/{vmid}",
            &[
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Options",
                "VM.Config.Cloudinit",
                "VM.Config.Network",
            ],
        ),
        USE_BRIDGE,
    ],
);
/// `POST /nodes/{node}/qemu/{vmid}/config` for cores, sockets and memory.
pub const QEMU_CONFIG_SIZE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/config",
    &[all("/vms/{vmid}", &["VM.Config.CPU", "VM.Config.Memory"])],
);
/// `PUT /nodes/{node}/qemu/{vmid}/config` for tags.
pub const QEMU_CONFIG_TAGS: Endpoint = Endpoint::put(
    "/nodes/{node}/qemu/{vmid}/config",
    &[all("/vms/{vmid}", &["VM.Config.Options"])],
);
/// `POST /nodes/{node}/qemu/{vmid}/config` as the image builds call it: the imported disk,
/// the cloud-init drive (PVE checks VM.Config.Cloudinit and VM.Config.CDROM for it), boot
/// order, cicustom/ciuser/sshkeys/ipconfig, serial, tags.
pub const QEMU_CONFIG_BUILD: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/config",
    &[all(
        "/vms/{vmid}",
        &[
            "VM.Config.Disk",
            "VM.Config.CDROM",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Config.Cloudinit",
        ],
    )],
);
/// `PUT /nodes/{node}/qemu/{vmid}/resize`: VM.Config.Disk.
/// PVE also checks Datastore.AllocateSpace on the disk's storage in code.
pub const QEMU_RESIZE: Endpoint = Endpoint::put(
    "/nodes/{node}/qemu/{vmid}/resize",
    &[
        all("/vms/{vmid}", &["VM.Config.Disk"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
    ],
);
/// `POST /nodes/{node}/qemu/{vmid}/template`: VM.Allocate.
pub const QEMU_TEMPLATE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/template",
    &[all("/vms/{vmid}", &["VM.Allocate"])],
);
/// `DELETE /nodes/{node}/qemu/{vmid}`: VM.Allocate.
pub const QEMU_DELETE: Endpoint = Endpoint::delete(
    "/nodes/{node}/qemu/{vmid}",
    &[all("/vms/{vmid}", &["VM.Allocate"])],
);
/// `GET /cluster/nextid` (user: all): the VMID allocator's cross-check.
pub const NEXTID: Endpoint = Endpoint::get("/cluster/nextid", &[]);
/// `GET /access/permissions` (user: all) for the token itself.
pub const PERMISSIONS: Endpoint = Endpoint::get("/access/permissions", &[]);
/// `GET /version` (user: all).
pub const VERSION: Endpoint = Endpoint::get("/version", &[]);

/// `GET /nodes/{node}/tasks/{upid}/status` while waiting for a task this token started (no
/// privilege needed for one's own tasks).
pub const TASK_WAIT: Endpoint = Endpoint::get("/nodes/{node}/tasks/{upid}/status", &[]);
/// `GET /nodes/{node}/tasks/{upid}/log`: the log tail of a task this token started.
pub const TASK_WAIT_LOG: Endpoint = Endpoint::get("/nodes/{node}/tasks/{upid}/log", &[]);

/// `GET /nodes/{node}/lxc/{vmid}/config`: a container's disks before it moves.
pub const LXC_CONFIG: Endpoint = Endpoint::get(
    "/nodes/{node}/lxc/{vmid}/config",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `GET /nodes/{node}/qemu/{vmid}/migrate`: PVE's migration preconditions.
pub const QEMU_MIGRATE_CHECK: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/migrate",
    &[all("/vms/{vmid}", &["VM.Migrate"])],
);
/// `POST /nodes/{node}/qemu/{vmid}/migrate`: VM.Migrate, and Datastore.AllocateSpace on a
/// `targetstorage` (checked in code, `$check_storage_access_migrate`).
pub const QEMU_MIGRATE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/migrate",
    &[
        all("/vms/{vmid}", &["VM.Migrate"]),
        optional(
            "/storage/{storage}",
            &["Datastore.AllocateSpace"],
            "local disks can only go to a storage of the same name (target_storage is refused)",
        ),
    ],
);
/// `POST /nodes/{node}/lxc/{vmid}/migrate`: VM.Migrate (a running container moves with
/// `restart`; PVE has no live migration for containers).
pub const LXC_MIGRATE: Endpoint = Endpoint::post(
    "/nodes/{node}/lxc/{vmid}/migrate",
    &[
        all("/vms/{vmid}", &["VM.Migrate"]),
        optional(
            "/storage/{storage}",
            &["Datastore.AllocateSpace"],
            "local volumes can only go to a storage of the same name (target_storage is refused)",
        ),
    ],
);
/// What degrades without Sys.Audit on `/` for the HA reads.
pub const HA_UNSEEN: &str =
    "restricted HA groups and node-affinity rules are not taken into account";
/// `GET /cluster/ha/resources`.
pub const HA_RESOURCES: Endpoint = Endpoint::get(
    "/cluster/ha/resources",
    &[optional("/", &["Sys.Audit"], HA_UNSEEN)],
);
/// `GET /cluster/ha/groups` (PVE 8).
pub const HA_GROUPS: Endpoint = Endpoint::get(
    "/cluster/ha/groups",
    &[optional("/", &["Sys.Audit"], HA_UNSEEN)],
);
/// `GET /cluster/ha/rules` (PVE 9).
pub const HA_RULES: Endpoint = Endpoint::get(
    "/cluster/ha/rules",
    &[optional("/", &["Sys.Audit"], HA_UNSEEN)],
);

/// `GET /nodes/{node}/qemu/{vmid}/snapshot`.
pub const QEMU_SNAPSHOTS: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/snapshot",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `POST /nodes/{node}/qemu/{vmid}/snapshot`.
pub const QEMU_SNAPSHOT_CREATE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/snapshot",
    &[all("/vms/{vmid}", &["VM.Snapshot"])],
);
/// `POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback`.
pub const QEMU_SNAPSHOT_ROLLBACK: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    &[any("/vms/{vmid}", &["VM.Snapshot", "VM.Snapshot.Rollback"])],
);
/// `DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}`.
pub const QEMU_SNAPSHOT_DELETE: Endpoint = Endpoint::delete(
    "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}",
    &[all("/vms/{vmid}", &["VM.Snapshot"])],
);
/// `GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config`.
pub const QEMU_SNAPSHOT_CONFIG: Endpoint = Endpoint::get(
    "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    &[any(
        "/vms/{vmid}",
        &["VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit"],
    )],
);
/// `GET /nodes/{node}/lxc/{vmid}/snapshot`.
pub const LXC_SNAPSHOTS: Endpoint = Endpoint::get(
    "/nodes/{node}/lxc/{vmid}/snapshot",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `GET /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config`.
pub const LXC_SNAPSHOT_CONFIG: Endpoint = Endpoint::get(
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
    &[any(
        "/vms/{vmid}",
        &["VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit"],
    )],
);

/// `GET /nodes/{node}/lxc/{vmid}/status/current`.
pub const LXC_STATUS: Endpoint = Endpoint::get(
    "/nodes/{node}/lxc/{vmid}/status/current",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `GET /nodes/{node}/lxc/{vmid}/pending`.
pub const LXC_PENDING: Endpoint = Endpoint::get(
    "/nodes/{node}/lxc/{vmid}/pending",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
/// `GET /nodes/{node}/lxc/{vmid}/interfaces`: a running container's addresses.
pub const LXC_INTERFACES: Endpoint = Endpoint::get(
    "/nodes/{node}/lxc/{vmid}/interfaces",
    &[all("/vms/{vmid}", &["VM.Audit"])],
);
pub const LXC_START: Endpoint = Endpoint::post("/nodes/{node}/lxc/{vmid}/status/start", POWER);
pub const LXC_STOP: Endpoint = Endpoint::post("/nodes/{node}/lxc/{vmid}/status/stop", POWER);
pub const LXC_SHUTDOWN: Endpoint =
    Endpoint::post("/nodes/{node}/lxc/{vmid}/status/shutdown", POWER);
pub const LXC_REBOOT: Endpoint = Endpoint::post("/nodes/{node}/lxc/{vmid}/status/reboot", POWER);
/// `PUT /nodes/{node}/lxc/{vmid}/config` for cores, memory and swap.
pub const LXC_CONFIG_SIZE: Endpoint = Endpoint::put(
    "/nodes/{node}/lxc/{vmid}/config",
    &[all("/vms/{vmid}", &["VM.Config.CPU", "VM.Config.Memory"])],
);
/// `PUT /nodes/{node}/lxc/{vmid}/config` for tags.
pub const LXC_CONFIG_TAGS: Endpoint = Endpoint::put(
    "/nodes/{node}/lxc/{vmid}/config",
    &[all("/vms/{vmid}", &["VM.Config.Options"])],
);
/// `PUT /nodes/{node}/lxc/{vmid}/resize` of rootfs or a mount point: VM.Config.Disk.
pub const LXC_RESIZE: Endpoint = Endpoint::put(
    "/nodes/{node}/lxc/{vmid}/resize",
    &[
        all("/vms/{vmid}", &["VM.Config.Disk"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
    ],
);
/// `DELETE /nodes/{node}/lxc/{vmid}`: VM.Allocate.
pub const LXC_DELETE: Endpoint = Endpoint::delete(
    "/nodes/{node}/lxc/{vmid}",
    &[all("/vms/{vmid}", &["VM.Allocate"])],
);
/// `POST /nodes/{node}/lxc/{vmid}/snapshot`.
pub const LXC_SNAPSHOT_CREATE: Endpoint = Endpoint::post(
    "/nodes/{node}/lxc/{vmid}/snapshot",
    &[all("/vms/{vmid}", &["VM.Snapshot"])],
);
/// `POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback`.
pub const LXC_SNAPSHOT_ROLLBACK: Endpoint = Endpoint::post(
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    &[any("/vms/{vmid}", &["VM.Snapshot", "VM.Snapshot.Rollback"])],
);
/// `DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}`.
pub const LXC_SNAPSHOT_DELETE: Endpoint = Endpoint::delete(
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
    &[all("/vms/{vmid}", &["VM.Snapshot"])],
);

/// `POST /nodes/{node}/vzdump`: VM.Backup on each guest, Datastore.AllocateSpace on the
/// backup storage (checked in code).
pub const VZDUMP: Endpoint = Endpoint::post(
    "/nodes/{node}/vzdump",
    &[
        all("/vms/{vmid}", &["VM.Backup"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
    ],
);
/// `GET /cluster/backup`.
pub const BACKUP_JOBS: Endpoint = Endpoint::get("/cluster/backup", &[all("/", &["Sys.Audit"])]);
/// `GET /cluster/backup-info/not-backed-up`.
pub const NOT_BACKED_UP: Endpoint = Endpoint::get(
    "/cluster/backup-info/not-backed-up",
    &[optional(
        "/",
        &["Sys.Audit"],
        "the guests no job covers are not listed",
    )],
);
/// `GET /nodes/{node}/tasks`: the token's own tasks, or all of a node's with Sys.Audit there.
pub const NODE_TASKS: Endpoint = Endpoint::get(
    "/nodes/{node}/tasks",
    &[optional(
        "/nodes/{node}",
        &["Sys.Audit"],
        "only runs this token started are found (scheduled runs are root's)",
    )],
);
/// `POST /nodes/{node}/qemu` with `archive`: a restore. VM.Allocate on the new VMID (VM.Backup
/// suffices over an existing VM), Datastore.AllocateSpace on the target storage, access to
/// the archive (Datastore.AllocateSpace on its storage, or VM.Backup on its guest), SDN.Use
/// on the bridges of the restored NICs.
pub const QEMU_RESTORE: Endpoint = Endpoint::post(
    "/nodes/{node}/qemu",
    &[
        any("/vms/{vmid}", &["VM.Allocate", "VM.Backup"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
        USE_BRIDGE,
    ],
);
/// `PUT /nodes/{node}/qemu/{vmid}/config` removing an `unusedN` entry (which destroys the
/// volume): VM.Config.Disk.
pub const QEMU_CONFIG_UNUSED: Endpoint = Endpoint::put(
    "/nodes/{node}/qemu/{vmid}/config",
    &[all("/vms/{vmid}", &["VM.Config.Disk"])],
);

/// `POST /nodes/{node}/lxc` (create from a `vztmpl`, LXC.pm `create_vm`): VM.Allocate on the
/// new vmid, Datastore.AllocateSpace on the root disk's storage (and AllocateSpace or Audit on
/// the template's, `check_volume_access`), the config privilege of each option given
/// (`check_ct_modify_config_perm`), SDN.Use on net0's bridge; Sys.Modify on `/` only for a
/// privileged container.
pub const LXC_CREATE: Endpoint = Endpoint::post(
    "/nodes/{node}/lxc",
    &[
        all("/vms/{vmid}", &["VM.Allocate"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
        all(
            "/vms/{vmid}",
            &[
                "VM.Config.Disk",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.Options",
            ],
        ),
        USE_BRIDGE,
        optional(
            "/",
            &["Sys.Modify"],
            "privileged containers (unprivileged: false) are refused",
        ),
    ],
);
/// `POST /nodes/{node}/lxc` with `restore=1`: VM.Allocate on the vmid (or VM.Backup when it
/// overwrites an existing container), Datastore.AllocateSpace on the target storage; Sys.Modify
/// on `/` to restore a privileged container's archive.
pub const LXC_RESTORE: Endpoint = Endpoint::post(
    "/nodes/{node}/lxc",
    &[
        any("/vms/{vmid}", &["VM.Allocate", "VM.Backup"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
        optional(
            "/",
            &["Sys.Modify"],
            "archives of privileged containers cannot be restored",
        ),
    ],
);
/// `POST /nodes/{node}/lxc/{vmid}/clone`: VM.Clone on the template, VM.Allocate on the new id,
/// Datastore.AllocateSpace on the target storage of a full clone.
pub const LXC_CLONE: Endpoint = Endpoint::post(
    "/nodes/{node}/lxc/{vmid}/clone",
    &[
        all("/vms/{vmid}", &["VM.Clone"]),
        all("/vms/{newid}", &["VM.Allocate"]),
        all("/storage/{storage}", &["Datastore.AllocateSpace"]),
        USE_BRIDGE,
    ],
);
/// `PUT /nodes/{node}/lxc/{vmid}/config` after a clone: cores, memory, swap, net0, tags,
/// features.
pub const LXC_CONFIG_CREATE: Endpoint = Endpoint::put(
    "/nodes/{node}/lxc/{vmid}/config",
    &[
        all(
            "/vms/{vmid}",
            &[
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.Options",
            ],
        ),
        USE_BRIDGE,
    ],
);
/// `GET /nodes/{node}/aplinfo` (user: all): the appliance index.
pub const APLINFO: Endpoint = Endpoint::get("/nodes/{node}/aplinfo", &[]);
/// `POST /nodes/{node}/aplinfo`: Datastore.AllocateTemplate on the storage; without it the
/// download runs as `pveam download` over SSH.
pub const APLINFO_DOWNLOAD: Endpoint = Endpoint::post(
    "/nodes/{node}/aplinfo",
    &[optional(
        "/storage/{storage}",
        &["Datastore.AllocateTemplate"],
        VIA_SSH,
    )],
);
/// `GET /cluster/sdn/vnets` (user: all, filtered): the vnets a NIC may name besides the node's
/// bridges; without SDN.Audit the list is empty and only bridges are offered.
pub const SDN_VNETS: Endpoint = Endpoint::get(
    "/cluster/sdn/vnets",
    &[optional(
        "/sdn/zones/{zone}/{vnet}",
        &["SDN.Audit", "SDN.Allocate"],
        "SDN vnets are not offered as bridges",
    )],
);
