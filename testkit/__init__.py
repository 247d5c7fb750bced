"""The test and benchmark harness: a Prefect server, a served stack, a loopback DummyJSON. Never imported by the product."""
