"""ImageFolder, DatasetFolder and ImageCSVDataset: layout, errors, repr, reduced JPEG decoding."""

from __future__ import annotations

import os
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from chute import StackedSamples, rng
from chute.errors import ChuteKeyError, ChuteValueError, DatasetFormatError, ImageDecodeError
from chute.vision.datasets import (
    IMG_EXTENSIONS,
    DatasetFolder,
    ImageCSVDataset,
    ImageFolder,
)
from chute.vision.datasets._strings import PackedStrings
from chute.vision.datasets.folder import default_loader, make_dataset, pil_loader
from chute.vision.io import read_image, write_jpeg, write_png
from chute.vision.transforms import (
    CenterCrop,
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    a, b = np.random.default_rng(seed).uniform(0.02, 0.08, 2)
    img = np.stack([127 + 100 * np.sin(a * x + b * y), 127 + 100 * np.cos(b * x - a * y), x % 200])
    return img.astype(np.uint8)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for c, names in {"dog": ["b.png", "a.JPG", "notes.txt"], "cat": ["z.png"]}.items():
        (root / c).mkdir(parents=True)
        for k, n in enumerate(names):
            if n.endswith(".txt"):
                (root / c / n).write_text("x")
            elif n.lower().endswith(".jpg"):
                write_jpeg(_smooth(6, 8, k), root / c / n)
            else:
                write_png(np.full((3, 6, 8), k * 40, np.uint8), root / c / n)
    (root / "cat" / "sub").mkdir()
    write_png(np.zeros((1, 3, 3), np.uint8), root / "cat" / "sub" / "y.png")
    return root


def test_image_folder_layout(tree: Path) -> None:
    ds = ImageFolder(str(tree))
    assert ds.classes == ["cat", "dog"]
    assert ds.class_to_idx == {"cat": 0, "dog": 1}
    rel = [os.path.relpath(p, tree) for p, _ in ds.samples]
    # torchvision's order: os.walk folders sorted by path, then files sorted by name
    assert rel == ["cat/z.png", "cat/sub/y.png", "dog/a.JPG", "dog/b.png"]
    assert ds.targets == [0, 0, 1, 1]
    assert ds.imgs == ds.samples
    assert ds.samples == make_dataset(tree, ds.class_to_idx, IMG_EXTENSIONS)
    img, target = ds[1]
    assert img.shape == (3, 3, 3) and img.dtype == np.uint8 and target == 0
    assert ds[-1][1] == 1
    pil = ImageFolder(tree, loader=pil_loader)[1][0]
    assert isinstance(pil, Image.Image) and pil.mode == "RGB"


def test_image_folder_transforms_and_repr(tree: Path) -> None:
    ds = ImageFolder(str(tree), transform=ToTensor(), target_transform=lambda t: t * 10)
    img, target = ds[2]
    assert img.shape == (3, 6, 8) and img.dtype == np.float32 and target == 10
    plain = ImageFolder(str(tree))
    assert (
        repr(plain)
        == f"Dataset ImageFolder\n    Number of datapoints: 4\n    Root location: {tree}"
    )
    text = repr(ImageFolder(str(tree), transform=ToTensor()))
    assert text.endswith("    StandardTransform\nTransform: ToTensor()")


def test_is_valid_file_and_dataset_folder(tree: Path) -> None:
    ds = ImageFolder(tree, is_valid_file=lambda p: p.endswith(".txt"), allow_empty=True)
    assert len(ds) == 1 and ds.targets == [1]
    folder = DatasetFolder(tree, loader=lambda p: Path(p).name, extensions=(".png",))
    assert [folder[i][0] for i in range(len(folder))] == ["z.png", "y.png", "b.png"]
    with pytest.raises(ChuteValueError, match="Both extensions and is_valid_file cannot be None"):
        DatasetFolder(tree, loader=str)


def test_empty_class_and_empty_root(tmp_path: Path, tree: Path) -> None:
    (tree / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"Found no valid file for the classes empty in"):
        ImageFolder(tree)
    with pytest.raises(FileNotFoundError, match=r"Supported extensions are: \.jpg, \.jpeg, \.png"):
        ImageFolder(tree)
    assert len(ImageFolder(tree, allow_empty=True)) == 4
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match=r"Couldn't find any class folder in .*bare"):
        ImageFolder(tmp_path / "bare")


