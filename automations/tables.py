"""The warehouse's own tables (schema `landing` of the lake), named once for the loader, compaction and the ops commands."""

SCHEMA = "landing"
HISTORY = f"{SCHEMA}.load_history"  # a row per loaded accepted file: its load id, rows, run and compacted part
DRIFT = f"{SCHEMA}.schema_drift"  # per dataset and undeclared column: how many files carried it, first and last
COUNTER = f"{SCHEMA}.load_counter"  # the next load id (DuckLake has no sequences): one row, moved by every load
PARTS = (
    f"{SCHEMA}.compacted_parts"  # parts whose rows are in the raw table (a reload empties it: each part loads again)
)
LOAD_MARKS = (
    f"{SCHEMA}.load_marks"  # a row per dataset: its highest load id, files loaded and newest file (O(1) a build)
)
REFRESH_DUE = (
    f"{SCHEMA}.refresh_due"  # datasets loaded again whose models have not been built from scratch since (a row each)
)
MODEL_MARKS = f"{SCHEMA}.model_marks"  # a row per staging model: the highest load id its build read
MODEL_MARKS_COLUMNS = "(model varchar, high bigint)"
BOOKKEEPING = (  # the landing schema's own tables (the rest are raw tables)
    "load_history",
    "schema_drift",
    "load_counter",
    "compacted_parts",
    "load_marks",
    "refresh_due",
    "model_marks",
)
