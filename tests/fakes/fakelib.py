"""Shared helpers of the fake talosctl / flux / kubectl used by tests/mcp_profiles.rs.

Each fake accepts exactly the subcommands and flags proxmox-manager uses (as the real CLIs
spell them), fails with exit 1 and a usage error on anything else, records every call (argv,
stdin, the environment variables that matter) to $FAKE_DIR/calls.jsonl, and writes files that
look like the real ones, with random secret material.
"""
import base64
import json
import os
import secrets
import sys

FAKE_DIR = os.environ.get("FAKE_DIR", "")


def record(prog, argv):
    stdin = ""
    if not sys.stdin.isatty():
        try:
            stdin = sys.stdin.read()
        except Exception:
            stdin = ""
    env = {k: os.environ[k] for k in ("TALOSCONFIG", "KUBECONFIG", "FLUX_SYSTEM_NAMESPACE") if k in os.environ}
    if FAKE_DIR:
        with open(os.path.join(FAKE_DIR, "calls.jsonl"), "a") as f:
            f.write(json.dumps({"prog": prog, "argv": argv, "stdin": stdin, "env": env}) + "\n")


def die(msg):
    sys.stderr.write(f"Error: {msg}\n")
    sys.exit(1)


def parse(args, flags, bools=()):
    """--flag value / --flag=value / -o value; returns (positionals, options). Unknown flags fail."""
    pos, opts = [], {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            name, eq, val = a.partition("=")
            if name in bools:
                opts[name] = True
            elif name in flags:
                if not eq:
                    i += 1
                    if i >= len(args):
                        die(f"flag needs an argument: {name}")
                    val = args[i]
                opts[name] = val
            else:
                die(f"unknown flag: {name}")
        else:
            pos.append(a)
        i += 1
    return pos, opts


def b64(n=48):
    return base64.b64encode(secrets.token_bytes(n)).decode()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def control(name):
    """The content of the control file $FAKE_DIR/NAME, or None."""
    p = os.path.join(FAKE_DIR, name)
    if FAKE_DIR and os.path.exists(p):
        with open(p) as f:
            return f.read().strip()
    return None
