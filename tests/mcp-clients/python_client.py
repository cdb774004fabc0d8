"""Runs MCP steps against a server with the official Python SDK's client, prints their results.

    python_client.py URL KEY MODE STEPS_JSON

MODE is the SDK's connect mode (`auto`, `legacy`, or a pinned revision). STEPS_JSON is a list of
`{"list_tools": true}` or `{"tool": NAME, "args": {...}}`. The output is one JSON object:
`{"protocol_version": ..., "steps": [...]}`, each step `{"tools": [names]}`, or `{"is_error",
"structured", "text"}` for a call, or `{"protocol_error": {"code", "message"}}`.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


async def run(url: str, key: str, mode: str, steps: list) -> dict:
    results = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode) as client:
            for step in steps:
                try:
                    if step.get("list_tools"):
                        listed = await client.list_tools()
                        results.append(
                            {
                                "tools": [tool.name for tool in listed.tools],
                                "definitions": [tool.model_dump(by_alias=True, exclude_none=True) for tool in listed.tools],
                            }
                        )
                    else:
                        result = await client.call_tool(step["tool"], step.get("args", {}))
                        text = "".join(getattr(block, "text", "") for block in result.content)
                        results.append(
                            {
                                "is_error": bool(result.is_error),
                                "structured": result.structured_content,
                                "text": text,
                            }
                        )
                except MCPError as error:
                    results.append({"protocol_error": {"code": error.error.code, "message": error.error.message}})
            return {"protocol_version": client.protocol_version, "steps": results}


def main() -> None:
    url, key, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    print(json.dumps(asyncio.run(run(url, key, mode, steps))))


if __name__ == "__main__":
    main()
