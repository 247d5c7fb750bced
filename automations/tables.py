"""The warehouse's own tables (schema `landing`), named once for the loader, compaction and the ops commands."""

SCHEMA = "landing"
HISTORY = f"{SCHEMA}.load_history"  # a row per loaded accepted file: its load id, rows, run and compacted part
DRIFT = f"{SCHEMA}.schema_drift"  # per dataset and undeclared column: how many files carried it, first and last
SEQUENCE = f"{SCHEMA}.load_ids"  # load ids, never reused
PARTS = (
    f"{SCHEMA}.compacted_parts"  # parts whose rows are in the raw table (a reload empties it: each part loads again)
)
LOAD_MARKS = (
    f"{SCHEMA}.load_marks"  # a row per dataset: its highest load id, files loaded and newest file (O(1) a build)
)
LAKE_OUTBOX = (
    f"{SCHEMA}.lake_outbox"  # (dataset, what) the lake's copy of the history and drift must take besides new rows
)
REFRESH_DUE = (
    f"{SCHEMA}.refresh_due"  # datasets loaded again whose models have not been built from scratch since (a row each)
)
