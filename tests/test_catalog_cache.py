"""A cold or changed catalog cache, loaded by many processes at once (make up starts several): all agree, none fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from landing.settings import REPO_ROOT

LOAD = (
    "import json; from landing.catalog import load_catalog; c = load_catalog(); "
    "print(json.dumps({n: [d.folder, d.accepted_folder, d.columns, d.required] for n, d in sorted(c.datasets.items())}))"
)


def test_eight_processes_load_a_changed_project_at_once_and_agree(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    env = {**os.environ, "LANDING_DBT_PROJECT_DIR": str(project), "LANDING_ROOT": str(tmp_path / "landing")}
    sources = project / "models" / "staging" / "dummyjson" / "__sources.yml"
    for round_ in range(1):  # the copy's cache is cold, and the project changed
        sources.write_text(sources.read_text() + f"\n# round {round_}\n")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", LOAD],
                env=env,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        results = [(p.wait(240), *p.communicate()) for p in procs]
        for code, out, err in results:
            assert code == 0, err[-3000:]
        catalogs = {out for _, out, _ in results}
        assert len(catalogs) == 1, "every process must get the same catalog"
        assert "dummyjson.products" in json.loads(catalogs.pop())
    assert not [p for p in (project / "target").iterdir() if p.name.startswith(".landing-parse-")], (
        "no parse folder left"
    )