def _csv_folder(tmp_path: Path, rows: list[str], n_images: int = 3, size=(30, 40)) -> Path:
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    for k in range(n_images):
        write_jpeg(_smooth(*size, seed=k), img_dir / f"img{k}.jpg", quality=90)
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return img_dir


def test_csv_without_header_like_the_tutorial(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, ["img0.jpg, 0", "img1.jpg, 3", "", "img2.jpg, 9"])
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir)
    assert len(ds) == 3 and ds.targets == [0, 3, 9]
    img, label = ds[1]
    assert np.array_equal(img, read_image(img_dir / "img1.jpg")) and label == 3
    assert img.shape == (3, 30, 40)
    assert ds.samples[2] == (os.path.join(img_dir, "img2.jpg"), 9)
    assert repr(ds).splitlines()[:3] == [
        "Dataset ImageCSVDataset",
        "    Number of datapoints: 3",
        f"    Root location: {img_dir}",
    ]


def test_csv_with_header_and_named_columns(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, ["label,file,extra", "4,img0.jpg,x", "5,img2.jpg,y"])
    ds = ImageCSVDataset(
        tmp_path / "labels.csv", img_dir, image_column="file", label_column="label"
    )
    assert ds.targets == [4, 5] and ds.columns == ["label", "file", "extra"]
    assert ImageCSVDataset(
        tmp_path / "labels.csv", img_dir, image_column=1, label_column=0, header=True
    ).targets == [4, 5]
    with pytest.raises(ChuteKeyError, match=r"label_column='y' is not a column of .*labels\.csv"):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir, image_column="file", label_column="y")


def test_csv_named_column_without_header(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, ["img0.jpg,1"])
    with pytest.raises(ChuteValueError, match="label_column='label' names a column, but"):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir, label_column="label", header=False)
    # "infer" with a column name takes the first row as the header
    with pytest.raises(ChuteKeyError, match=r"its columns are \['img0.jpg', '1'\]"):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir, label_column="label")


def test_csv_malformed_rows(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, ["img0.jpg,1", "img1.jpg,2,extra"])
    with pytest.raises(
        DatasetFormatError, match=r"labels\.csv', line 2: expected 2 columns, got 3"
    ):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir)
    _csv_folder(tmp_path, ["file,label", "img0.jpg,1", "img1.jpg,cat"])
    with pytest.raises(DatasetFormatError, match=r"line 3: label 'cat' is not an integer"):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir)


def test_csv_empty_and_header_only(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, [""])
    with pytest.raises(DatasetFormatError, match=r"labels\.csv' has no rows"):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir)
    _csv_folder(tmp_path, ["file,label"])
    with pytest.raises(DatasetFormatError, match="has a header but no data rows"):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir)
    _csv_folder(tmp_path, ["img0.jpg,99999999999999999999"])
    with pytest.raises(DatasetFormatError, match="is not an integer"):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir)
    _csv_folder(tmp_path, ["7,img0.jpg"])  # label first: inferred from label_column
    assert ImageCSVDataset(
        tmp_path / "labels.csv", img_dir, image_column=1, label_column=0
    ).targets == [7]


def test_csv_missing_image(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, ["img0.jpg,1", "gone.jpg,2"])
    expected = r"labels\.csv', line 2: image '.*gone\.jpg' does not exist"
    with pytest.raises(FileNotFoundError, match=expected):
        ImageCSVDataset(tmp_path / "labels.csv", img_dir)
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, check_files=False)
    with pytest.raises(FileNotFoundError, match=expected):
        ds[1]
    ds.transform = RandomResizedCrop(8)
    with pytest.raises(FileNotFoundError, match=expected):
        ds[1]
    _csv_folder(tmp_path, ["name,label", "img0.jpg,1", "", "gone.jpg,2"])
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, check_files=False)
    with pytest.raises(FileNotFoundError, match=r"line 4: image '.*gone\.jpg' does not exist"):
        ds[1]


