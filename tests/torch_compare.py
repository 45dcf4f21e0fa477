"""Helpers shared by the tests that run a scenario through torch.utils.data and chute."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def torch_dtype_of(dtype: np.dtype) -> Any:
    """The torch dtype that torch's default_collate gives for a NumPy dtype."""
    return torch.from_numpy(np.zeros(1, dtype=dtype)).dtype


def assert_like_torch(ours: Any, theirs: Any, path: str = "batch") -> None:
    """chute's batch has torch's structure; NumPy leaves match torch's tensors in shape,
    dtype (mapped) and value; torch leaves (and NumPy scalars) are equal."""
    if isinstance(theirs, torch.Tensor):
        if isinstance(ours, torch.Tensor):
            assert ours.dtype == theirs.dtype, path
            assert torch.equal(ours, theirs), path
            return
        assert isinstance(ours, (np.ndarray, np.generic)), f"{path}: {type(ours)}"
        assert np.shape(ours) == tuple(theirs.shape), path
        assert torch_dtype_of(ours.dtype) == theirs.dtype, path
        np.testing.assert_array_equal(ours, theirs.numpy(), err_msg=path)
        return
    if type(theirs) is tuple and all(isinstance(x, (str, bytes)) for x in theirs):
        # torch returns zip()'s tuple for strings inside sequences and namedtuples (a list
        # inside dicts); chute always returns a list of strings
        theirs = list(theirs)
    assert type(ours) is type(theirs), f"{path}: {type(ours)} vs {type(theirs)}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), path
        for k in theirs:
            assert_like_torch(ours[k], theirs[k], f"{path}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_like_torch(a, b, f"{path}[{i}]")
    else:
        assert ours == theirs, path


def assert_tree_equal(a: Any, b: Any, path: str = "x") -> None:
    """Same types all the way down; arrays and tensors equal in shape, dtype and value."""
    assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tree_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, path
