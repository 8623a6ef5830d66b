"""A short conversation through the official Python MCP client over Streamable HTTP.

Usage: MCP_BEARER=<token> python3 e2e_http.py http://127.0.0.1:PORT/mcp
The server runs `serve --sim --transport http`; the bearer token comes from the environment
(never argv). Exits non-zero on the first failed expectation, naming it.
"""
import asyncio
import os
import sys

from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def text_of(result):
    return " ".join(c.text for c in result.content if hasattr(c, "text"))


async def conversation(url: str, token: str, mode: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    transport = streamable_http_client(url, http_client=http)
    async with Client(transport, mode=mode, read_timeout_seconds=60) as client:
        expect(client.server_info.name == "proxmox-manager", f"[{mode}] our server: {client.server_info}")
        names = {t.name for t in (await client.list_tools()).tools}
        expect({"cluster_status", "vm_list", "vm_create", "vm_delete", "runbook_get"} <= names,
               f"[{mode}] tools listed: {sorted(names)}")

        # "How is the cluster doing?"
        r = await client.call_tool("cluster_status", {})
        expect(not r.is_error and len(r.structured_content["nodes"]) == 3, f"[{mode}] cluster_status")

        # "Which prod VMs are running?"
        r = await client.call_tool("vm_list", {"tag": "prod", "status": "running"})
        expect(not r.is_error, f"[{mode}] vm_list: {text_of(r)}")
        vms = r.structured_content["vms"]
        expect(vms and all("prod" in v["tags"] for v in vms), f"[{mode}] tag filter: {vms}")

        # "Make me a VM from the noble template" -> created, then "delete it again":
        # preview first (nothing deleted), then confirmed.
        templates = (await client.call_tool("template_list", {})).structured_content["templates"]
        expect(templates, f"[{mode}] a template to clone")
        r = await client.call_tool("vm_create", {"template": templates[0]["vmid"], "name": f"py-{mode}"})
        expect(not r.is_error, f"[{mode}] vm_create: {text_of(r)}")
        vmid = r.structured_content["vmid"]
        r = await client.call_tool("vm_delete", {"vmid": vmid})
        expect(not r.is_error and r.structured_content.get("executed") is False,
               f"[{mode}] vm_delete without confirm is a preview: {r.structured_content}")
        r = await client.call_tool("vm_get", {"vmid": vmid})
        expect(not r.is_error, f"[{mode}] the preview deleted nothing")
        r = await client.call_tool("vm_delete", {"vmid": vmid, "confirm": True})
        expect(not r.is_error and r.structured_content.get("executed") is True,
               f"[{mode}] vm_delete confirmed: {r.structured_content}")
        r = await client.call_tool("vm_get", {"vmid": vmid})
        expect(r.is_error and str(vmid) in text_of(r), f"[{mode}] the VM is gone: {text_of(r)}")

        # Resources and prompts over HTTP too.
        uris = {str(res.uri) for res in (await client.list_resources()).resources}
        expect("config://cluster-config" in uris, f"[{mode}] resources: {uris}")
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        expect("create_template" in prompts, f"[{mode}] prompts: {prompts}")


async def main() -> None:
    url = sys.argv[1]
    token = os.environ["MCP_BEARER"]
    for mode in ("legacy", "auto"):
        await conversation(url, token, mode)
    print("python mcp client over HTTP: 2 conversations passed")


asyncio.run(main())
