#!/usr/bin/env python3
"""Counts what one warm `tools/call` costs the daemon and the shim, in figures that do not depend
on the machine's load: instructions (under `valgrind --tool=callgrind`), syscalls (`strace -c`)
and context switches (`/proc`).

It starts the release `mcp-gatewayd` on a temporary socket with its own XDG directories, adds one
fixture server with `mcpctl`, and drives one `mcp-shim` client through the handshake and some
warm-up calls; then it counts over `--calls` closed-loop `echo` calls (the benchmark's own line)
and divides by their number. Under callgrind the counters are zeroed after the warm-up and dumped
after the last call, so the daemon's start, the container's start and the handshake are left out.

Usage: bench/callcost.py [--mode callgrind|strace|ctxsw] [--calls N] [--image IMAGE]
                         [--bin-dir DIR] [--ctl PATH] [--keep DIR] [--daemon-env KEY=VALUE ...]
"""

import argparse
import glob
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

ECHO_TEXT = "the quick brown fox jumps over the lazy dog"


def line(value):
    return (json.dumps(value, separators=(",", ":")) + "\n").encode()


def echo(call_id):
    return line({"jsonrpc": "2.0", "id": call_id, "method": "tools/call",
                 "params": {"name": "echo", "arguments": {"text": ECHO_TEXT}}})