def test_csv_corrupt_image_names_path(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, ["img0.jpg,1"])
    data = (img_dir / "img0.jpg").read_bytes()
    (img_dir / "img0.jpg").write_bytes(data[: len(data) // 2])
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir)
    with pytest.raises(ImageDecodeError, match=r"img0\.jpg"):
        ds[0]
    ds.transform = RandomResizedCrop(4)
    with pytest.raises(ImageDecodeError, match=r"img0\.jpg"):
        ds[0]


def _fetch(ds: ImageCSVDataset, i: int, seed: int = 5) -> np.ndarray:
    with rng.epoch_scope(seed, 0), rng.sample_scope(i):
        return np.asarray(ds[i][0])


@pytest.mark.parametrize(
    "transform",
    [
        RandomResizedCrop(32),
        Compose([RandomResizedCrop(48, scale=(0.3, 1.0)), RandomHorizontalFlip(), ToTensor()]),
        Resize(60),
        Compose([Resize((50, 70)), CenterCrop(40)]),
        RandomResizedCrop(32, backend="torch"),  # the reduced path resamples with Pillow
    ],
)
def test_reduced_jpeg_decoding_within_tolerance(tmp_path: Path, transform: object) -> None:
    n = 6
    img_dir = _csv_folder(tmp_path, [f"img{k}.jpg,{k}" for k in range(n)], n, size=(300, 400))
    fast = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=transform)
    exact = ImageCSVDataset(
        tmp_path / "labels.csv", img_dir, transform=transform, reduced_decode=False
    )
    diffs = []
    for i in range(n):
        a, b = _fetch(fast, i), _fetch(exact, i)
        assert a.shape == b.shape and a.dtype == b.dtype
        scale = 255.0 if a.dtype == np.float32 else 1.0
        diffs.append(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() * scale)
    # chute's "JPEG tolerance" (NOTE [ Reduced-size JPEG decoding ])
    assert max(diffs) <= 3.0, diffs
    assert np.mean(diffs) <= 1.5, diffs


def test_no_reduction_possible_gives_exact_result(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, ["img0.jpg,0"], 1, size=(30, 40))
    t = RandomResizedCrop(28, scale=(0.9, 1.0))
    fast = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t)
    exact = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t, reduced_decode=False)
    assert np.array_equal(_fetch(fast, 0), _fetch(exact, 0))


def test_getitems_equals_getitem_in_scope(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, [f"img{k}.jpg,{k}" for k in range(3)])
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=RandomResizedCrop(8))
    with rng.epoch_scope(3, 1):
        batch = ds.__getitems__([2, 0])
    assert np.array_equal(batch[0][0], _fetch_at(ds, 2, 3, 1)) and batch[1][1] == 0


def _fetch_at(ds: ImageCSVDataset, i: int, seed: int, epoch: int) -> np.ndarray:
    with rng.epoch_scope(seed, epoch), rng.sample_scope(i):
        return np.asarray(ds[i][0])


def test_packed_strings_are_compact() -> None:
    names = [f"images/img_{i:07d}.jpg" for i in range(200_000)]
    packed = PackedStrings(names)
    assert packed[123_456] == names[123_456] and packed[-1] == names[-1] and packed[0] == names[0]
    assert packed.nbytes <= 7 * len(names) + 64  # prefix and suffix once, no offsets
    ragged = [f"dir{i % 7}/{'x' * (i % 5)}{i}.png" for i in range(10_000)]
    assert list(PackedStrings(ragged)) == ragged
    list_cost = sys.getsizeof(ragged) + sum(sys.getsizeof(s) for s in ragged)
    assert PackedStrings(ragged).nbytes * 3 < list_cost
    odd = PackedStrings(["é.png", "\udcff.png", ""])
    assert list(odd) == ["é.png", "\udcff.png", ""]
    assert list(PackedStrings(["ab", "ab", "aab"])) == ["ab", "ab", "aab"]
    assert list(PackedStrings(["same", "same"])) == ["same", "same"]
    assert list(PackedStrings([])) == []
    with pytest.raises(IndexError, match="index 3 is out of range for 3 strings"):
        odd[3]


