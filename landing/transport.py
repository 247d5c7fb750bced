"""Sending events to a Prefect server's event stream (`/events/in`), without importing Prefect.

Prefect's own events client costs a process about 4 s of imports and 80 MB before its first event, and turns every
event into a pydantic model twice. The sensor sends thousands of events at a time, already serialized in its
outbox, so it speaks the same websocket protocol Prefect's client speaks (the "prefect" subprotocol, an auth
message, one JSON text per event, a ping answered after the last one as the checkpoint). Prefect Cloud
(PREFECT_API_KEY set) goes through Prefect's client instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys


class TransportError(RuntimeError):
    """The server did not accept the events."""


def prefect_api() -> tuple[str | None, str | None, str | None]:
    """(API URL, basic-auth string, API key): Prefect's settings when Prefect is loaded (flows, tests), else the
    PREFECT_* environment variables Prefect itself would read (the sensor, which never imports it)."""
    if "prefect.settings" in sys.modules:
        from prefect.settings import get_current_settings

        api = get_current_settings().api
        secret = lambda value: value.get_secret_value() if value is not None else None  # noqa: E731
        return api.url, secret(api.auth_string), secret(api.key)
    env = os.environ
    return env.get("PREFECT_API_URL"), env.get("PREFECT_API_AUTH_STRING"), env.get("PREFECT_API_KEY")


def events_url(api_url: str) -> str:
    scheme, rest = api_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/events/in"


async def send_texts(texts: list[str], api_url: str, auth_string: str | None = None, timeout: float = 15.0) -> None:
    """Send serialized events and return once the server has read them all (its answer to a ping sent after them)."""
    from websockets.asyncio.client import connect

    url = events_url(api_url)
    headers = {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()} if auth_string else None
    context = ssl.create_default_context() if url.startswith("wss:") else None
    async with connect(url, subprotocols=["prefect"], additional_headers=headers, ssl=context,
                       open_timeout=timeout, close_timeout=timeout, max_size=None,
                       compression=None) as ws:  # loopback or LAN: deflate costs more CPU than it saves
        await ws.send(json.dumps({"type": "auth", "token": auth_string}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if reply.get("type") != "auth_success":
            raise TransportError(f"the server refused the event stream's credentials: {reply.get('reason') or reply}")
        for text in texts:
            await ws.send(text)
        pong = await ws.ping()
        await asyncio.wait_for(pong, timeout)
