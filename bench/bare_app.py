"""The ingest ceiling: a bare ASGI app that decodes a JSON visit and returns 202 with a new id.

It does only what any JSON endpoint must do (read the body, decode it with orjson, send a
small JSON response) and none of footfall's work: no validation, no storage. `bench/run.py`
serves it with the same uvicorn settings as `footfall serve` and compares the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Return 202 for any JSON `POST`, 200 for `GET /healthz` and 404 for other requests."""
    if scope["type"] == "lifespan":
        await _run_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return

    if scope["method"] == "GET" and scope["path"] == "/healthz":
        await _send_json(send, 200, {"status": "ok"})
        return
    if scope["method"] != "POST":
        await _send_json(send, 404, {"detail": "not found"})
        return

    body = await _read_body(receive)
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as error:
        await _send_json(send, 400, {"detail": f"invalid JSON: {error}"})
        return
    await _send_json(send, 202, {"id": uuid.uuid4().hex})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    # footfall sends content-length too. Without it, uvicorn would use chunked encoding.
    body = orjson.dumps(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
