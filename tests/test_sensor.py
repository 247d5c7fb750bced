"""The sensor, scenario by scenario: a real watchdog observer on real folders and a real Prefect server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from landing.contract import land_rows
from landing.events import FILE_CREATED, FILE_REJECTED
from landing.ledger import Ledger, ledger_path
from testkit.local import PrefectServer, read_events, using_server, wait_for
from tests.support.sensing import Harness, rows


@pytest.fixture
def harness(sensor_settings, prefect_server):
    h = Harness(sensor_settings)
    yield h
    h.stop()


@pytest.fixture
def polling_harness(sensor_settings, prefect_server):
    h = Harness(sensor_settings, polling=True)
    yield h
    h.stop()


def write_slowly(path: Path, data: bytes, chunks: int = 4, pause: float = 0.4):
    step = max(1, len(data) // chunks)
    with open(path, "wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(pause)


def test_first_file_one_event(harness):
    harness.start()
    (harness.folder / "first.jsonl").write_bytes(rows("first"))
    [event] = harness.events(expect=1)
    assert event.payload["dropped_as"] == "dummyjson/products/first.jsonl"
    accepted = Path(event.payload["path"])
    assert accepted.read_bytes() == rows("first") and not (harness.folder / "first.jsonl").exists()
    assert accepted.parent == harness.settings.accepted / "dummyjson" / "products"
    assert event.payload["relative_path"] == f"dummyjson/products/{accepted.name}"
    assert event.payload["producer"] == "sensor" and event.payload["rows"] == 3
    assert len(harness.quiet_events()) == 1


def test_nothing_new_no_event(harness):
    (harness.folder / "old.jsonl").write_bytes(rows("nothing-new"))
    harness.start()
    assert len(harness.events(expect=1)) == 1
    harness.stop()
    harness.start()  # the ledger knows the file: a restart announces nothing
    assert len(harness.quiet_events()) == 1


def test_same_content_again_no_event(harness):
    harness.start()
    (harness.folder / "a.jsonl").write_bytes(rows("same"))
    assert len(harness.events(expect=1)) == 1
    (harness.folder / "b.jsonl").write_bytes(rows("same"))
    harness.sensor.drain()
    (harness.folder / "b.jsonl").touch()
    assert len(harness.quiet_events()) == 1
    ledger = Ledger(ledger_path(harness.settings.state_dir))
    statuses = {Path(r.path).name: r.status for r in ledger.rows()}
    assert statuses == {"a.jsonl": "announced", "b.jsonl": "duplicate"}
    assert sorted(p.name for p in harness.folder.iterdir()) == ["b.jsonl"], "a duplicate stays where it was dropped"


def test_changed_file_at_same_path_is_a_new_event(harness):
    harness.start()
    (harness.folder / "c.jsonl").write_bytes(rows("changed-1"))
    assert len(harness.events(expect=1)) == 1
    (harness.folder / "c.jsonl").write_bytes(rows("changed-2", 4))
    events = harness.events(expect=2)
    assert sorted(e.payload["rows"] for e in events) == [3, 4]


def test_temp_file_renamed_into_place_one_event(harness):
    harness.start()
    tmp = harness.folder / ".incoming.jsonl.tmp"
    write_slowly(tmp, rows("renamed", 20))
    assert harness.quiet_events() == []
    os.rename(tmp, harness.folder / "renamed.jsonl")
    [event] = harness.events(expect=1)
    assert event.payload["dropped_as"].endswith("/renamed.jsonl") and event.payload["rows"] == 20
    for name in ("x.part", "x.jsonl~", ".hidden.jsonl"):
        (harness.folder / name).write_bytes(rows("ignored-" + name))
    assert len(harness.quiet_events()) == 1


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_slow_writer_one_event_after_close(mode, harness, polling_harness):
    h = polling_harness if mode == "polling" else harness
    h.start()
    write_slowly(h.folder / "slow.jsonl", rows(f"slow-{mode}", 40), chunks=5, pause=0.3)
    [event] = h.events(expect=1)
    assert event.payload["rows"] == 40
    assert len(h.quiet_events()) == 1


def test_polling_first_file(polling_harness):
    polling_harness.start()
    (polling_harness.folder / "p.jsonl").write_bytes(rows("polling-first"))
    [event] = polling_harness.events(expect=1)
    assert event.payload["dropped_as"] == "dummyjson/products/p.jsonl"


def test_files_dropped_while_stopped_are_caught_up(harness):
    harness.start()
    harness.stop()
    for i in range(3):
        (harness.folder / f"while-down-{i}.jsonl").write_bytes(rows(f"down-{i}"))
    harness.start()
    events = harness.events(expect=3)
    assert sorted(e.payload["dropped_as"].rsplit("/", 1)[1] for e in events) == [
        f"while-down-{i}.jsonl" for i in range(3)
    ]
    assert len(harness.quiet_events()) == 3


def test_malformed_file_is_quarantined_and_good_files_flow(harness):
    harness.start()
    (harness.folder / "bad.jsonl").write_bytes(b'{"id": 1, "title": "x", "price": 1}\n{"id": 2,\n')
    (harness.folder / "good.jsonl").write_bytes(rows("good-next-to-bad"))
    [rejected] = harness.events(FILE_REJECTED, expect=1)
    assert "Malformed JSON in file" in rejected.payload["reason"] and "bad.jsonl" in rejected.payload["reason"]
    q = Path(os.path.realpath(harness.settings.root)) / "_quarantine" / "dummyjson.products"
    assert (q / "bad.jsonl").exists() and not (harness.folder / "bad.jsonl").exists()
    assert "unexpected end of data" in (q / "bad.jsonl.reason.txt").read_text()
    [created] = harness.events(expect=1)
    assert created.payload["dropped_as"].endswith("/good.jsonl")


def test_symlink_escaping_the_root_is_refused(harness, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(rows("outside"))
    harness.start()
    (harness.folder / "escape.jsonl").symlink_to(outside)
    assert harness.quiet_events() == [] and harness.quiet_events(FILE_REJECTED) == []
    assert outside.read_bytes() == rows("outside") and (harness.folder / "escape.jsonl").is_symlink()


def test_flow_landed_file_is_not_announced_again(harness):
    harness.start()
    landed = land_rows("dummyjson.products", [{"id": 1, "title": "flow", "price": 2}], "test:flow", harness.settings)
    [event] = harness.events(expect=1)
    assert event.payload["producer"] == "test:flow"
    harness.sensor.drain()
    ledger = Ledger(ledger_path(harness.settings.state_dir))
    [record] = ledger.rows()
    assert record.path == landed.path == record.accepted_path and record.status == "announced"
    assert len(harness.quiet_events()) == 1


def test_server_down_while_files_drop_then_back(sensor_settings, tmp_path):
    """The sensor runs as `python -m sensors`; its server stops, 20 files drop, the server returns."""

    server = PrefectServer(tmp_path / "own-prefect").start()
    env = {**os.environ, **sensor_settings.to_env(), "PREFECT_API_URL": server.api_url, "LANDING_SETTLE_SECONDS": "1"}
    log = open(tmp_path / "sensor.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "sensors"], env=env, stdout=log, stderr=subprocess.STDOUT)
    folder = sensor_settings.root / "dummyjson" / "products"
    try:
        wait_for(lambda: b"watching" in (tmp_path / "sensor.log").read_bytes(), 60, "the sensor to start")
        server.stop()
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        for i in range(20):
            (folder / f"outage-{i:02d}.jsonl").write_bytes(rows(f"outage-{i}"))
        wait_for(
            lambda: b"waiting for the server" in (tmp_path / "sensor.log").read_bytes(), 60, "the sensor to notice"
        )
        time.sleep(3)
        server.start()
        with using_server(server.api_url):
            events = read_events(FILE_CREATED, since, "landing.dataset.", timeout=90, expect=20)
        names = sorted(e.payload["dropped_as"].rsplit("/", 1)[1] for e in events)
        assert names == [f"outage-{i:02d}.jsonl" for i in range(20)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()


def test_once_decides_the_backlog_sends_its_events_and_exits(sensor_settings, prefect_server, tmp_path):
    """`python -m sensors --once`: files that waited in the drop folder are decided and announced, then it exits 0,
    without watching (no observer competes with the catch-up)."""
    folder = sensor_settings.root / "dummyjson" / "products"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"waited-{i}.jsonl").write_bytes(rows(f"once-{tmp_path.name}-{i}"))
    (folder / "broken.jsonl").write_bytes(b'{"id": 1, "title": \n')
    old = time.time() - 60
    for p in folder.iterdir():
        os.utime(p, (old, old))
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    env = {**os.environ, **sensor_settings.to_env(), "PREFECT_API_URL": prefect_server.api_url}
    done = subprocess.run(
        [sys.executable, "-m", "sensors", "--once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "catching up once" in done.stdout and "watching" not in done.stdout
    assert "stopped; 0 event(s) left in the ledger" in done.stdout
    ledger = Ledger(ledger_path(sensor_settings.state_dir))
    assert sorted((Path(r.path).name, r.status) for r in ledger.rows()) == [
        ("broken.jsonl", "quarantined"),
        *[(f"waited-{i}.jsonl", "announced") for i in range(3)],
    ]
    assert not list(folder.iterdir()), "every file was moved: accepted or quarantined"
    accepted = sensor_settings.accepted / "dummyjson" / "products"  # what dbt reads: the good files, whole
    assert sorted(p.read_bytes() for p in accepted.iterdir()) == sorted(
        rows(f"once-{tmp_path.name}-{i}") for i in range(3)
    )
    created = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.products", timeout=60, expect=3)
    assert sorted(e.payload["dropped_as"] for e in created) == [
        f"dummyjson/products/waited-{i}.jsonl" for i in range(3)
    ]
    assert read_events(FILE_REJECTED, since, "landing.dataset.dummyjson.products", timeout=60, expect=1)


@pytest.mark.parametrize("copier", ["copy", "copy2", "copyfile+utime", "copyfile+20ms+utime"])
def test_a_writer_that_sets_attributes_after_closing_never_fails(copier, harness, tmp_path):
    """shutil.copy sets the mode by path after its close, copy2 the times too, and wget or `curl -R` set the times:
    the sensor waits for the writer's quiet before it moves the file, so none of these calls meets a missing file.

    The promise is for a follow-up within `LANDING_CLOSE_QUIET_SECONDS` of the close. A copy whose whole call (copy
    and follow-up) took longer than that on a loaded machine proves nothing either way and is not counted; every copy
    that kept within it must succeed, and most must keep within it for the test to mean anything."""
    import shutil

    harness.start()
    quiet = harness.settings.close_quiet_seconds
    source_dir = tmp_path / "outside"
    source_dir.mkdir()
    errors, counted = [], 0
    for i in range(50):
        src = source_dir / f"{copier}-{i}.jsonl"
        src.write_bytes(rows(f"race-{copier}-{i}", 2))
        dest = harness.folder / src.name
        started = time.monotonic()
        try:
            if copier == "copy":
                shutil.copy(src, dest)
            elif copier == "copy2":
                shutil.copy2(src, dest)
            else:  # a downloader that sets the times it got from the server, a moment after its close
                shutil.copyfile(src, dest)
                if "20ms" in copier:
                    time.sleep(0.02)
                os.utime(dest, (1_700_000_000, 1_700_000_000))
            failed = None
        except OSError as exc:
            failed = f"{src.name}: {exc!r}"
        if time.monotonic() - started < quiet:  # the follow-up came within the quiet window: it must not fail
            counted += 1
            if failed:
                errors.append(failed)
    assert errors == []
    assert counted >= 25, f"only {counted} of 50 copies kept within {quiet} s: the machine is too loaded to tell"

    def decided():
        ledger = Ledger(ledger_path(harness.settings.state_dir))
        try:
            return [r for r in ledger.rows() if os.path.basename(r.path).startswith(copier + "-")]
        finally:
            ledger.close()

    mine = wait_for(lambda: len(decided()) >= 50 and decided(), 60, "every copy decided")
    assert sorted(os.path.basename(r.path) for r in mine) == sorted(f"{copier}-{i}.jsonl" for i in range(50))
    assert {r.status for r in mine} <= {"pending", "announced"}, [(r.path, r.status, r.reason) for r in mine]
    assert not list(harness.folder.glob(f"{copier}-*")), "every file accepted"