def test_csv_of_many_rows_is_small(tmp_path: Path) -> None:
    n = 100_000
    (tmp_path / "big.csv").write_text("".join(f"img_{i:07d}.jpg,{i % 10}\n" for i in range(n)))
    tracemalloc.start()
    ds = ImageCSVDataset(tmp_path / "big.csv", tmp_path, check_files=False)
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ds) == n and ds.targets[-1] == (n - 1) % 10
    # 7 bytes of name + 1 of label per row, not per-row Python objects
    assert kept < 12 * n, kept


def test_getitems_runs_the_batchable_tail_once(tmp_path: Path) -> None:
    img_dir = _csv_folder(tmp_path, [f"img{k}.jpg,{k}" for k in range(4)], 4, size=(60, 80))
    t = Compose([RandomResizedCrop(16), RandomHorizontalFlip(), ToTensor()])
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t)
    order = [3, 1, 0, 2]
    with rng.epoch_scope(11, 2):
        batch = ds.__getitems__(order)
    assert isinstance(batch, StackedSamples) and len(batch) == 4
    images, labels = batch.data
    assert images.shape == (4, 3, 16, 16) and images.dtype == np.float32
    assert labels.tolist() == order
    for k, i in enumerate(order):
        assert np.array_equal(images[k], _fetch_at(ds, i, 11, 2))


def test_getitems_with_unequal_shapes_and_folders(tree: Path) -> None:
    t = Compose([Resize(4), RandomHorizontalFlip(), ToTensor()])
    ds = ImageFolder(tree, transform=t)  # 6x8 and 3x3 images: shapes differ after Resize(4)
    with rng.epoch_scope(0, 0):
        batch = ds.__getitems__([0, 1, 2])
    assert isinstance(batch, list) and [b[1] for b in batch] == [0, 0, 1]
    for k in range(3):
        with rng.epoch_scope(0, 0), rng.sample_scope(k):
            assert np.array_equal(batch[k][0], ds[k][0])
    same = ImageFolder(tree, transform=Compose([CenterCrop(3), RandomHorizontalFlip()]))
    with rng.epoch_scope(0, 0):
        stacked = same.__getitems__([0, 3])  # both 6x8: the whole chain runs batched
    assert isinstance(stacked, StackedSamples) and stacked.data[0].shape == (2, 3, 3, 3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=6), max_size=8))
def test_packed_strings_roundtrip(strings: list[str]) -> None:
    packed = PackedStrings(strings)
    assert list(packed) == strings and len(packed) == len(strings)


def test_through_the_dataloader(tmp_path: Path) -> None:
    import chute

    img_dir = _csv_folder(tmp_path, [f"img{k}.jpg,{k}" for k in range(5)], 5, size=(40, 50))
    t = Compose([RandomResizedCrop(16), RandomHorizontalFlip(), ToTensor()])
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t)
    runs = []
    for _ in range(2):
        loader = chute.DataLoader(ds, batch_size=2, shuffle=True, seed=4)
        runs.append([(np.asarray(x).copy(), np.asarray(y).copy()) for x, y in loader])
    assert [x.shape for x, _ in runs[0]] == [(2, 3, 16, 16), (2, 3, 16, 16), (1, 3, 16, 16)]
    assert sorted(np.concatenate([y for _, y in runs[0]]).tolist()) == [0, 1, 2, 3, 4]
    for (x0, y0), (x1, y1) in zip(runs[0], runs[1], strict=True):
        assert np.array_equal(x0, x1) and np.array_equal(y0, y1)


