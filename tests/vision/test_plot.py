"""make_grid, save_image and plot_samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chute.dataset import TensorDataset
from chute.errors import ChuteValueError
from chute.vision.plot import make_grid, plot_samples, save_image
from chute.vision.transforms import ToTensor


def test_make_grid_layout_hand_computed() -> None:
    batch = np.stack([np.full((1, 2, 3), k + 1, np.float32) for k in range(5)])
    grid = make_grid(batch, nrow=2, padding=1, pad_value=-1)
    assert grid.shape == (3, 1 + 3 * 3, 1 + 2 * 4)  # 3 rows of 2; 1 channel -> 3
    assert grid[0, 1, 1] == 1 and grid[0, 1, 5] == 2 and grid[0, 4, 1] == 3 and grid[0, 7, 1] == 5
    assert grid[0, 0, 0] == -1 and grid[0, 7, 5] == -1  # padding and the empty last cell
    assert np.array_equal(grid[0], grid[2])


def test_make_grid_single_and_normalize() -> None:
    one = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert make_grid(one).shape == (3, 2, 3)
    norm = make_grid(np.stack([one[None], one[None] * 2]), normalize=True, padding=0)
    assert norm.min() == 0.0 and norm.max() == 1.0
    ranged = make_grid(one[None, None], normalize=True, value_range=(0.0, 2.0))
    assert ranged.max() == 1.0 and ranged[0, 0, 1] == 0.5
    each = make_grid(np.stack([one[None], one[None] * 10]), normalize=True, scale_each=True)
    assert each[:, :, :].max() == 1.0
    t = make_grid(torch.zeros(2, 3, 4, 4), nrow=1)
    assert isinstance(t, np.ndarray) and t.shape == (3, 2 + 2 * 6, 2 + 6)
    with pytest.raises(ChuteValueError, match="make_grid expects a N x C x H x W batch"):
        make_grid(np.zeros((1, 1, 1, 1, 1)))


def test_save_image_png(tmp_path: Path) -> None:
    batch = np.random.default_rng(0).random((6, 3, 8, 8), dtype=np.float32)
    path = tmp_path / "grid.png"
    save_image(batch, path, nrow=3)
    img = np.asarray(Image.open(path))
    assert img.shape == (2 + 2 * 10, 2 + 3 * 10, 3)
    expected = np.clip(batch[0] * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    assert np.array_equal(img[2:10, 2:10], expected)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def _toy_dataset(transform: object = None) -> TensorDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 20)
    if transform is not None:
        images = np.stack([transform(im) for im in images])  # type: ignore[operator]
    return TensorDataset(images, labels)


def test_plot_samples_writes_png(tmp_path: Path) -> None:
    ds = _toy_dataset()
    names = [f"class{k}" for k in range(10)]
    path = tmp_path / "samples.png"
    fig = plot_samples(ds, labels_map=names, seed=1, path=path)
    assert len(fig.axes) == 9
    titles = {ax.get_title() for ax in fig.axes}
    assert titles <= set(names)
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (800, 800, 3)
    assert img.std() > 20  # not blank
    assert (img < 50).mean() > 0.05  # dark pixels of the grey images


def test_plot_samples_after_totensor_and_classes_attr(tmp_path: Path) -> None:
    ds = _toy_dataset(ToTensor())
    ds.classes = [f"c{k}" for k in range(10)]  # type: ignore[attr-defined]
    fig = plot_samples(ds, cols=2, rows=1, seed=0, path=tmp_path / "p.png", figsize=(4, 2))
    assert all(ax.get_title().startswith("c") for ax in fig.axes)
    assert Image.open(tmp_path / "p.png").size == (400, 200)
    a = [ax.get_title() for ax in plot_samples(ds, seed=3).axes]
    assert a == [ax.get_title() for ax in plot_samples(ds, seed=3).axes]


def test_plot_samples_with_a_label_missing_from_labels_map() -> None:
    from chute.errors import ChuteKeyError

    ds = TensorDataset(np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 2, 7]))
    with pytest.raises(ChuteKeyError) as info:
        plot_samples(ds, labels_map={0: "a", 1: "b", 2: "c"}, rows=4, cols=4, seed=0)
    assert str(info.value).startswith(
        "label 7 of sample 3 is not in labels_map, whose keys are 0, 1, 2"
    )
    with pytest.raises(
        KeyError,
        match=r"label 7 of sample 3 has no name: labels_map is a sequence of 3 names \(labels 0",
    ):
        plot_samples(ds, labels_map=["a", "b", "c"], rows=4, cols=4, seed=0)
    neg = TensorDataset(np.zeros((1, 8, 8), np.uint8), np.array([-1]))  # not the last name
    with pytest.raises(KeyError, match="label -1 of sample 0 has no name"):
        plot_samples(neg, labels_map=["a", "b"], rows=1, cols=1)


def test_plot_samples_checks_rows_cols_and_path_first(tmp_path: Path) -> None:
    from chute.errors import OutputPathError

    ds = _toy_dataset()
    for bad in ({"rows": 0}, {"cols": -2}):
        with pytest.raises(ChuteValueError, match=r"(rows|cols) must be a positive integer, got"):
            plot_samples(ds, **bad)  # type: ignore[arg-type]
    with pytest.raises(OutputPathError, match=r"the folder .*missing does not exist"):
        plot_samples(ds, path=tmp_path / "missing" / "x.png")
    with pytest.raises(ChuteValueError, match=r"matplotlib writes no '\.xyz' files"):
        plot_samples(ds, path=tmp_path / "x.xyz")
    plot_samples(ds, path=tmp_path / "x.jpg", seed=0)
    assert (tmp_path / "x.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, as named
    plot_samples(ds, path=tmp_path / "x.svg", seed=0)
    assert b"<svg" in (tmp_path / "x.svg").read_bytes()[:500]


def test_save_image_refuses_unknown_formats_and_missing_folders(tmp_path: Path) -> None:
    from chute.errors import OutputPathError

    x = np.ones((2, 1, 8, 8), np.float32)
    with pytest.raises(ChuteValueError, match=r"cannot write .*x\.xyz: Pillow writes no XYZ files"):
        save_image(x, tmp_path / "x.xyz")
    with pytest.raises(OutputPathError, match="does not exist"):
        save_image(x, tmp_path / "no" / "x.png")
    save_image(x, tmp_path / "x.jpg")
    assert (tmp_path / "x.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
