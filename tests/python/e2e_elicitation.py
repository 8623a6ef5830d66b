"""The person confirms, not the model: destructive calls approved through the official Python
MCP client's elicitation callback (mcp==2.3.0, protocol 2025-11-25) against the simulator.

Usage: python3 e2e_elicitation.py /path/to/proxmox-manager
Exits non-zero on the first failed expectation, naming it.
"""
import asyncio
import socket
import subprocess
import sys
import time

import mcp_types as types
from mcp import Client, StdioServerParameters


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def text_of(r) -> str:
    return " ".join(c.text for c in r.content if hasattr(c, "text"))


class Person:
    """Answers the server's confirmation dialogs from a script, and records every question."""

    def __init__(self):
        self.answers = []
        self.asked = []

    async def __call__(self, ctx, params):
        schema = params.requested_schema
        if hasattr(schema, "model_dump"):
            schema = schema.model_dump(by_alias=True, exclude_none=True)
        self.asked.append((params.message, schema))
        action, content = self.answers.pop(0)
        return types.ElicitResult(action=action, content=content)


def server(binary: str, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=binary, args=["serve", "--sim", "--sim-time-scale", "0.01", *extra]
    )


async def person_decides(binary: str) -> None:
    person = Person()
    async with Client(server(binary), mode="legacy", read_timeout_seconds=60,
                      elicitation_callback=person) as client:
        args = {"vmid": 1007, "confirm": True}

        person.answers.append(("decline", None))
        r = await client.call_tool("vm_delete", args)
        expect(r.is_error and "declined" in text_of(r) and "Nothing was changed" in text_of(r),
               f"a declined delete is a tool error saying so: {text_of(r)}")
        person.answers.append(("cancel", None))
        r = await client.call_tool("vm_delete", args)
        expect(r.is_error and "dismissed" in text_of(r), f"a cancelled delete says so: {text_of(r)}")
        r = await client.call_tool("vm_get", {"vmid": 1007})
        expect(not r.is_error and r.structured_content["vmid"] == 1007, "the VM is still there")

        message, schema = person.asked[0]
        expect(set(schema["properties"]) == {"approve"} and schema["required"] == ["approve"],
               f"the form is the server's: {schema}")
        expect(schema["properties"]["approve"]["type"] == "boolean", f"approve is a boolean: {schema}")
        expect('- name: "dev-sandbox"' in message and "cannot be undone" in message,
               f"the message comes from the preview: {message}")

        person.answers.append(("accept", {"approve": True}))
        r = await client.call_tool("vm_delete", args)
        expect(not r.is_error and r.structured_content["executed"], f"an approved delete runs: {text_of(r)}")
        r = await client.call_tool("vm_get", {"vmid": 1007})
        expect(r.is_error, "the VM is gone")

        before = len(person.asked)
        person.answers.append(("accept", {"approve": True}))
        r = await client.call_tool("bulk_power", {"action": "stop", "tags": ["k8s"], "confirm": True})
        expect(not r.is_error and r.structured_content["executed"], f"the bulk stop ran: {text_of(r)}")
        expect(len(person.asked) == before + 1, "the bulk stop asked exactly once")
        expect(len(r.structured_content["results"]) == 3, "three guests stopped")

        r = await client.call_tool("access_check", {})
        c = r.structured_content["confirmations"]
        expect(c["mode"] == "auto" and c["client_can_elicit"] is True, f"access_check: {c}")
    print("eliciting client: decline, cancel, accept, bulk once: ok")


async def no_dialog_refused(binary: str) -> None:
    async with Client(server(binary, "--confirmations", "elicit"), mode="legacy",
                      read_timeout_seconds=60) as client:
        r = await client.call_tool("vm_delete", {"vmid": 1007})
        expect(not r.is_error and not r.structured_content["executed"], "the preview still works")
        r = await client.call_tool("vm_delete", {"vmid": 1007, "confirm": True})
        expect(r.is_error and "confirmations: elicit" in text_of(r),
               f"a client without elicitation is refused in elicit mode: {text_of(r)}")
        r = await client.call_tool("vm_get", {"vmid": 1007})
        expect(not r.is_error, "the VM is still there")
    print("client without elicitation in elicit mode: refused: ok")


async def over_http(binary: str) -> None:
    """The same dialog over Streamable HTTP (the server's request rides the session's stream)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "serve", "--sim", "--sim-time-scale", "0.01", "--transport", "http",
         "--no-auth", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                expect(time.monotonic() < deadline and proc.poll() is None, "the HTTP server starts")
                await asyncio.sleep(0.1)
        person = Person()
        async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy", read_timeout_seconds=60,
                          elicitation_callback=person) as client:
            person.answers.append(("decline", None))
            r = await client.call_tool("vm_delete", {"vmid": 1007, "confirm": True})
            expect(r.is_error and "declined" in text_of(r), f"[http] declined: {text_of(r)}")
            person.answers.append(("accept", {"approve": True}))
            r = await client.call_tool("vm_delete", {"vmid": 1007, "confirm": True})
            expect(not r.is_error and r.structured_content["executed"], f"[http] approved: {text_of(r)}")
            expect(len(person.asked) == 2, "[http] asked once per confirmed call")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print("eliciting client over HTTP: decline, accept: ok")


async def main() -> None:
    binary = sys.argv[1]
    await person_decides(binary)
    await no_dialog_refused(binary)
    await over_http(binary)
    print("3 elicitation conversations passed")


if __name__ == "__main__":
    asyncio.run(main())