def test_image_folder_reduced_decoding_keeps_its_layout(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    write_jpeg(_smooth(300, 400, 1), root / "a" / "big.jpg", quality=90)
    write_png(_smooth(30, 40, 2), root / "a" / "small.png")
    for t in (RandomResizedCrop(32), Resize(40), Compose([RandomResizedCrop(20), ToTensor()])):
        fast = ImageFolder(root, transform=t)
        exact = ImageFolder(root, transform=t, loader=lambda p: default_loader(p))
        for i in range(2):
            with rng.epoch_scope(1, 0), rng.sample_scope(i):
                a = np.asarray(fast[i][0])
            with rng.epoch_scope(1, 0), rng.sample_scope(i):
                b = np.asarray(exact[i][0])
            assert a.shape == b.shape and a.dtype == b.dtype
            scale = 255.0 if a.dtype == np.float32 else 1.0
            assert np.abs(a.astype(float) - b.astype(float)).mean() * scale <= 3.0


def test_datasets_pickle_for_spawned_workers(tmp_path: Path, tree: Path) -> None:
    import pickle

    img_dir = _csv_folder(tmp_path, ["img0.jpg,1", "img1.jpg,2"])
    t = Compose([RandomResizedCrop(8), RandomHorizontalFlip(), ToTensor()])
    for ds in (
        ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t),
        ImageFolder(tree, transform=t),
    ):
        copy = pickle.loads(pickle.dumps(ds))
        assert len(copy) == len(ds) and copy.targets == ds.targets
        with rng.epoch_scope(2, 0), rng.sample_scope(1):
            a = copy[1][0]
        with rng.epoch_scope(2, 0), rng.sample_scope(1):
            b = ds[1][0]
        assert np.array_equal(a, b)


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_workers_give_the_same_batches(tmp_path: Path, worker_type: str) -> None:
    import chute

    img_dir = _csv_folder(tmp_path, [f"img{k}.jpg,{k}" for k in range(6)], 6, size=(40, 50))
    t = Compose([RandomResizedCrop(12), RandomHorizontalFlip(), ToTensor()])
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t)

    def run(workers: int) -> list[tuple[np.ndarray, np.ndarray]]:
        loader = chute.DataLoader(
            ds, batch_size=4, shuffle=True, seed=9, num_workers=workers, worker_type=worker_type
        )
        return [(np.array(x), np.array(y)) for x, y in loader]

    alone, pooled = run(0), run(2)
    assert len(alone) == len(pooled) == 2
    for (x0, y0), (x1, y1) in zip(alone, pooled, strict=True):
        assert np.array_equal(x0, x1) and np.array_equal(y0, y1)


def test_getitems_with_a_pil_loader(tree: Path) -> None:
    ds = ImageFolder(tree, transform=Compose([CenterCrop(2), ToTensor()]), loader=pil_loader)
    with rng.epoch_scope(0, 0):
        batch = ds.__getitems__([0, 2])
    assert [b[0].shape for b in batch] == [(3, 2, 2), (3, 2, 2)] and [b[1] for b in batch] == [0, 1]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), epoch=st.integers(0, 3), hwc=st.booleans())
def test_torch_backend_batch_equals_per_sample_and_read_image(
    tmp_path_factory: pytest.TempPathFactory, seed: int, epoch: int, hwc: bool
) -> None:
    # NOTE [ Resampling backends ] with NOTE [ File datasets fetch a batch in two halves ]
    tmp_path = tmp_path_factory.mktemp("torch_backend")
    img_dir = _csv_folder(tmp_path, [f"img{k}.jpg,{k}" for k in range(4)], 4, size=(60, 80))
    t = Compose([RandomResizedCrop(40, backend="torch"), RandomHorizontalFlip(), ToTensor()])
    if hwc:
        (img_dir / "labels.csv").unlink(missing_ok=True)
        ds: ImageCSVDataset | ImageFolder = ImageFolder(tmp_path, transform=t)
        plain: ImageCSVDataset | ImageFolder = ImageFolder(
            tmp_path, transform=t, loader=lambda p: default_loader(p)
        )
    else:
        ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t)
        plain = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t, reduced_decode=False)
    order = [3, 0, 2, 1]
    with rng.epoch_scope(seed, epoch):
        batch = ds.__getitems__(order)
    assert isinstance(batch, StackedSamples)
    for k, i in enumerate(order):
        single = _fetch_at(ds, i, seed, epoch)
        assert np.array_equal(batch.data[0][k], single)
        # no reduced decoding at this size: the dataset's fast path = decode + the transform
        assert np.array_equal(single, _fetch_at(plain, i, seed, epoch))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["RGB", "GRAY"])
