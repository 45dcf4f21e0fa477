"""Shared fixtures: a real HTTP server on 127.0.0.1 whose answers each test scripts."""

from __future__ import annotations

import dataclasses
import http.server
import re
import threading
import time
from collections.abc import Iterator

import pytest


@dataclasses.dataclass
class Route:
    """A file served at one path, and a script of how to answer successive requests.

    Script actions (one per request; "ok" once the script is used up):
    "ok" (honours Range), "ignore-range" (always the full body, status 200), "500", "404",
    "truncate" (announce the full length, send half, close), "stall" (send half, then hang
    until the server stops), "corrupt" (a body of the right length with wrong bytes),
    "slow" (the body in 20 pieces, 20 ms apart), "cut=N" (announce the full length, send N
    bytes, close the connection).
    """

    body: bytes
    script: list[str] = dataclasses.field(default_factory=list)
    requests: list[dict[str, str]] = dataclasses.field(default_factory=list)


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread; see :class:`Route`."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.stopping = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # silence
                pass

            def do_GET(self) -> None:
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route.requests.append(dict(self.headers.items()))
                action = route.script.pop(0) if route.script else "ok"
                if action in ("500", "404"):
                    self.send_error(int(action))
                    return
                body = route.body
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if m and action != "ignore-range" and int(m.group(1)) <= len(body):
                    start = int(m.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                if action == "corrupt":
                    payload = bytes(b ^ 0xFF for b in payload)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if action.startswith("cut="):
                    self.wfile.write(payload[: int(action[4:])])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if action == "slow":
                    step = -(-len(payload) // 20)
                    for k in range(0, len(payload), step):
                        self.wfile.write(payload[k : k + step])
                        self.wfile.flush()
                        time.sleep(0.02)
                    return
                if action in ("truncate", "stall"):
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    if action == "stall":
                        server.stopping.wait(30)
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def add(self, path: str, body: bytes, script: list[str] | None = None) -> Route:
        route = Route(body, list(script or []))
        self.routes[path] = route
        return route

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    server = LocalServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True, scope="session")
def _no_jax_in_this_process() -> Iterator[None]:
    """JAX starts threads when imported, and worker tests fork this process: a fork after
    JAX's threads can deadlock. Tests that need JAX run it in a child process."""
    yield
    import sys

    assert "jax" not in sys.modules, "a test imported jax into the pytest process"
