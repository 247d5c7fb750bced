"""kill -9 the build in the middle of loading a burst, then build again: every row once, one history row per file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


from automations.dbt_build import dbt_build
from landing.catalog import load_catalog
from landing import lake
from testkit.dummyjson_fake import product_rows
from testkit.local import builds, dbt_environment, wait_for

BUILD = "from automations.dbt_build import dbt_build; dbt_build(['dummyjson.products'])"
FILES = 5000


def test_kill_9_mid_load_then_a_build_loads_every_file_once(settings, prefect_server, tmp_path):
    folder = load_catalog(settings).get("dummyjson.products").accepted_path
    folder.mkdir(parents=True)
    # ten chunks of 500: the kill lands after the first commit, well before the last (a chunk takes about 0.2 s, and
    # the poll below looks every 0.05 s)
    for i in range(FILES):
        (folder / f"20261201T000000{i:06d}Z-burst.jsonl").write_bytes(product_rows("killed", i))
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": prefect_server.api_url}
    log = tmp_path / "build.log"
    proc = subprocess.Popen([sys.executable, "-c", BUILD], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: f"loaded 500 of {FILES} new files".encode() in log.read_bytes() or proc.poll() is not None,
            120,
            "the first chunk loaded",
            interval=0.05,
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    assert f"loaded {FILES} of {FILES}".encode() not in log.read_bytes(), "the kill came too late to interrupt the load"

    with dbt_environment(settings):  # the next build, after the killed one's slot lease expired
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
    with lake.connect(settings) as con:
        history = con.execute(
            "select count(*), count(distinct accepted_file), sum(rows) from landing.load_history"
        ).fetchone()
        staged = con.execute(
            "select count(*), count(distinct product_id) from stage_dummyjson__products "
            "where product_name like 'killed-%'"
        ).fetchone()
    with lake.connect(settings) as con:  # the raw table, in the lake
        raw = con.execute("select count(*), count(distinct id) from landing.dummyjson__products").fetchone()
    assert history == (FILES, FILES, 3 * FILES), "one history row per file, each file's rows counted once"
    assert raw == (3 * FILES, 3 * FILES) and staged == (3 * FILES, 3 * FILES), "every good row exactly once"
    again = builds(settings)[-1]["loaded"]["dummyjson.products"]
    assert again % 500 == 0 and 0 < again < FILES, (
        f"the next build loaded {again} files: only those the killed one had not committed"
    )
