"""Scenario runner for end-to-end tests: drive a stdio MCP server with the official Python SDK.

The gateway's Rust tests use this to check that a real third-party client (the
`mcp` package, 2.x) can talk to `mcp-shim` and, through it, to the containers.
It launches COMMAND as a stdio MCP server, performs the legacy `initialize`
handshake with `mcp.ClientSession`, runs a JSON list of steps in order, and
prints a single JSON document to stdout:

    {"initialize": <InitializeResult>, "steps": [<one result per step>]}

Usage:
    python3 mcp_client.py --steps STEPS_JSON [--callbacks sampling,elicitation,roots]
                          [--mode legacy|2026-07-28] [--log-level L] -- COMMAND [ARG...]
    python3 mcp_client.py --steps STEPS_JSON [...] --url URL
                          (bearer token in $MCP_HTTP_TOKEN)

With --url the client speaks the SDK's Streamable HTTP transport to URL instead
of launching a command, sending `Authorization: Bearer $MCP_HTTP_TOKEN`.

--mode 2026-07-28 speaks the current protocol with the SDK's `Client` (no
handshake; every request carries its `_meta`); "initialize" then reports the
protocol version the client adopted. The default is the legacy handshake.
--log-level (2026-07-28 only) makes every request ask for log messages at L or above
(`io.modelcontextprotocol/logLevel`).

With --callbacks the client declares those capabilities and answers: sampling
with the text "sampled: <first message text>", elicitation by accepting (form
content {"name": "tester"}), roots with [file:///work/a, file:///work/b].
Without, it declares none of them.

The document also holds "notifications": every server notification the
session surfaced, in order, as {"method": M, "params": P}.

Steps:
    {"op": "list_tools"}                                  -> {"tools": [...]}, all pages
    {"op": "list", "kind": K}                             -> {"items": [...], "pages": N}, all
                                                             pages of tools|prompts|resources|templates
    {"op": "call_tool", "name": N, "arguments": {...},
     "progress": true?}                                   -> the CallToolResult (+ "progress": [...])
    {"op": "get_prompt", "name": N, "arguments": {...}}   -> the GetPromptResult
    {"op": "read_resource", "uri": U}                     -> the ReadResourceResult
    {"op": "subscribe" | "unsubscribe", "uri": U}         -> {}
    {"op": "complete", "ref": R, "argument": A}           -> the CompleteResult
    {"op": "set_level", "level": L}                       -> {}
    {"op": "sleep", "ms": N}                              -> {} after N ms
    {"op": "concurrent", "steps": [...]}                  -> list of nested results,
                                                             run at once on one session
    {"op": "ping"}                                        -> {}
    {"op": "listen", "uris": [...], "steps": [...],
     "events": N}                                         -> {"honored": [...], "steps": [...],
                                                             "events": [{"type": T, "uri": U}]}:
                                                             2026-07-28 only; runs the steps with a
                                                             subscriptions/listen stream naming the
                                                             resources open, then waits (10 s at
                                                             most) for N of its events

A step that fails (a JSON-RPC error, a lost connection, an invalid result) is
recorded as {"error": {"code": ..., "message": ...}} in its slot and the run
continues. The exit status is 0 when the run reached the end; otherwise it is
non-zero with the reason on stderr. The server's stderr passes through to ours.
"""

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import mcp.types as types
from mcp import Client, ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


class ScenarioError(Exception):
    """A malformed step: a mistake in the test, so it aborts the run."""


