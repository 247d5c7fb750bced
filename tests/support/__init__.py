"""Real components for the tests: a DummyJSON server on loopback and a Prefect server process."""
