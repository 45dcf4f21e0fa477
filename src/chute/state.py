"""The loader's state record: what ``DataLoader.state_dict()`` holds, built and checked here.

NOTE [ Loader state and exact resume ]
A loader's progress is a few numbers: the loader ``seed`` (keys the per-sample random streams
and the loader-made shuffle sampler), the ``epoch`` in progress, how many batches of it were
handed to the user, and the state, at the start of that epoch, of whatever produces the
indices (``"sampler"``: the batch sampler's own ``state_dict()`` if it has one, else that of
the sampler a chute or torch ``BatchSampler`` draws from; ``{"seed", "epoch"}`` for chute
samplers). :meth:`DataLoader.load_state_dict` restores them and the next ``iter()`` starts at
that batch: the sampler recomputes the epoch's index array and the batch sampler slices it, so
no batch before the resume point is fetched, transformed or collated. Batches prefetched by
workers but not yet handed out are not counted, so they are fetched again. Iterable datasets
are resumed by iterating past the consumed batches without collating them.

Which epoch the state describes. The state is always where the *next* batch would come from,
so that a checkpoint and the loader it was taken from agree:

- while the latest iterator can still yield batches (it is alive, not closed, and has handed
  out fewer than ``len(loader)`` batches), its position: resuming continues that epoch;
- otherwise (it finished; it handed out all ``len(loader)`` batches, even if ``StopIteration``
  was never seen, as with ``zip(range(len(loader)), loader)``; it was dropped, e.g. by
  ``break`` out of a ``for`` loop; or it was closed), the start of the next epoch, which is
  exactly what the loader's next ``iter()`` starts, as in PyTorch. To checkpoint in the middle
  of an epoch, take ``state_dict()`` while the iterator is alive (inside the loop).

A sampler without ``state_dict`` (a list, ``torch.utils.data``'s samplers, a user's): the state
records ``"sampler": None`` and resuming iterates it afresh and skips the consumed batches.
That is exact for an order that does not change between iterations (sequences, sequential
samplers), so :func:`restore_index_source` warns for every other stateless sampler that the
order may differ from the saved run's (a random one reshuffles); give it ``state_dict`` /
``load_state_dict`` to resume it exactly.

The ``"layout"`` record holds what the meaning of ``"batches"`` depends on: the dataset
length, the batch size, ``drop_last``, the sampler kind and whether it shuffles, the number of
workers of an iterable dataset (each worker iterates its own copy, so the batch stream depends
on it; 0 and 1 worker give the same stream) and the world size (1 for now). One function
builds it (:func:`layout`) and one checks a loaded state against the loader
(:func:`check_layout`): a difference is refused with a message naming each field, since
loading it would lose or repeat samples. A layout that may change and be re-dealt (the world
size in a distributed run) is a field that ``check_layout`` is told to let through.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._lazy import loaded
from .errors import ChuteValueError
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = [
    "STATE_VERSION",
    "STATE_KEYS",
    "check_layout",
    "check_state",
    "index_source_state",
    "layout",
    "restore_index_source",
]

STATE_VERSION = 2
STATE_KEYS = ("version", "seed", "epoch", "batches", "sampler", "layout")


def _batch_sampler_types() -> tuple[type[Any], ...]:
    torch = loaded("torch")
    if torch is None:
        return (BatchSampler,)
    return (BatchSampler, torch.utils.data.BatchSampler)


def _inner(source: Any) -> Any:
    """The sampler a chute or torch BatchSampler without state of its own draws from."""
    if not hasattr(source, "state_dict") and isinstance(source, _batch_sampler_types()):
        return source.sampler
    return None


def index_source_state(source: Any) -> dict[str, Any] | None:
    """The state of whatever produces the indices (None when it has no ``state_dict``).

    Example:
        >>> from chute import RandomSampler
        >>> index_source_state(BatchSampler(RandomSampler(range(4), seed=2), 2, False))
        {'seed': 2, 'epoch': 0}
    """
    get = getattr(source, "state_dict", None)
    if get is not None:
        return dict(get())
    inner = _inner(source)
    return None if inner is None else index_source_state(inner)


def _fixed_order(source: Any) -> bool:
    """True when iterating ``source`` again gives the same order (no state needed)."""
    if isinstance(source, (Sequence, range, np.ndarray)):
        return True
    torch = loaded("torch")
    if torch is not None and isinstance(source, torch.utils.data.SequentialSampler):
        return True
    inner = _inner(source)
    return inner is not None and _fixed_order(inner)


def restore_index_source(source: Any, state: dict[str, Any] | None) -> None:
    """Load ``state`` into the index source (see NOTE [ Loader state and exact resume ])."""
    if state is None:
        if source is not None and index_source_state(source) is None and not _fixed_order(source):
            warnings.warn(
                f"load_state_dict: the sampler {_kind(source)} has no state_dict, so the "
                f"resumed epoch iterates it afresh and skips the batches already taken; if "
                f"its order changes between iterations (a random sampler) the order may differ "
                f"from the saved run's. Give it state_dict() and load_state_dict() (chute's "
                f"samplers have them) to resume exactly",
                stacklevel=3,
            )
        return
    target = source
    while not hasattr(target, "load_state_dict") and _inner(target) is not None:
        target = _inner(target)
    if not hasattr(target, "load_state_dict"):
        raise ChuteValueError(
            f"load_state_dict: the state has a sampler state but the sampler "
            f"{type(source).__name__} has no load_state_dict"
        )
    target.load_state_dict(state)


def _kind(source: Any) -> str:
    """``BatchSampler(RandomSampler)``: the class names from the batch sampler inwards."""
    name = type(source).__qualname__
    inner = getattr(source, "sampler", None) if isinstance(source, _batch_sampler_types()) else None
    return name if inner is None else f"{name}({_kind(inner)})"


def _shuffles(source: Any) -> bool | None:
    if isinstance(source, _batch_sampler_types()):
        return _shuffles(source.sampler)
    if isinstance(source, SequentialSampler) or _fixed_order(source):
        return False
    if isinstance(source, RandomSampler):
        return True
    shuffle = getattr(source, "shuffle", None)
    return shuffle if isinstance(shuffle, bool) else None


def layout(
    dataset: Any,
    index_source: Any,
    batch_size: int | None,
    drop_last: bool,
    iterable: bool,
    num_workers: int,
    world: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of what a loader's ``"batches"`` count means (NOTE [ Loader state ... ]).

    Example:
        >>> from chute import SequentialSampler
        >>> bs = BatchSampler(SequentialSampler(range(10)), 4, False)
        >>> layout(range(10), bs, 4, False, iterable=False, num_workers=2)["sampler"]
        'BatchSampler(SequentialSampler)'
    """
    try:
        length: int | None = len(dataset)
    except TypeError:
        length = None
    if index_source is not None and batch_size is None:  # a user batch_sampler, or none
        batch_size = getattr(index_source, "batch_size", None)
        drop_last = bool(getattr(index_source, "drop_last", drop_last))
    return {
        "dataset_length": length,
        "batch_size": batch_size,
        "drop_last": bool(drop_last),
        "sampler": None if iterable else _kind(index_source),
        "shuffle": None if iterable else _shuffles(index_source),
        "iterable_workers": max(num_workers, 1) if iterable else None,
        "world_size": 1,
        **(world or {}),  # a distributed loader's fields (elastic.world_layout)
    }


