"""Rank discovery: every source, its order, and every half-set or inconsistent environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chute.distributed import RankInfo, discover
from chute.errors import ChuteValueError

SRC = str(Path(__file__).resolve().parents[1] / "src")
TORCHRUN = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
SLURM = {"SLURM_PROCID": "5", "SLURM_NTASKS": "6"}


def test_nothing_set_is_a_single_process() -> None:
    assert discover(environ={}) == RankInfo(0, 1, 0, 1, "single")
    assert not discover(environ={}).is_distributed


def test_empty_values_count_as_unset() -> None:
    assert discover(environ={"RANK": "", "WORLD_SIZE": ""}).source == "single"


def test_explicit_wins_over_everything() -> None:
    info = discover((1, 3), environ={**TORCHRUN, **SLURM})
    assert info == RankInfo(1, 3, 1, 2, "explicit")  # local numbers from LOCAL_* vars
    assert discover((2, 4), environ={}) == RankInfo(2, 4, 2, 4, "explicit")


@pytest.mark.parametrize("bad", [(2, 2), (-1, 2), (0, 0), (True, 2), (0.0, 1), "01", (1, 2, 3)])
def test_explicit_must_be_a_valid_pair(bad: object) -> None:
    with pytest.raises(ChuteValueError, match=r"rank|distributed must be") as exc:
        discover(bad, environ={})  # type: ignore[arg-type]
    assert repr(bad) in str(exc.value)


def test_explicit_message() -> None:
    with pytest.raises(ChuteValueError) as exc:
        discover((2, 2), environ={})
    assert str(exc.value) == (
        "(rank, world_size) must be integers with 0 <= rank < world_size, got (2, 2)"
    )


def test_torchrun_variables() -> None:
    assert discover(environ=TORCHRUN) == RankInfo(3, 8, 1, 2, "torchrun")


def test_torchrun_without_local_variables_is_one_node() -> None:
    assert discover(environ={"RANK": "1", "WORLD_SIZE": "2"}) == RankInfo(1, 2, 1, 2, "torchrun")


def test_torchrun_wins_over_slurm() -> None:
    assert discover(environ={**TORCHRUN, **SLURM}).source == "torchrun"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WORLD_SIZE": "4"},
            "WORLD_SIZE=4 is set but RANK is not: set all of RANK, WORLD_SIZE "
            "(or none of them) to say which process this is",
        ),
        (
            {"RANK": "1"},
            "RANK=1 is set but WORLD_SIZE is not: set all of RANK, WORLD_SIZE "
            "(or none of them) to say which process this is",
        ),
        (
            {"LOCAL_RANK": "0"},
            "LOCAL_RANK=0 is set but RANK and WORLD_SIZE are not: set all of RANK, "
            "WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE (torchrun does) or none of them",
        ),
        (
            {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"},
            "LOCAL_RANK=0 is set but LOCAL_WORLD_SIZE is not: set all of LOCAL_RANK, "
            "LOCAL_WORLD_SIZE (or none of them) to say which process this is",
        ),
        (
            {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"},
            "LOCAL_WORLD_SIZE=2 is set but LOCAL_RANK is not: set all of LOCAL_RANK, "
            "LOCAL_WORLD_SIZE (or none of them) to say which process this is",
        ),
        (
            {"RANK": "2", "WORLD_SIZE": "2"},
            "RANK=2 and WORLD_SIZE=2 are inconsistent: need WORLD_SIZE >= 1 and "
            "0 <= RANK < WORLD_SIZE",
        ),
        (
            {"RANK": "0", "WORLD_SIZE": "0"},
            "RANK=0 and WORLD_SIZE=0 are inconsistent: need WORLD_SIZE >= 1 and "
            "0 <= RANK < WORLD_SIZE",
        ),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK must be a non-negative integer, got RANK='x'"),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK must be a non-negative integer, got RANK='-1'"),
        (
            {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"},
            "LOCAL_RANK=2 and LOCAL_WORLD_SIZE=2 are inconsistent: need LOCAL_WORLD_SIZE >= 1 "
            "and 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE",
        ),
        (
            {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4"},
            "LOCAL_WORLD_SIZE=4 is larger than the world size 2: a node cannot run more "
            "processes than the whole job",
        ),
        (
            {"SLURM_NTASKS": "4"},
            "SLURM_NTASKS=4 is set but SLURM_PROCID is not: set all of SLURM_PROCID, "
            "SLURM_NTASKS (or none of them) to say which process this is",
        ),
        (
            {"SLURM_PROCID": "1"},
            "SLURM_PROCID=1 is set but SLURM_NTASKS is not: set all of SLURM_PROCID, "
            "SLURM_NTASKS (or none of them) to say which process this is",
        ),
        (
            {"SLURM_PROCID": "4", "SLURM_NTASKS": "4"},
            "SLURM_PROCID=4 and SLURM_NTASKS=4 are inconsistent: need SLURM_NTASKS >= 1 and "
            "0 <= SLURM_PROCID < SLURM_NTASKS",
        ),
        (
            {**SLURM, "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_TASKS_PER_NODE": "two"},
            "SLURM_TASKS_PER_NODE='two' is not of the form '2(x3),1' that SLURM writes",
        ),
        (
            {**SLURM, "SLURM_LOCALID": "0", "SLURM_NODEID": "3", "SLURM_TASKS_PER_NODE": "3(x2)"},
            "SLURM_NODEID=3 but SLURM_TASKS_PER_NODE='3(x2)' lists 2 nodes",
        ),
    ],
)
def test_half_set_or_inconsistent_environment(env: dict[str, str], message: str) -> None:
    with pytest.raises(ChuteValueError) as exc:
        discover(environ=env)
    assert str(exc.value) == message


def test_slurm_variables() -> None:
    assert discover(environ=SLURM) == RankInfo(5, 6, 5, 6, "slurm")
    env = {**SLURM, "SLURM_LOCALID": "1", "SLURM_NODEID": "2", "SLURM_TASKS_PER_NODE": "2(x2),2"}
    assert discover(environ=env) == RankInfo(5, 6, 1, 2, "slurm")
    env = {**SLURM, "SLURM_LOCALID": "0", "SLURM_NODEID": "1", "SLURM_TASKS_PER_NODE": "5,1"}
    assert discover(environ=env) == RankInfo(5, 6, 0, 1, "slurm")


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*TORCHRUN, *SLURM):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert discover() == RankInfo(1, 2, 1, 2, "slurm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def process_group() -> object:
    torch = pytest.importorskip("torch")
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def test_process_group_wins_over_environment(process_group: object) -> None:
    assert discover(environ=SLURM) == RankInfo(0, 1, 0, 1, "process_group")
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    assert discover(environ=env) == RankInfo(0, 1, 0, 1, "process_group")
    assert discover((1, 2), environ={}).source == "explicit"


def test_process_group_that_disagrees_with_torchrun_variables(process_group: object) -> None:
    with pytest.raises(ChuteValueError) as exc:
        discover(environ=TORCHRUN)
    assert str(exc.value) == (
        "the torch.distributed process group says rank 0 of 1, but RANK=3 and WORLD_SIZE=8; "
        "initialise the group with the launcher's values (init_method='env://') or unset "
        "RANK and WORLD_SIZE"
    )


def test_process_group_is_not_consulted_without_torch_imported() -> None:
    code = "import sys; from chute.distributed import discover; "
    code += "print(discover(environ={}).source, 'torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["single", "False"]


_JAX_CHILD = textwrap.dedent(
    """
    import json, sys
    import jax
    from chute.distributed import discover
    before = discover(environ={}).source  # imported, not initialised: not a JAX run
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid,
                               initialization_timeout=60)
    info = discover(environ={"SLURM_PROCID": "0", "SLURM_NTASKS": "7"})
    print(json.dumps([before, info.rank, info.world_size, info.source]), flush=True)
    jax.distributed.shutdown()
    """
)


def test_jax_processes() -> None:
    """Two JAX processes (in children: never import JAX into the pytest process)."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    for name in (*TORCHRUN, *SLURM):
        env.pop(name, None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _JAX_CHILD, str(port), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    got = sorted(json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    assert got == [["single", 0, 2, "jax"], ["single", 1, 2, "jax"]]
    assert all(p.poll() is not None for p in procs)


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*TORCHRUN, *SLURM):
        monkeypatch.delenv(name, raising=False)


def test_loader_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    from chute.distributed import loader_ranks

    _clean_env(monkeypatch)
    assert loader_ranks((1, 2)) == RankInfo(1, 2, 1, 2, "explicit")
    with pytest.raises(ChuteValueError) as exc:
        loader_ranks(True)
    assert str(exc.value) == (
        "distributed=True found no distributed run (no torch.distributed process group, no "
        "torchrun RANK/WORLD_SIZE, no JAX processes, no SLURM_PROCID/SLURM_NTASKS): launch "
        "with torchrun, or pass distributed=(rank, world_size) ((0, 1) for one process)"
    )
    for bad in ("yes", None, (0,)):
        with pytest.raises(ChuteValueError, match="distributed must be True, False or a pair"):
            loader_ranks(bad)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert loader_ranks(True).rank == 1


def test_common_seed_without_a_process_group() -> None:
    from chute.distributed import common_seed

    assert common_seed(7, lambda: 1 / 0) == 7
    with pytest.raises(ChuteValueError) as exc:
        common_seed(None, lambda: 3)
    assert str(exc.value) == (
        "a distributed DataLoader needs the same seed on every rank: pass seed= (the same int "
        "on every rank), or initialise torch.distributed first so that rank 0's seed is "
        "broadcast"
    )


def test_common_seed_is_rank_zeros_draw(process_group: object) -> None:
    from chute.distributed import common_seed

    assert common_seed(None, lambda: 12345) == 12345