def dump(model: Any) -> Any:
    """Wire-shaped JSON of an SDK result model."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def list_all_tools(session: ClientSession) -> dict[str, Any]:
    tools: list[Any] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
        page = await session.list_tools(params=params)
        tools.extend(dump(tool) for tool in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return {"tools": tools}


LISTS = {
    "tools": ("list_tools", "tools"),
    "prompts": ("list_prompts", "prompts"),
    "resources": ("list_resources", "resources"),
    "templates": ("list_resource_templates", "resource_templates"),
}


async def list_all(session: Any, kind: str) -> dict[str, Any]:
    name, field = LISTS[kind]
    method = getattr(session, name)
    items: list[Any] = []
    pages = 0
    cursor: str | None = None
    while True:
        if isinstance(session, Client):
            # The modern client caches lists; the tests want what the gateway says now.
            page = await method(cursor=cursor, cache_mode="refresh")
        else:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
            page = await method(params=params)
        pages += 1
        items.extend(dump(item) for item in getattr(page, field))
        cursor = page.next_cursor
        if cursor is None:
            return {"items": items, "pages": pages}


async def call_tool(session: ClientSession, step: dict[str, Any]) -> Any:
    progress: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append({"progress": value, "total": total, "message": message})

    callback = on_progress if step.get("progress") else None
    result = dump(
        await session.call_tool(step["name"], step.get("arguments") or {}, progress_callback=callback)
    )
    if callback is not None:
        result["progress"] = progress
    return result


async def run_step(session: ClientSession, step: Any) -> Any:
    if not isinstance(step, dict):
        raise ScenarioError(f"a step must be a JSON object, got {step!r}")
    op = step.get("op")
    try:
        if op == "list_tools":
            return await list_all_tools(session)
        if op == "list":
            return await list_all(session, step["kind"])
        if op == "call_tool":
            return await call_tool(session, step)
        if op == "get_prompt":
            return dump(await session.get_prompt(step["name"], step.get("arguments")))
        if op == "read_resource":
            return dump(await session.read_resource(step["uri"]))
        if op == "subscribe":
            return dump(await session.subscribe_resource(step["uri"]))
        if op == "unsubscribe":
            return dump(await session.unsubscribe_resource(step["uri"]))
        if op == "complete":
            ref = step["ref"]
            if ref["type"] == "ref/prompt":
                reference: Any = types.PromptReference(type="ref/prompt", name=ref["name"])
            else:
                reference = types.ResourceTemplateReference(type="ref/resource", uri=ref["uri"])
            return dump(await session.complete(reference, step["argument"]))
        if op == "set_level":
            return dump(await session.set_logging_level(step["level"]))
        if op == "sleep":
            await asyncio.sleep(step["ms"] / 1000)
            return {}
        if op == "ping":
            return dump(await session.send_ping())
        if op == "listen":
            return await listen(session, step)
        if op == "concurrent":
            nested = step.get("steps")
            if not isinstance(nested, list):
                raise ScenarioError("a concurrent step needs a list under 'steps'")
            # run_step records its own failures, so gather never sees an
            # exception other than a ScenarioError.
            return list(await asyncio.gather(*(run_step(session, s) for s in nested)))
    except MCPError as error:
        return {"error": {"code": error.code, "message": error.message}}
    except ScenarioError:
        raise
    except KeyError as error:
        raise ScenarioError(f"step {step!r} lacks {error}") from error
    except Exception as error:
        # Not a JSON-RPC error, but still the server's doing (for example a
        # result that fails its tool's outputSchema): record it, with no code.
        return {"error": {"code": None, "message": f"{type(error).__name__}: {error}"}}
    raise ScenarioError(f"unknown op {op!r} in step {step!r}")


async def listen(client: Client, step: dict[str, Any]) -> dict[str, Any]:
    events: list[Any] = []
    wanted = step.get("events", 1)
    async with client.listen(resource_subscriptions=step["uris"]) as subscription:
        results = [await run_step(client, nested) for nested in step.get("steps", [])]

        async def collect() -> None:
            async for event in subscription:
                events.append({"type": type(event).__name__, "uri": getattr(event, "uri", None)})
                if len(events) >= wanted:
                    return

        try:
            await asyncio.wait_for(collect(), timeout=10)
        except asyncio.TimeoutError:
            pass
    honored = list(subscription.honored.resource_subscriptions or [])
    return {"honored": honored, "steps": results, "events": events}


def first_text(messages: list[Any]) -> str:
    for message in messages:
        content = message.content
        for block in content if isinstance(content, list) else [content]:
            if getattr(block, "type", None) == "text":
                return block.text
    return ""


async def on_sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled: {first_text(params.messages)}"),
        model="test-model",
    )


async def on_elicitation(context: Any, params: Any) -> types.ElicitResult:
    if getattr(params, "mode", None) == "url":
        return types.ElicitResult(action="accept")
    return types.ElicitResult(action="accept", content={"name": "tester"})


async def on_roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(
        roots=[types.Root(uri="file:///work/a", name="a"), types.Root(uri="file:///work/b")]
    )


CALLBACKS = {
    "sampling": ("sampling_callback", on_sampling),
    "elicitation": ("elicitation_callback", on_elicitation),
    "roots": ("list_roots_callback", on_roots),
}


def http_transport(url: str) -> Any:
    """The SDK's Streamable HTTP transport to URL, with the gateway's bearer token."""
    headers = {"Authorization": f"Bearer {os.environ.get('MCP_HTTP_TOKEN', '')}"}
    return streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))


async def run(
    command: list[str],
    steps: list[Any],
    callbacks: list[str],
    mode: str,
    url: str | None,
    log_level: str | None = None,
) -> dict[str, Any]:
    # The SDK passes only a few safe variables to the server by default; the
    # tests need the whole environment (for example MCP_FIXTURE_NAME or the
    # shim's socket path) to reach the command.
    server: Any = (
        http_transport(url)
        if url is not None
        else StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    )
    notifications: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            notifications.append({"method": None, "params": f"{type(message).__name__}: {message}"})
        else:
            notifications.append(dump(message))

    # Log messages reach message_handler too, so no logging_callback is needed.
    options: dict[str, Any] = {"message_handler": on_message}
    for name in callbacks:
        if name not in CALLBACKS:
            raise ScenarioError(f"unknown callback {name!r}")
        keyword, function = CALLBACKS[name]
        options[keyword] = function
    if mode != "legacy":
        async with Client(server, mode=mode, log_level=log_level, **options) as client:
            initialize = {"protocolVersion": client.protocol_version}
            results = [await run_step(client, step) for step in steps]
        return {"initialize": initialize, "steps": results, "notifications": notifications}
    async with (http_transport(url) if url is not None else stdio_client(server)) as (
        read_stream,
        write_stream,
    ):
        async with ClientSession(read_stream, write_stream, **options) as session:
            initialize = dump(await session.initialize())
            results = [await run_step(session, step) for step in steps]
    return {"initialize": initialize, "steps": results, "notifications": notifications}


def parse_args(argv: list[str]) -> tuple[list[Any], list[str], list[str], str, str | None, str | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", required=True, help="JSON array of steps")
    parser.add_argument("--callbacks", default="", help="comma-separated: sampling,elicitation,roots")
    parser.add_argument("--mode", default="legacy", help="legacy (initialize) or a modern protocol version")
    parser.add_argument("--url", help="a Streamable HTTP endpoint to connect to instead of a command")
    parser.add_argument("--log-level", help="2026-07-28: the log level every request asks for")
    parser.add_argument("command", nargs="*", help="the stdio MCP server to launch, after --")
    args = parser.parse_args(argv)
    try:
        steps = json.loads(args.steps)
    except json.JSONDecodeError as error:
        parser.error(f"--steps is not valid JSON: {error}")
    if not isinstance(steps, list):
        parser.error("--steps must be a JSON array")
    if (args.url is None) == (not args.command):
        parser.error("give either --url or a command after --")
    callbacks = [name for name in args.callbacks.split(",") if name]
    return steps, args.command, callbacks, args.mode, args.url, args.log_level


def describe(error: BaseException) -> str:
    """Name the real causes, which the SDK's task groups wrap in ExceptionGroups."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


def main() -> int:
    steps, command, callbacks, mode, url, log_level = parse_args(sys.argv[1:])
    try:
        document = asyncio.run(run(command, steps, callbacks, mode, url, log_level))
    except Exception as error:
        print(f"mcp_client.py: {describe(error)}", file=sys.stderr)
        return 1
    print(json.dumps(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
