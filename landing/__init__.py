"""Shared package: the landing contract, settings and the dataset catalog derived from dbt."""
