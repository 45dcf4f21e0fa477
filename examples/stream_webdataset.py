"""Stream WebDataset tar shards from an HTTP server, with a node-local cache and exact resume.

The script packs a small image dataset into shards with ``chute.formats.write_webdataset``,
serves them from a local HTTP server (Python's own ``http.server``, on 127.0.0.1), and trains
a pretend model on them for two epochs with ``chute.DataLoader``: shards are downloaded once
into the cache and read from it in the second epoch. Halfway through, it saves the loader's
state and shows that a new loader resumes at exactly the next batch.

Run it with ``python examples/stream_webdataset.py``; point ``--url`` at your own server or
bucket (``s3://bucket/train-{000000..000099}.tar``) to stream real shards.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import tempfile
import threading
from typing import ClassVar

import numpy as np

import chute
from chute.formats import WebDataset, write_webdataset
from chute.vision.datasets import FakeData


def to_pair(sample: dict) -> tuple[np.ndarray, int]:
    """A sample dict from the shards -> (image, label), the way a training loop wants it."""
    return sample["png"], sample["cls"]


def make_loader(url: str, cache_dir: str, workers: int) -> chute.DataLoader:
    ds = WebDataset(url, cache_dir=cache_dir, cache_limit="1GB", transform=to_pair)
    return chute.DataLoader(ds, batch_size=16, num_workers=workers, seed=0)


def serve(folder: str) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    handler = functools.partial(QuietHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []  # the GET requests served

    def log_message(self, format: str, *args: object) -> None:
        if self.command == "GET":
            QuietHandler.requests.append(self.path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="shards to stream (default: pack and serve some locally)")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        server = None
        url = args.url
        if url is None:
            shards = os.path.join(root, "shards")
            data = FakeData(size=args.images, image_size=(3, 32, 32), num_classes=10)
            written = write_webdataset(
                data, os.path.join(shards, "train-%06d.tar"), maxcount=50, progress=False
            )
            server, thread = serve(shards)
            host, port = server.server_address[:2]
            url = f"http://{host}:{port}/train-{{000000..{len(written) - 1:06d}}}.tar"
            print(f"packed {args.images} images into {len(written)} shards, serving {url}")
        cache = os.path.join(root, "cache")
        try:
            loader = make_loader(url, cache, args.workers)
            for epoch in range(2):
                seen, shape = 0, None
                for images, labels in loader:
                    seen += len(labels)  # a training step would go here
                    shape = images.shape[1:]
                print(f"epoch {epoch}: {seen} samples in batches of {shape} images")
            if server is not None:
                print(f"GET requests for shards over two epochs: {len(QuietHandler.requests)}")
            it = iter(loader)
            for _ in range(3):
                next(it)
            state = loader.state_dict()  # what a checkpoint would save
            expected = next(it)[1]
            del it
            resumed = make_loader(url, cache, args.workers)
            resumed.load_state_dict(state)
            same = np.array_equal(next(iter(resumed))[1], expected)
            print(f"resumed from {state['samples']} samples: next batch identical: {same}")
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
                thread.join()


if __name__ == "__main__":
    main()
