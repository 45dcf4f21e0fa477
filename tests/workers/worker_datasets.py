"""Datasets used by the worker tests (module level, so spawn workers can unpickle them)."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from chute import rng
from chute.workers import get_worker_info


class Pair(NamedTuple):
    image: Any
    label: Any


class RandomCrops:
    """A dataset with a random transform that draws from the sample's chute.rng stream."""

    def __init__(self, n: int = 40) -> None:
        self.n = n
        base = np.arange(n * 3 * 8 * 8, dtype=np.float32).reshape(n, 3, 8, 8)
        self.data = base / base.max()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        g = rng.current()
        noise = g.standard_normal((3, 8, 8)).astype(np.float32)
        return self.data[i] + noise, int(i)


def stack_collate(samples: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([s[0] for s in samples]), np.array([s[1] for s in samples], dtype=np.int64)


def nested_collate(samples: Any) -> dict[str, Any]:
    images, labels = stack_collate(samples)
    return {
        "pair": Pair(images, labels),
        "names": [f"s{int(x)}" for x in labels],
        "fortran": np.asfortranarray(images[:, 0]),
        "empty": np.zeros((0, 3), np.int16),
        "scalar": np.float64(1.5),
        "nested": [(labels * 2, "tag")],
    }


class Failing:
    """Raises ``exc`` when index ``bad`` is fetched."""

    def __init__(self, n: int, bad: int, exc: BaseException) -> None:
        self.n, self.bad, self.exc = n, bad, exc

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        if i == self.bad:
            raise self.exc
        return np.full(4, i, np.int64)


class NeedsTwoArgs(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"code {code}: {why}")
        self.code = code


class Segfaulting:
    """Crashes the interpreter when index ``bad`` is fetched."""

    def __init__(self, n: int, bad: int) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        if i == self.bad:
            ctypes.string_at(0)
        return np.full(4, i, np.int64)


class Sleeping:
    """Sleeps ``seconds`` when index ``bad`` is fetched (a hung worker)."""

    def __init__(self, n: int, bad: int, seconds: float) -> None:
        self.n, self.bad, self.seconds = n, bad, seconds

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        if i == self.bad:
            time.sleep(self.seconds)
        return np.full(4, i, np.int64)


class Slow:
    """Every sample takes ``seconds``."""

    def __init__(self, n: int, seconds: float) -> None:
        self.n, self.seconds = n, seconds

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        time.sleep(self.seconds)
        return np.full(4, i, np.int64)


class WhoAmI:
    """Returns what the worker knows about itself, and draws from the global generators."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, Any]:
        import random

        info = get_worker_info()
        return {
            "index": i,
            "id": -1 if info is None else info.id,
            "num_workers": -1 if info is None else info.num_workers,
            "seed": -1 if info is None else info.seed,
            "same_dataset": info is not None and info.dataset is self,
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "np_draw": float(np.random.random()),
            "py_draw": random.random(),
            "torch_draw": _torch_draw(),
        }


def _torch_draw() -> float | None:
    import sys

    torch = sys.modules.get("torch")
    return None if torch is None else float(torch.rand(1))


def first(samples: Any) -> Any:
    return samples[0]


class Shards:
    """Iterable dataset sharded with get_worker_info (chute's, or torch's inside torch)."""

    def __init__(self, n: int, torch_api: bool = False) -> None:
        self.n = n
        self.torch_api = torch_api

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.torch_api:
            import torch.utils.data

            info: Any = torch.utils.data.get_worker_info()
        else:
            info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        # uneven shares: worker k gets indices k, k + nw, ...
        for i in range(wid, self.n, nw):
            yield np.array([i, wid], dtype=np.int64)


class Locked:
    """Holds a lock: cannot be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> int:
        return i


def bad_init(worker_id: int) -> None:
    raise RuntimeError(f"cannot open the database in worker {worker_id}")


def marking_init(worker_id: int) -> None:
    os.environ["CHUTE_TEST_INIT"] = str(worker_id)


class InitSeen:
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> str:
        return os.environ.get("CHUTE_TEST_INIT", "none")


class Exiting:
    """Calls os._exit(3) when index ``bad`` is fetched."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> np.ndarray:
        if i == 5:
            os._exit(3)
        return np.full(2, i)


class Stamped:
    """Each sample takes ``seconds`` and returns (pid, start time)."""

    def __init__(self, n: int, seconds: float) -> None:
        self.n, self.seconds = n, seconds

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        start = time.time()
        time.sleep(self.seconds)
        return np.array([os.getpid(), start])


class NoisyStream:
    """Iterable dataset whose samples are draws from chute.rng.current(), sharded by worker."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[float]:
        import chute

        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        for _ in range(wid, self.n, nw):
            yield float(chute.rng.current().random())


class WhereFetched:
    """Each sample: a draw from its chute.rng stream, and the pid / worker id that fetched it."""

    def __init__(self, n: int = 24) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        info = get_worker_info()
        return {
            "x": rng.current().standard_normal(3).astype(np.float32) + np.float32(i),
            "pid": os.getpid(),
            "worker": -1 if info is None else info.id,
            "thread": threading.get_ident(),
        }


class Strings:
    """``n`` string samples: a batch of them is pickled, not put in shared memory."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> str:
        return f"sample-{i}"


class WorkerOfSample:
    """Each sample: its index and the id of the worker that fetched it (-1: main process)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int, int]:
        info = get_worker_info()
        return i, (-1 if info is None else info.id)


def noop_init(worker_id: int) -> None:
    return None
