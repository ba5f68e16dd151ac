"""A real Streamable HTTP MCP server for the `remote` server kind's end-to-end tests.

The official Python SDK's MCPServer (formerly FastMCP) served by uvicorn on 127.0.0.1:PORT at
/mcp, behind a check of `Authorization: Bearer $REMOTE_TOKEN`: any request without it is
refused with 401 before the SDK sees it.

Usage:
    REMOTE_TOKEN=... python3 remote_server.py --port PORT [--legacy] [--record FILE]
                                              [--certfile CERT --keyfile KEY]

--legacy makes it a server built before 2026-07-28: the MCP-Protocol-Version header of a
2026-07-28 request is dropped before the SDK routes it, so the SDK's legacy session transport
answers it as it answers any request outside a session (400). The gateway then takes it for a
legacy server and opens a session with `initialize`.

--record appends one JSON line per HTTP request to FILE: the HTTP method, the Mcp-Method
header, whether a session id and the Authorization header came, and MCP-Protocol-Version; and
{"tool": "slow"} when that tool starts.

--resumable keeps every event in memory and gives them ids, so that a stream cut short is
resumed with GET and Last-Event-ID (retry 200 ms).

Tools: echo(text), progress(steps) (reports each step and logs "progress done"), slow(seconds),
polled() (closes its own event stream mid-call, then answers "resumed"), pid() (the server
process's id, to tell a restarted server apart).
"""

import argparse
import json
import os

import warnings

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventMessage, EventStore

# Logging is deprecated in 2026-07-28, and still what legacy clients are sent.
warnings.filterwarnings("ignore", message=".*deprecated as of 2026-07-28")

server = MCPServer("remote-fixture")
# Where --record writes; the tools note there that they ran.
RECORD: str | None = None


def note(line: dict) -> None:
    if RECORD:
        with open(RECORD, "a") as out:
            out.write(json.dumps(line) + "\n")


@server.tool()
async def echo(text: str) -> str:
    """Answers its text."""
    return text


@server.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Reports each step as progress, then logs a message."""
    for step in range(steps):
        await ctx.report_progress(step + 1, steps, f"step {step + 1}")
    await ctx.info("progress done")
    return f"{steps} steps"


@server.tool()
async def slow(seconds: float) -> str:
    """Sleeps, then answers."""
    note({"tool": "slow"})
    await anyio.sleep(seconds)
    return "slept"


@server.tool()
async def polled(ctx: Context) -> str:
    """Reports progress, closes its event stream (the client must resume it with
    Last-Event-ID: only --resumable keeps the events), then answers."""
    await ctx.report_progress(1, 2, "before the cut")
    await ctx.close_sse_stream()
    await anyio.sleep(0.5)
    await ctx.report_progress(2, 2, "after the cut")
    return "resumed"


class MemoryEvents(EventStore):
    """Every event of the run, in order, for replay after a client's Last-Event-ID."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []

    async def store_event(self, stream_id, message):
        event_id = str(len(self.events) + 1)
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        index = next((i for i, (e, _, _) in enumerate(self.events) if e == last_event_id), None)
        if index is None:
            return None
        stream_id = self.events[index][1]
        for event_id, stream, message in self.events[index + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


@server.tool()
def pid() -> str:
    """The server process's id."""
    return str(os.getpid())


def guarded(app, token: str, legacy: bool, record: bool):
    """The SDK's ASGI app behind the bearer check, the era switch and the request record."""
    expected = f"Bearer {token}".encode()

    async def wrapper(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = dict(scope["headers"])
        if record:
            line = {
                "method": scope["method"],
                "mcp_method": headers.get(b"mcp-method", b"").decode(),
                "session": b"mcp-session-id" in headers,
                "auth": b"authorization" in headers,
                "version": headers.get(b"mcp-protocol-version", b"").decode(),
            }
            note(line)
        if headers.get(b"authorization") != expected:
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": b"invalid or missing bearer token"})
            return
        if legacy and headers.get(b"mcp-protocol-version") == b"2026-07-28":
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"mcp-protocol-version"]
        return await app(scope, receive, send)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--legacy", action="store_true")
    parser.add_argument("--record")
    parser.add_argument("--resumable", action="store_true")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    global RECORD
    RECORD = args.record
    if args.resumable:
        inner = server.streamable_http_app(event_store=MemoryEvents(), retry_interval=200)
    else:
        inner = server.streamable_http_app()
    app = guarded(inner, os.environ["REMOTE_TOKEN"], args.legacy, bool(args.record))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )


if __name__ == "__main__":
    main()
