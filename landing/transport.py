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
import logging
import os
import ssl
import sys
import time

log = logging.getLogger(__name__)


class TransportError(RuntimeError):
    """The server did not accept the events."""


class EmitError(RuntimeError):
    """The Prefect server did not accept the events."""


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
    async with connect(
        url,
        subprotocols=["prefect"],
        additional_headers=headers,
        ssl=context,
        open_timeout=timeout,
        close_timeout=timeout,
        max_size=None,
        compression=None,
    ) as ws:  # loopback or LAN: deflate costs more CPU than it saves
        await ws.send(json.dumps({"type": "auth", "token": auth_string}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if reply.get("type") != "auth_success":
            raise TransportError(f"the server refused the event stream's credentials: {reply.get('reason') or reply}")
        for text in texts:
            await ws.send(text)
        pong = await ws.ping()
        await asyncio.wait_for(pong, timeout)


def _text(event) -> str:
    if isinstance(event, str):  # already serialized (the outbox stores events as JSON)
        return event
    return event.model_dump_json() if hasattr(event, "model_dump_json") else json.dumps(event)


async def send_events_async(events: list) -> None:
    """Send events (EventData, Prefect Events, or either serialized as JSON) to the Prefect server and wait until it has read them all."""
    if not events:
        return
    url, auth_string, api_key = prefect_api()
    try:
        if not url:
            raise EmitError("PREFECT_API_URL is not set")
        if api_key:  # Prefect Cloud authenticates its own way: use Prefect's client
            await _send_with_prefect_client(events)
        else:
            await send_texts([_text(e) for e in events], url, auth_string)
    except Exception as exc:
        raise EmitError(
            f"could not send {len(events)} event(s) to the Prefect server at {url or '(PREFECT_API_URL unset)'}: "
            f"{str(exc) or type(exc).__name__}. Start the server (make up, or `prefect server start`) and set PREFECT_API_URL."
        ) from exc


async def _send_with_prefect_client(events: list) -> None:
    from landing._upstream import force_checkpoint
    from prefect.events import Event
    from prefect.events.clients import get_events_client

    async with get_events_client(reconnection_attempts=2, checkpoint_every=len(events) + 1) as client:
        for event in events:
            if isinstance(event, str):
                event = Event.model_validate_json(event)
            await client.emit(event if isinstance(event, Event) else Event.model_validate(event))
        await force_checkpoint(client)  # a ping answered after the sends: the server read every event before it


def send_events(events: list) -> None:
    """Blocking form of send_events_async, usable from flows, tasks and plain scripts."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(send_events_async(events))
        return
    from prefect.utilities.asyncutils import run_coro_as_sync

    run_coro_as_sync(send_events_async(events))


def send_patiently(events: list, patience_seconds: float) -> None:
    """send_events, retried with backoff for up to `patience_seconds` while the server is unreachable."""
    deadline = time.monotonic() + patience_seconds
    delay = 0.5
    while True:
        try:
            send_events(events)
            return
        except EmitError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s Retrying in %.1f s (for up to %.0f s in all).", exc, delay, patience_seconds)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
