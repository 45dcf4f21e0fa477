"""Distributed loaders: which sampler deals the ranks, its state as one global cursor, re-dealing.

NOTE [ Elastic resume ]
A distributed epoch is one global order (NOTE [ Global order as a keyed bijection ] in
``order.py``) dealt to the ranks by :class:`~chute.sampler.DistributedSampler`: rank ``r`` of
``W`` takes positions ``cursor + r + W * m`` and groups them into batches of ``B``. After
every rank has handed out ``k`` batches, all ranks together have consumed exactly positions
``cursor .. cursor + k * B * W - 1``: the *global cursor*. So the loader saves the sampler's
state with the global cursor in it and ``"batches": 0`` (:func:`global_state`), which is the
same on every rank and a few numbers at any scale; the layout record (``state.py``) adds the
world size and the per-rank batch size it was taken under.

Loading it sets the sampler's cursor, and the ranks of the new layout deal the rest of the
epoch, positions from the cursor to the end, with the same padding and dropping rules: at the
same layout this is exactly the saved run's continuation (the positions ``c + r + W * m`` are
the ones the saved ranks would have taken next), at another world size or per-rank batch
size every remaining sample is dealt once, plus the new padding. The other fields of the
layout (dataset length, ``drop_last``, shuffling, the sampler kind) must match.

Re-dealing needs to know how the indices are batched, so it applies when the loader's
indices come from chute's :class:`~chute.sampler.BatchSampler` over chute's
``DistributedSampler`` (or from the sampler alone, without batching), neither with an
``__iter__`` of its own; a user's batch sampler over it resumes at the same layout only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .sampler import BatchSampler, DistributedSampler, _EpochSampler, _own_iter

__all__ = ["dealer", "global_state", "redeal_state", "stream_epoch", "world_layout"]

# layout fields that a loader dealt by a DistributedSampler may change on resume
ELASTIC_FIELDS = ("world_size", "batch_size")


def dealer(index_source: Any) -> tuple[DistributedSampler, int] | None:
    """The DistributedSampler that deals a loader's indices and its per-rank batch size, when
    the loader can re-deal it (see NOTE [ Elastic resume ]); None otherwise."""
    per = 1
    if _own_iter(index_source, BatchSampler):
        per, index_source = index_source.batch_size, index_source.sampler
    if _own_iter(index_source, DistributedSampler):
        return index_source, per
    return None


def _sampler_of(index_source: Any) -> Any:
    return getattr(index_source, "sampler", index_source)


def stream_epoch(index_source: Any, loader_epoch: int) -> int:
    """The epoch that keys the per-sample random streams of an epoch of the loader.

    A sampler that keeps its epoch until ``set_epoch`` is called (chute's or torch's
    ``DistributedSampler``, or any sampler with ``set_epoch`` and an int ``epoch`` that is not
    one of chute's self-advancing samplers) gives its own epoch, so a restarted torch-style
    script that calls ``set_epoch(2)`` draws epoch 2's augmentations; otherwise the loader's.
    """
    sampler = _sampler_of(index_source)
    epoch = getattr(sampler, "epoch", None)
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        return loader_epoch
    if isinstance(sampler, DistributedSampler):
        return epoch
    if not isinstance(sampler, _EpochSampler) and callable(getattr(sampler, "set_epoch", None)):
        return epoch
    return loader_epoch


def world_layout(index_source: Any, world_size: int) -> dict[str, Any]:
    """The layout fields of a distributed loader: the world size (the DistributedSampler's, or
    the loader's for an iterable dataset) and whether the sampler drops the tail."""
    sampler = _sampler_of(index_source)
    if isinstance(sampler, DistributedSampler):
        return {"world_size": sampler.num_replicas, "distributed_drop_last": sampler.drop_last}
    return {"world_size": world_size}


def _cursor(
    state: Mapping[str, Any] | None, batches: int, per: int, world: int, n: int, drop: bool
):
    start = int((state or {}).get("cursor", 0))
    share = DistributedSampler.share(n, start, world, drop)
    return start + min(batches * per, share) * world


def global_state(
    index_source: Any, sampler_state: dict[str, Any] | None, batches: int
) -> tuple[dict[str, Any] | None, int]:
    """``(sampler state, batches)`` of a loader's state, with a dealt loader's progress moved
    into the global cursor (``batches`` then 0); others unchanged."""
    found = dealer(index_source)
    if found is None or sampler_state is None or batches == 0:
        return sampler_state, batches
    sampler, per = found
    n = len(sampler.dataset)
    cursor = _cursor(sampler_state, batches, per, sampler.num_replicas, n, sampler.drop_last)
    return {**sampler_state, "cursor": cursor}, 0


def redeal_state(
    index_source: Any, state: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, int, tuple[str, ...]]:
    """``(sampler state, batches, layout fields that may differ)`` to load ``state`` with.

    For a dealt loader, the saved progress becomes a global cursor under the saved layout
    (world size and per-rank batch size), so the current ranks deal the rest of the epoch;
    other loaders get the state as it is and the layout must match.
    """
    found = dealer(index_source)
    sampler_state, batches = state["sampler"], int(state["batches"])
    if found is None or sampler_state is None:
        return sampler_state, batches, ()
    sampler, _ = found
    saved = state["layout"]
    world, per = int(saved.get("world_size", 1)), saved.get("batch_size") or 1
    n = len(sampler.dataset)
    cursor = _cursor(sampler_state, batches, int(per), world, n, sampler.drop_last)
    return {**sampler_state, "cursor": cursor}, 0, ELASTIC_FIELDS
