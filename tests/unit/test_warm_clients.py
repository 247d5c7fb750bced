"""The warm runner's Prefect clients share one SSL context per CA bundle instead of loading the bundle for each."""

from __future__ import annotations

import ssl


def test_clients_made_after_sharing_load_the_ca_bundle_once(monkeypatch):
    import prefect.client.orchestration as orchestration
    from prefect.client.orchestration import get_client

    from automations._upstream import share_tls_contexts

    from prefect.settings import PREFECT_API_URL, temporary_settings

    # never called: clients are only made. Set in Prefect's settings context, not only the environment: the context is
    # read at import, and without a URL there `get_client` starts an ephemeral server (30 s on a fresh machine)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        _check_sharing(monkeypatch, orchestration, get_client, share_tls_contexts)


def _check_sharing(monkeypatch, orchestration, get_client, share_tls_contexts):
    monkeypatch.setattr(orchestration, "ssl", orchestration.ssl)  # undone after the test
    loads = []
    made = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: loads.append(k) or made(*a, **k))
    get_client(sync_client=True)
    get_client(sync_client=True)
    assert len(loads) >= 2  # Prefect's own: a CA bundle load per client (about 40 ms each)

    loads.clear()
    share_tls_contexts()
    share_tls_contexts()  # twice is once
    clients = [get_client(sync_client=True), get_client(sync_client=True), get_client()]
    assert len(loads) <= 1, loads
    contexts = {id(c._client._transport._pool._ssl_context) for c in clients}
    assert len(contexts) == 1
    assert orchestration.ssl.SSLContext is ssl.SSLContext  # the rest of the ssl module is the module's
