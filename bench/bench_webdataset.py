"""WebDataset tar shards of 375x500 JPEGs, decoded and cropped to 224: chute vs ``webdataset``.

Both read the same shards (written by webdataset's ``ShardWriter``) in the same run, with 2
worker processes each and batches of 64:

- webdataset: ``wds.WebDataset(urls, shardshuffle=...).shuffle(1000).decode("rgb8")``, the
  crop in ``.map``, ``.to_tuple("jpg", "cls")``, ``wds.WebLoader`` (a torch DataLoader);
- chute: ``chute.formats.WebDataset(urls, transform=crop)`` and ``chute.DataLoader``.

The crop (a random 224 x 224 window of the H x W x 3 array) is the same function on both
sides, so the difference is the loader and the decoder. Second part: resuming at 90% of an
epoch (from ``DataLoader.state_dict()``) at 10, 100 and 1000 shards, time to the first batch,
with the shard index cached (a warm node) and without (first run on a node); webdataset has
no resume, its alternative is to read and drop 90% of the epoch (timed without decoding).
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

import chute
from _common import Result, parser, report
from chute.formats import WebDataset
from chute.vision.io import encode_jpeg


def photo(gen: np.random.Generator, height: int = 375, width: int = 500) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b, c = gen.uniform(0.01, 0.06, 3)
    img = np.stack(
        [127 + 100 * np.sin(a * x + b * y), 127 + 100 * np.cos(b * x), 127 + 90 * np.sin(c * y)]
    )
    img += gen.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg_shards(folder: str, n: int, per_shard: int) -> str:
    import webdataset as wds

    gen = np.random.default_rng(0)
    bases = [encode_jpeg(photo(gen), quality=90).tobytes() for _ in range(16)]
    with wds.ShardWriter(os.path.join(folder, "img-%06d.tar"), maxcount=per_shard, verbose=0) as w:
        for i in range(n):
            w.write({"__key__": f"{i:08d}", "jpg": bases[i % 16], "cls": i % 10})
    shards = (n + per_shard - 1) // per_shard
    return os.path.join(folder, f"img-{{000000..{shards - 1:06d}}}.tar")


def crop224(img: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = int(gen.integers(0, h - 223)), int(gen.integers(0, w - 223))
    return np.ascontiguousarray(img[top : top + 224, left : left + 224])


_gen = np.random.default_rng()


def wds_crop(sample: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    return crop224(sample[0], _gen), sample[1]


def chute_crop(sample: dict) -> tuple[np.ndarray, int]:
    return crop224(sample["jpg"], chute.rng.current()), sample["cls"]


def run_webdataset(urls: str, workers: int, batch: int) -> int:
    import webdataset as wds

    ds = (
        wds.WebDataset(urls, shardshuffle=100, nodesplitter=wds.split_by_node, empty_check=False)
        .shuffle(1000)
        .decode("rgb8")
        .to_tuple("jpg", "cls")
        .map(wds_crop)
        .batched(batch)
    )
    loader = wds.WebLoader(ds, batch_size=None, num_workers=workers)
    return sum(len(b[1]) for b in loader)


def run_chute(urls: str, workers: int, batch: int, cache: str, kind: str = "process") -> int:
    ds = WebDataset(urls, transform=chute_crop, cache_dir=cache, buffer_size=1000)
    loader = chute.DataLoader(ds, batch_size=batch, num_workers=workers, seed=0, worker_type=kind)
    return sum(len(b[1]) for b in loader)


def timed(fn, repeat: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return best, n


def write_small_shards(folder: str, shards: int, per_shard: int) -> str:
    import io
    import tarfile

    for s in range(shards):
        with tarfile.open(os.path.join(folder, f"s-{s:05d}.tar"), "w") as tar:
            for i in range(per_shard):
                data = str(i % 10).encode()
                info = tarfile.TarInfo(f"{s:05d}{i:05d}.cls")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return os.path.join(folder, f"s-{{00000..{shards - 1:05d}}}.tar")


def resume_seconds(urls: str, cache: str, batch: int, total: int) -> float:
    """Time from a new loader + load_state_dict(state at 90%) to its first batch."""
    # the state as another node saved it (its own cache), so a first call here builds the index
    saver = WebDataset(urls, cache_dir=cache + "-saver")
    state = chute.DataLoader(saver, batch_size=batch).state_dict()
    state["samples"] = int(total * 0.9) // batch * batch  # what a run stopped there saved
    t0 = time.perf_counter()
    fresh = chute.DataLoader(WebDataset(urls, cache_dir=cache), batch_size=batch, seed=0)
    fresh.load_state_dict(state)
    next(iter(fresh))
    return time.perf_counter() - t0


def skip_seconds_webdataset(urls: str, fraction: float, total: int) -> float:
    import webdataset as wds

    t0 = time.perf_counter()
    it = iter(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    for _ in range(int(total * fraction)):
        next(it)
    next(it)
    return time.perf_counter() - t0


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--per-shard", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as root:
        urls = write_jpeg_shards(root, args.images, args.per_shard)
        cache = os.path.join(root, "cache")
        run_chute(urls, 0, args.batch, cache)  # builds the shard index once (as a first run)
        t_wds, n_wds = timed(lambda: run_webdataset(urls, args.workers, args.batch), args.repeat)
        t_chute, n_chute = timed(
            lambda: run_chute(urls, args.workers, args.batch, cache), args.repeat
        )
        t_thr, n_thr = timed(
            lambda: run_chute(urls, args.workers, args.batch, cache, "thread"), args.repeat
        )
        results = [
            Result(f"webdataset ({args.workers} worker processes)", n_wds, t_wds),
            Result(f"chute ({args.workers} worker processes)", n_chute, t_chute),
            Result(f"chute ({args.workers} worker threads)", n_thr, t_thr),
        ]
        report(
            f"WebDataset JPEG shards ({args.images} x 375x500, {args.per_shard}/shard), "
            f"decode + crop 224, batch {args.batch}",
            results,
            {
                "chute processes / webdataset": (n_chute / t_chute) / (n_wds / t_wds),
                "chute threads / webdataset": (n_thr / t_thr) / (n_wds / t_wds),
            },
            args.json,
        )
        print("\n== resume at 90% of an epoch (time to the first batch)")
        for shards in (10, 100, 1000):
            folder = os.path.join(root, f"small-{shards}")
            os.makedirs(folder)
            small = write_small_shards(folder, shards, 100)
            small_cache = os.path.join(folder, "cache")
            total = shards * 100
            cold = resume_seconds(small, small_cache, args.batch, total)
            warm = resume_seconds(small, small_cache, args.batch, total)
            skip = skip_seconds_webdataset(small, 0.9, total)
            print(
                f"  {shards:>5} shards, {total:>7} samples: chute {warm:.3f} s (index cached), "
                f"{cold:.3f} s (first run, index built); webdataset read-and-drop 90%: "
                f"{skip:.3f} s"
            )


if __name__ == "__main__":
    main()
