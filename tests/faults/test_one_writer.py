"""R6 and R7: builds for datasets sharing one warehouse never write at once; apply.py fails clearly."""

from __future__ import annotations

import os
import subprocess
import sys

from automations.apply import main as apply_main
from testkit.dummyjson_fake import load_fixture
from tests.support.sensing import accepted_without_event
from testkit.local import using_server, builds

BUILD = "import sys; from automations.dbt_build import dbt_build; dbt_build([sys.argv[1]])"


def test_concurrent_builds_on_one_warehouse_take_turns(settings, prefect_server):
    for table in ("products", "users", "carts"):
        accepted_without_event(settings, f"dummyjson.{table}", load_fixture(table)[:40])
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": prefect_server.api_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD, f"dummyjson.{t}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for t in ("products", "users", "carts")
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
        assert "Could not set lock" not in out and "could not set lock" not in out
    done = sorted((b["started"], b["at"]) for b in builds(settings) if b["status"] == "built")
    assert len(done) == 3
    for (_, end), (start, _) in zip(done, done[1:]):
        assert start >= end, f"two dbt writers overlapped: {done}"


def test_apply_against_an_unreachable_server_exits_1(capsys):

    with using_server("http://127.0.0.1:9/api"):
        assert apply_main([]) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and "make up" in err
