"""An incremental build equals a full build, for generated sequences of files over every declared dataset.

Each example lands files in random batches (new and updated keys, a key twice in one file, children emptied, the
same bytes again, late and out-of-order files, broken files, undeclared and adversarial columns, a contract change,
compaction, a moved landing root), builds incrementally after each batch, then compares every model's table with a
build from scratch of the same accepted files, EXCEPT ALL both ways. A failure shrinks to a minimal sequence.
`make verify-long` runs many more examples (LANDING_EQUIVALENCE_EXAMPLES).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from landing.catalog import load_catalog
from tests.support.equivalence import Run, capture, sequences

EXAMPLES = int(os.environ.get("LANDING_EQUIVALENCE_EXAMPLES", "200"))


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    from landing.settings import REPO_ROOT, Settings

    base = tmp_path_factory.mktemp("capture")
    settings = Settings(root=base / "landing", state_dir=base / "state", dbt_project_dir=REPO_ROOT / "dbt")
    catalog = load_catalog(settings)
    return catalog, settings, capture(settings, catalog)


@pytest.mark.timeout(max(1200, 2 * EXAMPLES))  # 200 pass in about 2.5 min; a failure is shrunk for up to 5 min more
@hsettings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 200,  # the suite's examples are the same every run; verify-long explores
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_incremental_builds_equal_a_build_from_scratch(captured, data):
    catalog, capture_settings, sql = captured
    sequence = data.draw(sequences(catalog))
    work = tempfile.mkdtemp(prefix="equivalence-")
    try:
        from pathlib import Path

        settings = capture_settings.model_copy(update={"root": Path(work) / "z-landing", "state_dir": Path(work) / "s"})
        run = Run(catalog, settings, sql, Path(work))
        warehouse = run.play(sequence)
        run.from_scratch(warehouse)
        differences = warehouse.differences()
        assert not differences, f"incremental (first) and full (second) differ: {differences}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
