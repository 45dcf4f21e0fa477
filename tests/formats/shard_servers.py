"""Real servers on 127.0.0.1 for the remote-shard tests: HTTP with Range, and moto's S3.

Both run in threads of the test process and count the requests they get, so tests can check
that a shard was fetched once per node even when worker processes did the fetching.
"""

from __future__ import annotations

import collections
import contextlib
import http.server
import io
import re
import socket
import tarfile
import threading
from typing import Any

import numpy as np


def make_shard(keys: list[str], payload: int = 0) -> bytes:
    """A tar shard whose samples have a ``cls`` (the key's number) and a ``txt`` field."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key in keys:
            for ext, data in (("cls", key.split("-")[-1].lstrip("0") or "0"), ("txt", key)):
                raw = data.encode() + b" " * payload if ext == "txt" else data.encode()
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def make_shards(num_shards: int, per_shard: int, payload: int = 0) -> dict[str, bytes]:
    """``{"/shard-000.tar": bytes, ...}`` with globally numbered samples."""
    out = {}
    n = 0
    for s in range(num_shards):
        keys = [f"s{s:03d}-{n + i:06d}" for i in range(per_shard)]
        n += per_shard
        out[f"/shard-{s:03d}.tar"] = make_shard(keys, payload)
    return out


class ShardHTTPServer:
    """A ThreadingHTTPServer serving ``files`` with HEAD and ``Range: bytes=a-b``.

    ``fail[path] = n`` answers the next ``n`` GETs of ``path`` with 500; ``short[path] = k``
    announces the full length but sends only ``k`` bytes and closes. ``gets[path]`` counts
    the GET requests (each download of a shard is one GET).
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.fail: dict[str, int] = {}
        self.short: dict[str, int] = {}
        self.gets: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _head(self, send_body: bool) -> None:
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if send_body:
                    with outer.lock:
                        outer.gets[self.path] += 1
                        failing = outer.fail.get(self.path, 0)
                        if failing:
                            outer.fail[self.path] = failing - 1
                    if failing:
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                lo, hi = 0, len(body) - 1
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if m:
                    lo = int(m.group(1))
                    hi = min(int(m.group(2)) if m.group(2) else hi, len(body) - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(hi - lo + 1))
                self.end_headers()
                if not send_body:
                    return
                data = body[lo : hi + 1]
                cut = outer.short.get(self.path)
                if cut is not None:
                    self.wfile.write(data[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._head(True)

            def do_HEAD(self) -> None:
                self._head(False)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = False  # server_close() joins the request threads

            def __init__(self, *args: Any) -> None:
                self.connections: list[socket.socket] = []
                super().__init__(*args)

            def process_request(self, request: Any, client_address: Any) -> None:
                self.connections.append(request)
                super().process_request(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ShardHTTPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        for conn in self.httpd.connections:  # end kept-alive connections so their threads end
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.httpd.server_close()
        self.thread.join(10)


class CountingMotoServer:
    """moto's ThreadedMotoServer on 127.0.0.1 with a count of GETs per object path."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.gets: collections.Counter[str] = collections.Counter()
        outer = self

        class Server(ThreadedMotoServer):
            def _server_entry(self) -> None:
                from moto.moto_server.werkzeug_app import (
                    DomainDispatcherApplication,
                    MotoRequestHandler,
                    create_backend_app,
                )
                from werkzeug.serving import make_server

                app = DomainDispatcherApplication(create_backend_app)

                def counted(environ: dict[str, Any], start_response: Any) -> Any:
                    if environ.get("REQUEST_METHOD") == "GET":
                        outer.gets[environ.get("PATH_INFO", "")] += 1
                    return app(environ, start_response)

                self._server = make_server(
                    self._ip_address, self._port, counted, True, request_handler=MotoRequestHandler
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        self.server = Server(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> CountingMotoServer:
        self.server.start()
        return self

    @property
    def endpoint(self) -> str:
        host, port = self.server.get_host_and_port()
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@contextlib.contextmanager
def s3_bucket(monkeypatch: Any, bucket: str, files: dict[str, bytes]) -> Any:
    """A fresh moto S3 endpoint on 127.0.0.1 holding ``files`` in ``bucket``; yields the
    server and the fsspec ``storage_options`` that reach it. Fake credentials come from the
    environment (``monkeypatch``); s3fs's instance cache is cleared at the end."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import urllib.request

    import s3fs

    with CountingMotoServer() as server:
        reset = urllib.request.Request(server.endpoint + "/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()  # moto keeps buckets across servers
        options = {"client_kwargs": {"endpoint_url": server.endpoint}, "skip_instance_cache": True}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir(bucket)
        for path, body in files.items():
            fs.pipe(f"{bucket}{path}", body)
        try:
            yield server, options
        finally:
            s3fs.S3FileSystem.clear_instance_cache()


def keys_of(samples: list[dict[str, Any]]) -> list[str]:
    return [s["__key__"] for s in samples]


def all_keys(files: dict[str, bytes]) -> list[str]:
    out = []
    for body in files.values():
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            out.extend(dict.fromkeys(m.name.split(".")[0] for m in tar.getmembers()))
    return out


def flat(batches: list[Any], field: str = "__key__") -> list[Any]:
    out: list[Any] = []
    for b in batches:
        v = b[field]
        out.extend(v.tolist() if isinstance(v, np.ndarray) else list(v))
    return out