_WHY = {
    "dataset_length": "the dataset",
    "batch_size": "the batch size",
    "drop_last": "drop_last",
    "sampler": "the sampler",
    "shuffle": "shuffling",
    "iterable_workers": "the number of workers of an iterable dataset (each iterates its own copy)",
    "world_size": "the world size",
    "distributed_drop_last": "the DistributedSampler's drop_last",
}


def check_layout(
    saved: Mapping[str, Any], current: Mapping[str, Any], may_differ: Iterable[str] = ()
) -> None:
    """Refuse a state whose layout differs from this loader's, naming every difference."""
    allowed = set(may_differ)
    order = {key: k for k, key in enumerate(_WHY)}
    keys = sorted(set(saved) | set(current), key=lambda key: (order.get(key, len(order)), key))
    diffs = [
        f"{_WHY.get(key, key)}: {key}={saved.get(key)!r} in the state, "
        f"{current.get(key)!r} in this loader"
        for key in keys
        if key not in allowed and saved.get(key) != current.get(key)
    ]
    if diffs:
        raise ChuteValueError(
            f"load_state_dict: the state was taken under another layout, and resuming would "
            f"lose or repeat samples; build the loader as the saved one was. Differences: "
            f"{'; '.join(diffs)}"
        )


def check_state(state: Mapping[str, Any]) -> None:
    """Refuse a state that is not a ``DataLoader.state_dict()`` of this version."""
    missing = set(STATE_KEYS) - set(state)
    if "version" in state and state["version"] != STATE_VERSION:
        raise ChuteValueError(
            f"load_state_dict: state version {state['version']!r} is not supported "
            f"(expected {STATE_VERSION})"
        )
    if missing:
        raise ChuteValueError(
            f"load_state_dict: state is missing {sorted(missing)}; pass a dict made by "
            f"DataLoader.state_dict()"
        )