def test_torch_backend_without_simplejpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from chute.vision import io as vio

    img_dir = _csv_folder(tmp_path, [f"img{k}.jpg,{k}" for k in range(2)], 2, size=(60, 80))
    read_mode = getattr(vio.ImageReadMode, mode)
    t = RandomResizedCrop(40, backend="torch")
    ds = ImageCSVDataset(tmp_path / "labels.csv", img_dir, transform=t, read_mode=read_mode)
    with_sj = [_fetch_at(ds, i, 5, 0) for i in range(2)]
    monkeypatch.setattr(vio, "_has_simplejpeg", lambda: False)  # Pillow decodes instead
    for i in range(2):
        got = _fetch_at(ds, i, 5, 0)
        assert got.shape == (3 if mode == "RGB" else 1, 40, 40) and got.flags.writeable
        assert np.array_equal(got, with_sj[i])


def test_reduced_decoding_applies_the_pixel_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    write_jpeg(_smooth(40, 40), root / "a" / "x.jpg")
    ds = ImageFolder(root, transform=Compose([RandomResizedCrop(8), ToTensor()]))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1600 > 2 * 500
    with pytest.raises(ImageDecodeError, match="decompression-bomb limit of 500") as info:
        ds[0]
    assert str(root / "a" / "x.jpg") in str(info.value)


def _png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


def test_16_bit_png_in_an_image_folder_is_8_bit_rgb(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896], [57648, 65535, 1000]], np.uint16)
    _png16(tmp_path / "a" / "deep.png", values)
    write_png(np.full((3, 2, 3), 7, np.uint8), tmp_path / "a" / "plain.png")
    expected = np.round(values / 257).astype(np.uint8)
    for transform in (None, Resize((2, 3)), Compose([RandomResizedCrop((2, 3)), ToTensor()])):
        ds = ImageFolder(tmp_path, transform=transform)
        img, _ = ds[0]
        if transform is None:
            assert img.dtype == np.uint8 and img.shape == (2, 3, 3)
            np.testing.assert_array_equal(img, np.repeat(expected[:, :, None], 3, axis=2))
        else:
            assert np.asarray(img).max() <= 255  # 8-bit values (floats in [0, 1] after ToTensor)
        for sample in ds.__getitems__([0, 1]):
            assert np.asarray(sample[0]).max() <= 255
    tensor = ImageFolder(tmp_path, transform=ToTensor())
    assert float(np.asarray(tensor[0][0]).max()) == 1.0  # 65535 -> 255 -> 1.0, not 257.0


def test_16_bit_png_in_a_csv_dataset_is_8_bit(tmp_path: Path) -> None:
    values = np.array([[0, 65535], [32896, 257]], np.uint16)
    _png16(tmp_path / "img" / "deep.png", values)
    (tmp_path / "labels.csv").write_text("deep.png,1\n")
    for transform in (None, Resize((2, 2))):
        img, _ = ImageCSVDataset(tmp_path / "labels.csv", tmp_path / "img", transform)[0]
        assert img.dtype == np.uint8
        np.testing.assert_array_equal(img[0], np.round(values / 257).astype(np.uint8))
    assert read_image(tmp_path / "img" / "deep.png").dtype == np.uint16  # read_image keeps 16


def test_a_zero_byte_image_in_a_folder_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    empty = tmp_path / "a" / "empty.jpg"
    empty.write_bytes(b"")
    for transform in (None, Compose([RandomResizedCrop(8), ToTensor()])):
        with pytest.raises(ImageDecodeError) as info:
            ImageFolder(tmp_path, transform=transform)[0]
        assert str(info.value) == f"cannot decode image '{empty}': the file is empty (0 bytes)"
