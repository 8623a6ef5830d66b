"""One conversation's worth of calls through the official Python MCP client (stdio).

Usage: python3 e2e_stdio.py /path/to/proxmox-manager
Spawns `proxmox-manager serve --sim` and checks what a user would see. Exits non-zero on the
first failed expectation, naming it.
"""
import asyncio
import sys

from mcp import Client, StdioServerParameters


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


async def conversation(binary: str, mode: str) -> None:
    params = StdioServerParameters(command=binary, args=["serve", "--sim", "--sim-time-scale", "0.01"])
    async with Client(params, mode=mode, read_timeout_seconds=60) as client:
        info = client.server_info
        expect(info is not None and info.name == "proxmox-manager", f"[{mode}] server name is ours: {info}")
        tools = (await client.list_tools()).tools
        names = {t.name for t in tools}
        for want in ("cluster_status", "node_status", "vm_list", "vm_get", "template_list",
                     "storage_list", "storage_content", "task_status", "task_log"):
            expect(want in names, f"[{mode}] tool {want} listed")
        for t in tools:
            a = t.annotations
            expect(a is not None and a.read_only_hint is not None and a.destructive_hint is not None
                   and a.idempotent_hint is not None and a.open_world_hint is not None,
                   f"[{mode}] {t.name} has all four annotations")

        r = await client.call_tool("cluster_status", {})
        expect(not r.is_error, f"[{mode}] cluster_status succeeds: {r.content}")
        s = r.structured_content
        expect(len(s["nodes"]) == 3, f"[{mode}] 3 nodes, got {len(s['nodes'])}")
        for n in s["nodes"]:
            expect(n["memory_total"] > 0 and n["cpus"] > 0, f"[{mode}] node {n['node']} has cpu and memory")
        expect(len(s["storage"]) > 0, f"[{mode}] storage listed")

        r = await client.call_tool("vm_list", {"status": "running", "page_size": 5})
        expect(not r.is_error, f"[{mode}] vm_list succeeds")
        page = r.structured_content
        expect(0 < len(page["vms"]) <= 5, f"[{mode}] paged vm_list")
        expect(all(v["status"] == "running" for v in page["vms"]), f"[{mode}] status filter applied")

        vmid = page["vms"][0]["vmid"]
        r = await client.call_tool("vm_get", {"vmid": vmid})
        expect(not r.is_error and r.structured_content["vmid"] == vmid, f"[{mode}] vm_get {vmid}")
        expect(r.structured_content["node"] == page["vms"][0]["node"], f"[{mode}] vm_get resolved the node")

        r = await client.call_tool("vm_get", {"vmid": 99999})
        expect(r.is_error, f"[{mode}] vm_get of a missing VM is a tool error")
        text = " ".join(c.text for c in r.content if hasattr(c, "text"))
        expect("99999" in text, f"[{mode}] the error names the VM: {text}")

        r = await client.call_tool("template_list", {})
        expect(not r.is_error and len(r.structured_content["templates"]) > 0, f"[{mode}] templates listed")


async def main() -> None:
    binary = sys.argv[1]
    for mode in ("legacy", "auto"):
        await conversation(binary, mode)
    print("python mcp client: 2 conversations passed")


asyncio.run(main())
