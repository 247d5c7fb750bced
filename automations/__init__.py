"""Automations: the dbt build deployment and the declarative trigger sync (apply.py)."""
