"""Scenario runner for end-to-end tests: drive a stdio MCP server with the official Python SDK.

The gateway's Rust tests use this to check that a real third-party client (the
`mcp` package, 2.x) can talk to `mcp-shim` and, through it, to the containers.
It launches COMMAND as a stdio MCP server, performs the legacy `initialize`
handshake with `mcp.ClientSession`, runs a JSON list of steps in order, and
prints a single JSON document to stdout:

    {"initialize": <InitializeResult>, "steps": [<one result per step>]}

Usage:
    python3 mcp_client.py --steps STEPS_JSON -- COMMAND [ARG...]

Steps:
    {"op": "list_tools"}                                  -> {"tools": [...]}, all pages
    {"op": "call_tool", "name": N, "arguments": {...}}    -> the CallToolResult
    {"op": "concurrent", "steps": [...]}                  -> list of nested results,
                                                             run at once on one session
    {"op": "ping"}                                        -> {}

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
from mcp import ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client


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


async def run_step(session: ClientSession, step: Any) -> Any:
    if not isinstance(step, dict):
        raise ScenarioError(f"a step must be a JSON object, got {step!r}")
    op = step.get("op")
    try:
        if op == "list_tools":
            return await list_all_tools(session)
        if op == "call_tool":
            result = await session.call_tool(step["name"], step.get("arguments") or {})
            return dump(result)
        if op == "ping":
            return dump(await session.send_ping())
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


async def run(command: list[str], steps: list[Any]) -> dict[str, Any]:
    # The SDK passes only a few safe variables to the server by default; the
    # tests need the whole environment (for example MCP_FIXTURE_NAME or the
    # shim's socket path) to reach the command.
    server = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with stdio_client(server) as (read_stream, write_stream):
        async with ClientSession(read_stream, write_stream) as session:
            initialize = dump(await session.initialize())
            results = [await run_step(session, step) for step in steps]
    return {"initialize": initialize, "steps": results}


def parse_args(argv: list[str]) -> tuple[list[Any], list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", required=True, help="JSON array of steps")
    parser.add_argument("command", nargs="+", help="the stdio MCP server to launch, after --")
    args = parser.parse_args(argv)
    try:
        steps = json.loads(args.steps)
    except json.JSONDecodeError as error:
        parser.error(f"--steps is not valid JSON: {error}")
    if not isinstance(steps, list):
        parser.error("--steps must be a JSON array")
    return steps, args.command


def describe(error: BaseException) -> str:
    """Name the real causes, which the SDK's task groups wrap in ExceptionGroups."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


def main() -> int:
    steps, command = parse_args(sys.argv[1:])
    try:
        document = asyncio.run(run(command, steps))
    except Exception as error:
        print(f"mcp_client.py: {describe(error)}", file=sys.stderr)
        return 1
    print(json.dumps(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
