"""The floor: the minimal signalling relay a developer would write with asyncio `websockets`.

`python bench/floor_relay.py PORT` serves ws://127.0.0.1:PORT/?user=<id>. Each text frame is JSON
with a `to` user id; the relay adds `from` and forwards it to every socket of that user. No auth,
no validation, no database: what Parley is measured against. Like Parley, it declines
permessage-deflate (`compression=None`): the library's default would give the floor per-socket zlib
state and per-frame compression that Parley does not do, and flatter Parley in the comparison.
"""

from __future__ import annotations

import asyncio
import json
import sys
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

sockets: dict[int, set[ServerConnection]] = {}


async def handler(ws: ServerConnection) -> None:
    """Register the socket under its user and forward what it sends."""
    query = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
    user = int(query.get("user", ["0"])[0])
    sockets.setdefault(user, set()).add(ws)
    try:
        async for text in ws:
            message = json.loads(text)
            message["from"] = user
            out = json.dumps(message)
            for target in sockets.get(int(message.get("to", 0)), ()):
                await target.send(out)
    finally:
        sockets[user].discard(ws)


PAGE = (Path(__file__).resolve().parent / "floor_page.html").read_bytes()


def page(connection: ServerConnection, request: Request) -> Response | None:
    """Serve the floor's call page (bench/call_setup.py) to plain HTTP requests."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    response = connection.respond(HTTPStatus.OK, "")
    response.body = PAGE
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    del response.headers["Content-Length"]
    response.headers["Content-Length"] = str(len(PAGE))
    return response


async def main(port: int) -> None:
    """Serve until killed."""
    async with serve(
        handler,
        "127.0.0.1",
        port,
        max_size=65536,
        ping_interval=25,
        process_request=page,
        compression=None,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
