"""Rank discovery in one place: which process of a distributed run is this one?

NOTE [ Rank discovery ]
:func:`discover` looks, in this order, at: the ``explicit`` ``(rank, world_size)`` the caller
passed; an initialised ``torch.distributed`` process group (only when torch is already
imported); the torchrun variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``; JAX, when it is imported and ``jax.distributed`` is initialised with
``jax.process_count() > 1``; SLURM's ``SLURM_PROCID`` and ``SLURM_NTASKS``. The first source
found wins; nothing found is a single process, ``RankInfo(0, 1, 0, 1, "single")``.

It never guesses: a half-set environment (``WORLD_SIZE`` without ``RANK``, ``SLURM_PROCID``
without ``SLURM_NTASKS``, ``LOCAL_RANK`` without ``RANK``), a value that is not an integer, a
rank outside ``[0, world_size)``, or a process group whose rank or size disagrees with the
torchrun variables is a :class:`~chute.errors.ChuteValueError` that names the variables and
their values. Nothing here imports torch or JAX.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._lazy import loaded
from .errors import ChuteValueError

__all__ = ["RankInfo", "discover", "loader_ranks", "common_seed"]

SOURCES = ("process_group", "torchrun", "jax", "slurm", "explicit", "single")
_TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
_SLURM = ("SLURM_PROCID", "SLURM_NTASKS")


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands in a distributed run.

    Attributes:
        rank: this process's rank, ``0 <= rank < world_size``.
        world_size: how many processes take part.
        local_rank: the rank among the processes of this node (the device to use).
        local_world_size: how many processes run on this node.
        source: where the numbers came from: ``"process_group"``, ``"torchrun"``, ``"jax"``,
            ``"slurm"``, ``"explicit"`` or ``"single"``.

    Example:
        >>> RankInfo(1, 4, 1, 2, "torchrun").is_distributed
        True
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    source: str

    @property
    def is_distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def discover(
    explicit: tuple[int, int] | None = None, environ: Mapping[str, str] | None = None
) -> RankInfo:
    """Return this process's :class:`RankInfo`; see NOTE [ Rank discovery ] for the order.

    Args:
        explicit: ``(rank, world_size)`` given by the caller; wins over everything else.
            The local rank and size then come from ``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` when
            both are set, else they are taken as one node (``rank``, ``world_size``).
        environ: the environment to read (default ``os.environ``); for tests.

    Raises:
        ChuteValueError: a half-set or inconsistent environment, or a bad ``explicit``.

    Example:
        >>> discover(environ={})
        RankInfo(rank=0, world_size=1, local_rank=0, local_world_size=1, source='single')
        >>> discover(environ={"RANK": "1", "WORLD_SIZE": "2",
        ...                   "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}).rank
        1
        >>> discover((2, 4), environ={}).source
        'explicit'
    """
    env = os.environ if environ is None else environ
    if explicit is not None:
        rank, world = _explicit_pair(explicit)
        local = _local_pair(env, "LOCAL_RANK", "LOCAL_WORLD_SIZE", world) or (rank, world)
        return RankInfo(rank, world, local[0], local[1], "explicit")
    torchrun = _torchrun(env)
    group = _process_group()
    if group is not None:
        rank, world = group
        if torchrun is not None and (torchrun.rank, torchrun.world_size) != (rank, world):
            raise ChuteValueError(
                f"the torch.distributed process group says rank {rank} of {world}, but "
                f"RANK={env['RANK']} and WORLD_SIZE={env['WORLD_SIZE']}; initialise the group "
                f"with the launcher's values (init_method='env://') or unset RANK and WORLD_SIZE"
            )
        if torchrun is not None:
            return RankInfo(
                rank, world, torchrun.local_rank, torchrun.local_world_size, "process_group"
            )
        return RankInfo(rank, world, rank, world, "process_group")
    if torchrun is not None:
        return torchrun
    jax_info = _jax()
    if jax_info is not None:
        return jax_info
    slurm = _slurm(env)
    if slurm is not None:
        return slurm
    return RankInfo(0, 1, 0, 1, "single")


def _explicit_pair(explicit: Any) -> tuple[int, int]:
    try:
        rank, world = explicit
    except (TypeError, ValueError):
        raise ChuteValueError(
            f"distributed must be True, False or a pair (rank, world_size), got {explicit!r}"
        ) from None
    if not _is_int(rank) or not _is_int(world) or world < 1 or not 0 <= rank < world:
        raise ChuteValueError(
            f"(rank, world_size) must be integers with 0 <= rank < world_size, got {explicit!r}"
        )
    return int(rank), int(world)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _read_ints(env: Mapping[str, str], names: tuple[str, ...]) -> dict[str, int] | None:
    """The integer values of ``names``: None if none is set, an error if only some are."""
    found = {n: env[n] for n in names if env.get(n, "") != ""}
    if not found:
        return None
    missing = [n for n in names if n not in found]
    if missing:
        have = ", ".join(f"{n}={v}" for n, v in found.items())
        raise ChuteValueError(
            f"{have} is set but {' and '.join(missing)} is not: set all of "
            f"{', '.join(names)} (or none of them) to say which process this is"
        )
    out = {}
    for name, text in found.items():
        if not re.fullmatch(r"\s*\d+\s*", text):
            raise ChuteValueError(f"{name} must be a non-negative integer, got {name}={text!r}")
        out[name] = int(text)
    return out


def _check_rank(env_rank: str, env_world: str, rank: int, world: int) -> None:
    if world < 1 or rank >= world:
        raise ChuteValueError(
            f"{env_rank}={rank} and {env_world}={world} are inconsistent: need "
            f"{env_world} >= 1 and 0 <= {env_rank} < {env_world}"
        )


def _local_pair(
    env: Mapping[str, str], name_rank: str, name_world: str, world: int
) -> tuple[int, int] | None:
    local = _read_ints(env, (name_rank, name_world))
    if local is None:
        return None
    lrank, lworld = local[name_rank], local[name_world]
    _check_rank(name_rank, name_world, lrank, lworld)
    if lworld > world:
        raise ChuteValueError(
            f"{name_world}={lworld} is larger than the world size {world}: "
            f"a node cannot run more processes than the whole job"
        )
    return lrank, lworld


def _torchrun(env: Mapping[str, str]) -> RankInfo | None:
    pair = _read_ints(env, ("RANK", "WORLD_SIZE"))
    if pair is None:
        stray = [n for n in ("LOCAL_RANK", "LOCAL_WORLD_SIZE") if env.get(n, "") != ""]
        if stray:
            have = ", ".join(f"{n}={env[n]}" for n in stray)
            raise ChuteValueError(
                f"{have} is set but RANK and WORLD_SIZE are not: set all of "
                f"{', '.join(_TORCHRUN)} (torchrun does) or none of them"
            )
        return None
    rank, world = pair["RANK"], pair["WORLD_SIZE"]
    _check_rank("RANK", "WORLD_SIZE", rank, world)
    local = _local_pair(env, "LOCAL_RANK", "LOCAL_WORLD_SIZE", world) or (rank, world)
    return RankInfo(rank, world, local[0], local[1], "torchrun")


def _process_group() -> tuple[int, int] | None:
    """``(rank, world_size)`` of torch's default process group, if torch has one initialised."""
    torch = loaded("torch")
    if torch is None:
        return None
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return int(dist.get_rank()), int(dist.get_world_size())


def _jax() -> RankInfo | None:
    """JAX's process index and count, when JAX is imported and runs several processes.

    ``jax.process_count()`` starts JAX's backends, after which ``jax.distributed.initialize``
    can no longer be called; so it is asked only once ``jax.distributed`` is initialised.
    """
    jax = loaded("jax")
    if jax is None:
        return None
    initialised = getattr(getattr(jax, "distributed", None), "is_initialized", None)
    if initialised is None or not initialised():
        return None
    world = int(jax.process_count())
    if world <= 1:
        return None
    rank = int(jax.process_index())
    return RankInfo(rank, world, 0, 1, "jax")


def _slurm(env: Mapping[str, str]) -> RankInfo | None:
    pair = _read_ints(env, _SLURM)
    if pair is None:
        return None
    rank, world = pair["SLURM_PROCID"], pair["SLURM_NTASKS"]
    _check_rank("SLURM_PROCID", "SLURM_NTASKS", rank, world)
    local_rank = rank
    local_world = world
    if env.get("SLURM_LOCALID", "") != "":
        local_rank = (_read_ints(env, ("SLURM_LOCALID",)) or {})["SLURM_LOCALID"]
        local_world = _slurm_tasks_on_node(env, world)
        _check_rank("SLURM_LOCALID", "tasks on this node", local_rank, local_world)
    return RankInfo(rank, world, local_rank, local_world, "slurm")


def _slurm_tasks_on_node(env: Mapping[str, str], world: int) -> int:
    """Tasks on this node from ``SLURM_TASKS_PER_NODE`` (``"2(x3),1"``) and ``SLURM_NODEID``."""
    spec = env.get("SLURM_TASKS_PER_NODE", "")
    node = env.get("SLURM_NODEID", "")
    if not spec or not node.isdigit():
        return world
    counts: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if m is None:
            raise ChuteValueError(
                f"SLURM_TASKS_PER_NODE={spec!r} is not of the form '2(x3),1' that SLURM writes"
            )
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    if int(node) >= len(counts):
        raise ChuteValueError(
            f"SLURM_NODEID={node} but SLURM_TASKS_PER_NODE={spec!r} lists {len(counts)} nodes"
        )
    return counts[int(node)]


def loader_ranks(distributed: Any) -> RankInfo:
    """The ranks a ``DataLoader(distributed=...)`` shards by.

    ``True`` discovers them (:func:`discover`) and refuses a single process, since a
    distributed loader launched without a launcher is a mistake that would give every
    process all the data; ``(rank, world_size)`` gives them explicitly.

    Example:
        >>> loader_ranks((1, 2)).rank
        1
    """
    if distributed is True:
        info = discover()
        if info.source == "single":
            raise ChuteValueError(
                "distributed=True found no distributed run (no torch.distributed process "
                "group, no torchrun RANK/WORLD_SIZE, no JAX processes, no SLURM_PROCID/"
                "SLURM_NTASKS): launch with torchrun, or pass distributed=(rank, world_size) "
                "((0, 1) for one process)"
            )
        return info
    if isinstance(distributed, (bool, str, bytes)) or distributed is None:
        raise ChuteValueError(
            f"distributed must be True, False or a pair (rank, world_size), got {distributed!r}"
        )
    return discover(_explicit_pair(distributed))


def common_seed(seed: int | None, draw: Any) -> int:
    """The loader seed, the same on every rank: ``seed`` if given, else rank 0's ``draw()``
    broadcast over torch's process group; with neither, an error that says to pass ``seed=``.

    Example:
        >>> common_seed(5, None)
        5
    """
    if seed is not None:
        return int(seed)
    group = _process_group()
    if group is None:
        raise ChuteValueError(
            "a distributed DataLoader needs the same seed on every rank: pass seed= (the same "
            "int on every rank), or initialise torch.distributed first so that rank 0's seed "
            "is broadcast"
        )
    torch = loaded("torch")
    assert torch is not None
    box = [int(draw()) if group[0] == 0 else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return int(box[0])  # type: ignore[arg-type]
