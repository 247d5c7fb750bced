"""A DummyJSON-compatible HTTP server on loopback that pages like the real one and can misbehave on purpose."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dummyjson"  # data files, not an import


def product_rows(tag: str, i: int, n: int = 3) -> bytes:
    """`n` complete products (every column staging selects) with ids of file `i`'s own, so each file's rows survive
    staging's newest-file-per-id rule and must all reach the warehouse."""
    return "".join(
        json.dumps(
            {"id": i * n + k, "title": f"{tag}-{i}-{k}", "price": 1.5, "category": "c", "brand": "b", "stock": 1}
        )
        + "\n"
        for k in range(n)
    ).encode()


def load_fixture(table: str) -> list[dict]:
    return json.loads((FIXTURES / f"{table}.json").read_text())


class DummyJSONServer:
    """Serves /<table>?limit=&skip= from fixture data.

    `faults` is a queue of planned answers consumed one per request: an int status code
    (429 and 503 carry `Retry-After: 0`), "malformed" (broken JSON) or "nolist" (a page
    without its list). `always` answers every request with that status code.
    """

    def __init__(self, tables: dict[str, list[dict]] | None = None):
        self.tables = tables or {t: load_fixture(t) for t in ("products", "carts", "users")}
        self.faults: deque = deque()
        self.always: int | None = None
        self.throttle_until: float = 0.0  # answer 429 (Retry-After: 1) to everything until this time.monotonic()
        self.delay: float = 0.0  # seconds to wait before each answer: a slow API
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                server.requests.append(self.path)
                if server.delay:
                    time.sleep(server.delay)
                url = urlparse(self.path)
                table = url.path.strip("/")
                if time.monotonic() < server.throttle_until:
                    return self._send(429, b'{"message": "too many requests"}', {"Retry-After": "1"})
                fault = (
                    server.always if server.always is not None else (server.faults.popleft() if server.faults else None)
                )
                if isinstance(fault, int):
                    headers = {"Retry-After": "0"} if fault in (429, 503) else {}
                    return self._send(fault, json.dumps({"message": f"fault {fault}"}).encode(), headers)
                if table not in server.tables:
                    return self._send(404, json.dumps({"message": f"Path '/{table}' not found"}).encode())
                q = parse_qs(url.query)
                rows = server.tables[table]
                limit = int(q.get("limit", ["30"])[0])
                skip = int(q.get("skip", ["0"])[0])
                page = rows[skip:] if limit == 0 else rows[skip : skip + limit]
                if fault == "malformed":
                    return self._send(200, b'{"products": [{"id": 1,')
                if fault == "nolist":
                    return self._send(200, json.dumps({"total": len(rows), "skip": skip, "limit": limit}).encode())
                body = {table: page, "total": len(rows), "skip": skip, "limit": len(page)}
                return self._send(200, json.dumps(body).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "DummyJSONServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