class Client:
    """One shim process spoken to in raw JSON-RPC lines."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        self.buffer = b""

    def send(self, data):
        self.proc.stdin.write(data)

    def answer(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                sys.exit("callcost: no answer in time")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                sys.exit("callcost: the shim closed its output")
            self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(text)
        if "result" not in message:
            sys.exit(f"callcost: unexpected answer {text[:300]!r}")
        return message

    def call(self, call_id):
        self.send(echo(call_id))
        answer = self.answer()
        if answer.get("id") != call_id or answer["result"].get("isError"):
            sys.exit(f"callcost: bad answer {answer!r}")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def tasks_switches(pid):
    """Voluntary plus involuntary context switches over every thread of `pid`."""
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for row in f:
                    if "ctxt_switches:" in row:
                        total += int(row.split()[-1])
        except OSError:
            pass
    return total


def callgrind_total(path):
    with open(path) as f:
        for row in f:
            if row.startswith("summary:") or row.startswith("totals:"):
                return int(row.split()[1])
    sys.exit(f"callcost: no totals in {path}")


def callgrind_control(*args):
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL)


def newest_dump(prefix, before):
    dumps = sorted(set(glob.glob(prefix + "*")) - before, key=os.path.getmtime)
    if not dumps:
        sys.exit(f"callcost: callgrind wrote no dump at {prefix}*")
    return dumps[-1]


def wait_dump(prefix, before, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(glob.glob(prefix + "*")) - before:
            time.sleep(0.5)
            return newest_dump(prefix, before)
        time.sleep(0.1)
    sys.exit(f"callcost: callgrind wrote no dump at {prefix}* in time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["callgrind", "strace", "ctxsw"], default="callgrind")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--image", default="mcp-gateway-fixture:bench")
    workspace = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--bin-dir", default=os.path.join(workspace, "target/release"))
    parser.add_argument("--ctl", default=None, help="mcpctl [default: BIN_DIR/mcpctl]")
    parser.add_argument("--keep", default=None, help="keep the callgrind dumps in this directory")
    parser.add_argument("--daemon-env", action="append", default=[])
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="mcp-callcost-")
    for sub in ["run", "config", "state", "home"]:
        os.makedirs(os.path.join(root, sub))
    env = dict(os.environ)
    env.update({
        "XDG_RUNTIME_DIR": os.path.join(root, "run"),
        "XDG_CONFIG_HOME": os.path.join(root, "config"),
        "XDG_STATE_HOME": os.path.join(root, "state"),
        "HOME": os.path.join(root, "home"),
        "RUST_LOG": "warn",
    })
    env.pop("MCP_GATEWAY_SOCKET", None)
    # The static launcher bench/run.sh and tests/run.sh build, as the benchmark's daemons get it
    # (tests/harness): without it the daemon keeps servers' stdio on the attach stream.
    env.setdefault("MCP_GATEWAY_LAUNCHER", os.path.join(workspace, "target/static/mcp-launcher"))
    daemon_env = dict(env)
    for pair in args.daemon_env:
        key, _, value = pair.partition("=")
        daemon_env[key] = value
    socket = os.path.join(root, "run/mcp-gateway.sock")
    out = args.keep or root
    os.makedirs(out, exist_ok=True)
    daemon_bin = os.path.join(args.bin_dir, "mcp-gatewayd")
    shim_bin = os.path.join(args.bin_dir, "mcp-shim")
    ctl = args.ctl or os.path.join(args.bin_dir, "mcpctl")

    grind = ["valgrind", "--tool=callgrind", "--quiet"]
    daemon_argv = [daemon_bin, "--socket", socket]
    shim_argv = [shim_bin]
    if args.mode == "callgrind":
        daemon_argv = grind + [f"--callgrind-out-file={out}/daemon.out"] + daemon_argv
        shim_argv = grind + [f"--callgrind-out-file={out}/shim.out"] + shim_argv
    daemon = subprocess.Popen(daemon_argv, env=daemon_env, stdin=subprocess.DEVNULL)
    client = None
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(socket):
            if time.monotonic() > deadline or daemon.poll() is not None:
                sys.exit("callcost: the daemon did not start")
            time.sleep(0.1)
        subprocess.run([ctl, "server", "add", "fx", "--image", args.image,
                        "--env", "MCP_FIXTURE_NAME=fx"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        client = Client(shim_argv, env)
        client.send(line({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "callcost", "version": "0"}}}))
        client.answer()
        client.send(line({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        for n in range(1, args.warmup + 1):
            client.call(n)
        first = args.warmup + 1
        calls = range(first, first + args.calls)
        result = {"mode": args.mode, "calls": args.calls}

        if args.mode == "callgrind":
            # Each process has one callgrind; zeroing and dumping go through its control file.
            before = set(glob.glob(f"{out}/*.out*"))
            for pid in (daemon.pid, client.proc.pid):
                callgrind_control("-z", str(pid))
            time.sleep(1.0)
            started = time.monotonic()
            for n in calls:
                client.call(n)
            result["seconds"] = round(time.monotonic() - started, 2)
            for who, pid in (("daemon", daemon.pid), ("shim", client.proc.pid)):
                callgrind_control("-d", str(pid))
                dump = wait_dump(f"{out}/{who}.out", before)
                before.add(dump)
                result[f"{who}_instructions_per_call"] = callgrind_total(dump) // args.calls
                result[f"{who}_dump"] = dump
        elif args.mode == "strace":
            counts = {}
            tracers = []
            for who, pid in (("daemon", daemon.pid), ("shim", client.proc.pid)):
                path = f"{out}/{who}.strace"
                tracers.append((who, path, subprocess.Popen(
                    ["strace", "-f", "-c", "-o", path, "-p", str(pid)],
                    stderr=subprocess.DEVNULL)))
            time.sleep(1.5)
            for n in calls:
                client.call(n)
            for who, path, tracer in tracers:
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=30)
                with open(path) as f:
                    text = f.read()
                per_call = {}
                for row in text.splitlines():
                    fields = row.split()
                    if len(fields) >= 5 and re.fullmatch(r"[0-9.]+", fields[0]) \
                            and fields[-1] != "total":
                        per_call[fields[-1]] = round(int(fields[3]) / args.calls, 2)
                counts[who] = per_call
                result[f"{who}_syscalls_per_call"] = round(sum(per_call.values()), 2)
            result["syscalls"] = counts
        else:
            pids = {"daemon": daemon.pid, "shim": client.proc.pid}
            before = {who: tasks_switches(pid) for who, pid in pids.items()}
            for n in calls:
                client.call(n)
            for who, pid in pids.items():
                result[f"{who}_switches_per_call"] = round(
                    (tasks_switches(pid) - before[who]) / args.calls, 2)
        print(json.dumps(result, indent=1))
    finally:
        if client is not None:
            client.close()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()


if __name__ == "__main__":
    main()
