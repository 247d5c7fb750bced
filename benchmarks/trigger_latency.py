"""How long a Prefect server takes from an automation firing to the flow run it creates, for a trigger shaped like ours.

A fresh server, one automation on `test.ping` that runs the landing-stale deployment (nothing serves it: only the
server's side is measured), pings a few seconds apart, then the server's own events: `prefect.automation.triggered`
and `prefect.flow-run.Scheduled`, relative to each ping. `--profile` records the server with py-spy meanwhile.

    uv run python -m benchmarks.trigger_latency --within 3 --pings 6
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from testkit.local import PrefectServer, using_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trigger_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--within", type=float, default=0.0, help="the reactive trigger's window, seconds (ours: 3)")
    parser.add_argument("--trailing", action="store_true", help="add our second action (schedule_after=within)")
    parser.add_argument("--pings", type=int, default=6)
    parser.add_argument("--gap", type=float, default=5.0, help="seconds between pings (more than --within)")
    parser.add_argument("--profile", type=Path, help="write a py-spy raw profile of the server here")
    parser.add_argument("--server-log", type=Path, help="copy the server's log here (PREFECT_LOGGING_SERVER_LEVEL)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        server = PrefectServer(Path(home)).start()
        try:
            with using_server(server.api_url):
                delays = _measure(server, args)
        finally:
            server.stop()
            if args.server_log:
                args.server_log.write_bytes(server.log.read_bytes())
    print(
        f"within={args.within:g}s trailing={args.trailing}: automation.triggered → flow-run.Scheduled, per ping: "
        + " ".join(f"{d:.2f}" for d in delays)
    )
    print(f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s")


def _measure(server: PrefectServer, args) -> list[float]:
    from prefect.client.orchestration import get_client
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    from automations.serve import deployments
    from landing.transport import send_events

    stale = deployments()[1].apply()
    params = {"dataset": "x", "expected_every_seconds": 10}
    actions = [RunDeployment(source="selected", deployment_id=stale, parameters=params)]
    if args.trailing:
        actions.append(
            RunDeployment(
                source="selected", deployment_id=stale, parameters=params, schedule_after=timedelta(seconds=args.within)
            )
        )

    async def create():
        async with get_client() as client:
            await client.create_automation(
                AutomationCore(
                    name="latency probe",
                    actions=actions,
                    trigger=EventTrigger(
                        expect={"test.ping"},
                        posture=Posture.Reactive,
                        threshold=1,
                        within=timedelta(seconds=args.within),
                    ),
                )
            )

    asyncio.run(create())
    time.sleep(3)
    profiler = None
    if args.profile:
        profiler = subprocess.Popen(
            [
                "py-spy",
                "record",
                "--idle",
                "-r",
                "50",
                "-f",
                "raw",
                "-o",
                str(args.profile),
                "-p",
                str(server.proc.pid),
                "-d",
                str(int(args.pings * args.gap + 5)),
                "--subprocesses",
            ]
        )
        time.sleep(2)
    since = datetime.now(timezone.utc)
    for i in range(args.pings):
        send_events(
            [
                {
                    "id": str(uuid.uuid4()),
                    "occurred": datetime.now(timezone.utc).isoformat(),
                    "event": "test.ping",
                    "resource": {"prefect.resource.id": f"test.ping.{i}"},
                    "related": [],
                    "payload": {},
                }
            ]
        )
        time.sleep(args.gap)
    if profiler:
        profiler.wait()
    time.sleep(3)
    events = sorted(asyncio.run(_events_since(since - timedelta(seconds=1))), key=lambda e: e.occurred)
    delays, triggered = [], None
    for e in events:
        if e.event == "prefect.automation.triggered":
            triggered = e.occurred
        elif e.event == "prefect.flow-run.Scheduled" and triggered is not None:
            delays.append((e.occurred - triggered).total_seconds())
            triggered = None  # the first run of each firing
    return delays


async def _events_since(since):
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventOccurredFilter

    async with get_client() as client:
        page = await client.read_events(filter=EventFilter(occurred=EventOccurredFilter(since=since)), limit=50)
        events = list(page.events)
        while page.next_page:
            page = await client.read_events_page(page.next_page)
            events.extend(page.events)
        return events


if __name__ == "__main__":
    main()
