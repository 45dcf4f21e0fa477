"""WebDataset: an iterable dataset over tar shards, local or remote, exactly resumable.

See NOTE [ WebDataset order ] (``_plan.py``) for the order and how ranks and workers share it,
and NOTE [ Shard cache ] (``cache.py``) for remote shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import rng
from ..errors import ChuteTypeError, ChuteValueError, DatasetFormatError
from ..fetch import StreamLayout
from ._decode import decode_sample
from ._plan import EpochPlan, rank_count, rank_positions, worker_batches
from ._tar import ShardIndex, read_sample, scan
from ._urls import expand_urls, is_local, local_path
from .cache import Lease, Prefetcher, ShardCache, _write_atomic

__all__ = ["WebDataset"]

_LOOKAHEAD = 1024  # rank-local positions looked at to pick the shards to download next


class WebDataset:
    """Samples from tar shards written by ``webdataset`` (or :func:`write_webdataset`).

    Each sample is a dict keyed by member extension: ``{"__key__": "000123", "__url__": shard,
    "jpg": <H x W x 3 uint8>, "cls": 7, "json": {...}}`` (``decode=False`` leaves the bytes).
    The epoch's order is a pure function of ``(seed, epoch)``: the same whatever the number of
    workers, split among ranks so that each yields the same number of batches, and resumable
    exactly from the loader's state at any world size (NOTE [ WebDataset order ]).

    Args:
        urls: shards: a path or URL with webdataset's brace notation
            (``"s3://bucket/train-{000000..000099}.tar"``), or a list of them.
        shuffle: shuffle the shard order, within shuffle windows and within shards.
        buffer_size: the shuffle window, in samples; windows are shuffled independently.
        decode: True decodes fields by extension (images to H x W x 3 uint8 arrays, ``cls`` to
            int, ``json`` to dicts, ``txt`` to str, ``npy`` to arrays); False leaves bytes; a
            callable is applied to the raw sample dict instead.
        cache_dir: where remote shards are cached (shared by all workers and ranks of a node);
            None: ``$CHUTE_CACHE_DIR`` or a folder in the system's temporary directory.
        cache_limit: the most bytes of shards the cache keeps (int or "20GB"); None: no limit.
        transform: called on each (decoded) sample; its random draws are keyed by the sample's
            global position (``chute.rng.current()``).
        seed: the order's seed; None takes the DataLoader's ``seed`` (0 outside a loader).
        distributed: ``(rank, world_size)``; None finds them (the loader's workers, torchrun,
            SLURM, JAX, see ``chute.distributed.discover``).
        storage_options: passed to fsspec (``{"endpoint_url": ...}`` for S3-compatible stores).
        prefetch: remote shards downloaded ahead of the one being read.

    Example:
        >>> import chute, io, tarfile, tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> with tarfile.open(os.path.join(folder, "shard-0.tar"), "w") as tar:
        ...     for i in range(4):
        ...         info = tarfile.TarInfo(f"{i:04d}.cls"); data = str(i).encode()
        ...         info.size = len(data); tar.addfile(info, io.BytesIO(data))
        >>> ds = WebDataset(os.path.join(folder, "shard-{0..0}.tar"), shuffle=False)
        >>> [s["cls"] for s in ds]
        [0, 1, 2, 3]
        >>> [b["cls"].tolist() for b in chute.DataLoader(ds, batch_size=2)]
        [[0, 1], [2, 3]]
    """

    def __init__(
        self,
        urls: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        shuffle: bool = True,
        buffer_size: int = 8192,
        decode: bool | Callable[[dict[str, Any]], Any] = True,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_limit: int | str | None = None,
        transform: Callable[[Any], Any] | None = None,
        seed: int | None = None,
        distributed: tuple[int, int] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        prefetch: int = 2,
    ) -> None:
        if not isinstance(buffer_size, int) or isinstance(buffer_size, bool) or buffer_size < 1:
            raise ChuteValueError(f"buffer_size must be a positive int, got {buffer_size!r}")
        if not (isinstance(decode, bool) or callable(decode)):
            raise ChuteTypeError(f"decode must be True, False or a callable, got {decode!r}")
        if transform is not None and not callable(transform):
            raise ChuteTypeError(f"transform must be callable, got {transform!r}")
        if not isinstance(prefetch, int) or prefetch < 0:
            raise ChuteValueError(f"prefetch must be a non-negative int, got {prefetch!r}")
        self.urls = expand_urls(urls)
        self.shuffle = bool(shuffle)
        self.buffer_size = buffer_size
        self.decode = decode
        self.transform = transform
        self.seed = seed
        self.distributed = distributed
        self.prefetch = prefetch
        self.cache = ShardCache(cache_dir, cache_limit, storage_options)
        self._epoch: int | None = None
        self._counts: np.ndarray | None = None
        self._indexes: dict[int, ShardIndex] = {}
        if distributed is not None:
            self._rank_world()  # check it now

    def __repr__(self) -> str:
        first = self.urls[0] if len(self.urls) == 1 else f"{self.urls[0]} ... {self.urls[-1]}"
        return (
            f"WebDataset({len(self.urls)} shards: {first!r}, shuffle={self.shuffle}, "
            f"buffer_size={self.buffer_size})"
        )

    # -- ranks and epochs --------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order on the next iteration (torch-style scripts without chute's
        loader; chute's DataLoader tells the dataset its epoch itself)."""
        self._epoch = int(epoch)

    def ranks_for(self, loader_ranks: tuple[int, int] = (0, 1)) -> tuple[int, int]:
        """``(rank, world_size)`` the epoch is dealt to: ``distributed=`` if given, else a
        distributed loader's ranks, else the run's (``chute.distributed.discover``)."""
        from ..distributed import discover
        from ..workers.info import get_worker_info

        if self.distributed is not None:
            info = discover(self.distributed)
            return info.rank, info.world_size
        if loader_ranks[1] > 1:
            return int(loader_ranks[0]), int(loader_ranks[1])
        worker = get_worker_info()
        if worker is not None and getattr(worker, "world_size", 1) > 1:
            return int(worker.rank), int(worker.world_size)
        found = discover()
        return found.rank, found.world_size

    def _rank_world(self) -> tuple[int, int]:
        return self.ranks_for()

    @property
    def world_size(self) -> int:
        """How many ranks share the epoch (outside a distributed loader)."""
        return self._rank_world()[1]

    @property
    def total_samples(self) -> int:
        """Samples in one epoch of all ranks together (the sum of :meth:`sample_counts`)."""
        return int(self.sample_counts().sum())

    def __len__(self) -> int:
        """Samples this rank yields in a whole epoch (the same on every rank)."""
        return rank_count(self.total_samples, 0, self.world_size)

    # -- the index --------------------------------------------------------------------------
    def sample_counts(self) -> np.ndarray:
        """Samples in each shard (int64), from the cached index (scanning shards if needed)."""
        if self._counts is None:
            self._counts = self._load_counts()
        return self._counts

    def _manifest_path(self) -> str:
        digest = hashlib.sha1("\n".join(self.urls).encode()).hexdigest()[:20]
        folder = os.path.join(self.cache.cache_dir, "index")
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"manifest-{digest}.json")

    def _stamp(self, url: str) -> list[int] | None:
        if not is_local(url):
            return None
        try:
            st = os.stat(local_path(url))
        except FileNotFoundError:
            raise FileNotFoundError(f"WebDataset shard {url!r} does not exist") from None
        return [st.st_size, st.st_mtime_ns]

    def _load_counts(self) -> np.ndarray:
        path = self._manifest_path()
        stamps = [self._stamp(u) for u in self.urls]
        try:
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
            if manifest["urls"] == self.urls and manifest["stamps"] == stamps:
                return np.asarray(manifest["counts"], np.int64)
        except (FileNotFoundError, ValueError, KeyError):
            pass
        with ThreadPoolExecutor(max_workers=4) as pool:
            counts = list(pool.map(lambda s: len(self._shard_index(s)), range(len(self.urls))))
        _write_atomic(path, json.dumps({"urls": self.urls, "stamps": stamps, "counts": counts}))
        return np.asarray(counts, np.int64)

    def _local_index_path(self, url: str) -> str:
        stamp = self._stamp(url)
        key = f"{os.path.realpath(local_path(url))}|{stamp}"
        name = hashlib.sha1(key.encode()).hexdigest()[:20]
        return os.path.join(self.cache.cache_dir, "index", f"{name}.idx.json")

    def _shard_index(self, shard: int) -> ShardIndex:
        index = self._indexes.get(shard)
        if index is not None:
            return index
        url = self.urls[shard]
        if not is_local(url):
            index = self.cache.index(url)
        else:
            path = self._local_index_path(url)
            try:
                with open(path, encoding="utf-8") as f:
                    index = ShardIndex.from_json(f.read())
            except (FileNotFoundError, ValueError, KeyError):
                fd = os.open(local_path(url), os.O_RDONLY)
                try:
                    index = scan(fd, url)
                finally:
                    os.close(fd)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _write_atomic(path, index.to_json())
        self._indexes[shard] = index
        return index

    # -- iteration --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        """The epoch's samples for this rank and worker (outside chute's DataLoader, workers
        take every ``num_workers``-th sample of the rank's share)."""
        from .._lazy import loaded
        from ..workers.info import get_worker_info

        info = get_worker_info()
        torch = loaded("torch")
        if info is None and torch is not None:  # a torch DataLoader's worker
            info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        seed = 0 if self.seed is None else self.seed
        epoch = self._epoch if self._epoch is not None else 0
        return self.iter_from(StreamLayout(seed, epoch, None, False, worker, workers, 0))

    def iter_from(self, layout: StreamLayout) -> Iterator[Any]:
        """The samples of ``layout``'s worker from the global position ``layout.start`` on.

        chute's DataLoader calls this (instead of ``iter()``) with its seed, epoch, batch size
        and resume point, which is how the order stays the same for any number of workers.
        """
        seed = layout.seed if self.seed is None else self.seed
        epoch = self._epoch if self._epoch is not None else layout.epoch
        plan = EpochPlan(self.sample_counts(), seed, epoch, self.shuffle, self.buffer_size)
        rank, world = self.ranks_for((layout.rank, layout.world_size))
        if not 0 <= layout.start <= plan.total:
            raise ChuteValueError(
                f"WebDataset: resume position {layout.start} is outside the epoch of "
                f"{plan.total} samples (a state from another dataset?)"
            )
        count = rank_count(plan.total, layout.start, world)
        per = layout.batch_size or 1
        batches = list(worker_batches(count, per, layout.worker, layout.num_workers))
        return self._samples(plan, rank, world, layout.start, batches)

    def _samples(
        self,
        plan: EpochPlan,
        rank: int,
        world: int,
        start: int,
        batches: list[tuple[int, int]],
    ) -> Iterator[Any]:
        # the first block is one batch and is read before the next is located: a fresh or
        # resumed epoch yields its first batch without planning a whole lookahead first
        blocks = [batches[:1], *_blocks(batches[1:], _LOOKAHEAD)] if batches else []

        def locate(block: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
            j = np.concatenate([np.arange(lo, hi) for lo, hi in block] or [np.zeros(0, np.int64)])
            g = rank_positions(plan.total, start, rank, world, j)
            return (g, *plan.locate(g))

        reader = _Reader(self)
        try:
            cur = locate(blocks[0]) if blocks else None
            for i in range(len(blocks)):
                assert cur is not None
                g, shards, members = cur
                nxt = locate(blocks[i + 1]) if 0 < i < len(blocks) - 1 else None
                todo = shards.tolist()
                horizon = todo + (nxt[1].tolist() if nxt is not None else [])
                last = {s: k for k, s in enumerate(horizon)}  # last use within the horizon
                reader.prefetch(horizon)
                for k, (gi, s, m) in enumerate(zip(g.tolist(), todo, members.tolist())):
                    if s not in reader.open:  # keep `prefetch` shards on the way
                        reader.prefetch(horizon[k:])
                    sample = reader.read(s, m)
                    if last[s] == k:
                        reader.release(s)  # not needed again soon: the cache may evict it
                    yield self._finish(sample, gi)
                if nxt is None and i + 1 < len(blocks):
                    nxt = locate(blocks[i + 1])
                cur = nxt
        finally:
            reader.close()

    def _finish(self, sample: dict[str, Any], position: int) -> Any:
        if self.decode is True:
            sample = decode_sample(sample, sample["__url__"])
        elif callable(self.decode):
            sample = self.decode(sample)
        if self.transform is not None:
            with rng.sample_key(position):
                sample = self.transform(sample)
        return sample


def _blocks(batches: list[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
    """Group consecutive batches into blocks of about ``size`` positions (the lookahead)."""
    out: list[list[tuple[int, int]]] = []
    count = size
    for lo, hi in batches:
        if count >= size:
            out.append([])
            count = 0
        out[-1].append((lo, hi))
        count += hi - lo
    return out


class _Reader:
    """The shards one worker has open: file descriptors, indexes and cache leases."""

    def __init__(self, ds: WebDataset) -> None:
        self.ds = ds
        self.open: dict[int, tuple[int, ShardIndex, Lease | None]] = {}
        remote = any(not is_local(u) for u in ds.urls)
        self.prefetcher = Prefetcher(ds.cache, ahead=ds.prefetch) if remote else None

    def prefetch(self, upcoming: list[int]) -> None:
        """Start downloading the shards of ``upcoming`` (in order) that are not open."""
        if self.prefetcher is not None:
            order = list(dict.fromkeys(s for s in upcoming if s not in self.open))
            self.prefetcher.want([self.ds.urls[s] for s in order])

    def release(self, shard: int) -> None:
        if shard in self.open:
            self._close(shard)

    def read(self, shard: int, member: int) -> dict[str, Any]:
        entry = self.open.get(shard)
        if entry is None:
            entry = self._open(shard)
        fd, index, _ = entry
        url = self.ds.urls[shard]
        sample = read_sample(fd, index, member, url)
        sample["__url__"] = url
        return sample

    def _open(self, shard: int) -> tuple[int, ShardIndex, Lease | None]:
        url = self.ds.urls[shard]
        index = self.ds._shard_index(shard)
        lease: Lease | None = None
        if is_local(url):
            path = local_path(url)
        else:
            assert self.prefetcher is not None
            lease = self.prefetcher.get(url)
            path = lease.path
        try:
            fd = os.open(path, os.O_RDONLY)
        except BaseException:
            if lease is not None:
                lease.close()
            raise
        size = os.fstat(fd).st_size
        expected = int(self.ds.sample_counts()[shard])
        if size != index.size or len(index) != expected:
            os.close(fd)
            if lease is not None:
                lease.close()
            raise DatasetFormatError(
                f"shard {url!r} changed since it was indexed (now {size} bytes, indexed with "
                f"{index.size} bytes and {len(index)} samples, planned with {expected})"
            )
        self.open[shard] = (fd, index, lease)
        return self.open[shard]

    def _close(self, shard: int) -> None:
        fd, _, lease = self.open.pop(shard)
        os.close(fd)
        if lease is not None:
            lease.close()

    def close(self) -> None:
        for s in list(self.open):
            self._close(s)
        if self.prefetcher is not None:
            self.prefetcher.close()
