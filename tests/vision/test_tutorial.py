"""PyTorch's "Datasets & DataLoaders" tutorial, imports changed to chute, against a mirror
served on 127.0.0.1 with generated real-format FashionMNIST files.

The tutorial's code is kept as it is; the only changes are the import lines and
``format="torch"`` on the loaders whose batches the script treats as torch tensors.
"""

from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
pd = pytest.importorskip("pandas")

import matplotlib.pyplot as plt  # noqa: E402

from chute import DataLoader, Dataset, TensorDataset  # noqa: E402
from chute.vision import datasets  # noqa: E402
from chute.vision.datasets.synthetic import write_mnist_raw  # noqa: E402
from chute.vision.io import read_image, write_png  # noqa: E402
from chute.vision.transforms import ToTensor  # noqa: E402

EXPECTED_REPR = """Dataset FashionMNIST
    Number of datapoints: 60000
    Root location: data
    Split: Train
    StandardTransform
Transform: ToTensor()"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    src = tmp_path_factory.mktemp("mirror")
    raw = write_mnist_raw(src, "FashionMNIST", train_size=60000, test_size=10000, seed=5)
    return {p.name: p.read_bytes() for p in raw.iterdir()}


@pytest.fixture
def mirror(http_server, generated, monkeypatch, tmp_path):
    resources = []
    for name, _ in datasets.FashionMNIST.resources:
        http_server.add(f"/fashion/{name}", generated[name])
        resources.append((name, hashlib.md5(generated[name]).hexdigest()))
    monkeypatch.setattr(datasets.FashionMNIST, "mirrors", [http_server.url("/fashion/")])
    monkeypatch.setattr(datasets.FashionMNIST, "resources", resources)
    monkeypatch.chdir(tmp_path)
    return http_server


def test_loading_a_dataset_and_iterating(mirror, capsys):
    training_data = datasets.FashionMNIST(
        root="data", train=True, download=True, transform=ToTensor()
    )
    test_data = datasets.FashionMNIST(root="data", train=False, download=True, transform=ToTensor())
    print(training_data)
    assert capsys.readouterr().out == EXPECTED_REPR + "\n"
    assert len(test_data) == 10000
    assert sorted(os.listdir("data/FashionMNIST/raw"))[:2] == [
        "t10k-images-idx3-ubyte",
        "t10k-images-idx3-ubyte.gz",
    ]

    labels_map = {
        0: "T-Shirt",
        1: "Trouser",
        2: "Pullover",
        3: "Dress",
        4: "Coat",
        5: "Sandal",
        6: "Shirt",
        7: "Sneaker",
        8: "Bag",
        9: "Ankle Boot",
    }
    figure = plt.figure(figsize=(8, 8))
    cols, rows = 3, 3
    for i in range(1, cols * rows + 1):
        sample_idx = torch.randint(len(training_data), size=(1,)).item()
        img, label = training_data[sample_idx]
        figure.add_subplot(rows, cols, i)
        plt.title(labels_map[label])
        plt.axis("off")
        plt.imshow(img.squeeze(), cmap="gray")
    plt.show()
    assert len(figure.axes) == 9
    plt.close(figure)

    train_dataloader = DataLoader(training_data, batch_size=64, shuffle=True, format="torch")
    test_dataloader = DataLoader(test_data, batch_size=64, shuffle=True, format="torch")

    train_features, train_labels = next(iter(train_dataloader))
    print(f"Feature batch shape: {train_features.size()}")
    print(f"Labels batch shape: {train_labels.size()}")
    img = train_features[0].squeeze()
    label = train_labels[0]
    plt.imshow(img, cmap="gray")
    plt.show()
    print(f"Label: {label}")
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "Feature batch shape: torch.Size([64, 1, 28, 28])",
        "Labels batch shape: torch.Size([64])",
    ]
    assert out[2] == f"Label: {int(train_labels[0])}" and train_labels.dtype == torch.int64
    assert train_features.dtype == torch.float32
    assert float(train_features.min()) >= 0 and float(train_features.max()) <= 1
    plt.close("all")

    # labels belong to their images: the same rows of the raw arrays, in a fixed order
    plain = next(iter(DataLoader(test_data, batch_size=64, format="torch")))
    np.testing.assert_array_equal(plain[1].numpy(), test_data.targets[:64])
    np.testing.assert_array_equal(plain[0].numpy()[:, 0], test_data.data[:64] / np.float32(255))
    assert len(list(test_dataloader)) == 157


def test_download_is_not_repeated(mirror):
    datasets.FashionMNIST(root="data", train=True, download=True)
    count = sum(len(r.requests) for r in mirror.routes.values())
    datasets.FashionMNIST(root="data", train=True, download=True)
    assert sum(len(r.requests) for r in mirror.routes.values()) == count == 4


def _write_images(img_dir, n):
    os.makedirs(img_dir, exist_ok=True)
    rows = []
    for i in range(n):
        img = np.full((3, 8 + i, 10), 20 * i, np.uint8)
        write_png(img, os.path.join(img_dir, f"img{i}.png"))
        rows.append(f"img{i}.png,{i % 3}")
    return rows


class CustomImageDataset(Dataset):
    """The tutorial's custom dataset, unchanged apart from the imports."""

    def __init__(self, annotations_file, img_dir, transform=None, target_transform=None):
        self.img_labels = pd.read_csv(annotations_file)
        self.img_dir = img_dir
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.img_labels)

    def __getitem__(self, idx):
        img_path = os.path.join(self.img_dir, self.img_labels.iloc[idx, 0])
        image = read_image(img_path)
        label = self.img_labels.iloc[idx, 1]
        if self.transform:
            image = self.transform(image)
        if self.target_transform:
            label = self.target_transform(label)
        return image, label


def test_custom_image_dataset_and_image_csv_dataset(tmp_path):
    rows = _write_images(tmp_path / "imgs", 5)
    (tmp_path / "labels.csv").write_text("file_name,label\n" + "\n".join(rows) + "\n")
    custom = CustomImageDataset(tmp_path / "labels.csv", tmp_path / "imgs")
    builtin = datasets.ImageCSVDataset(tmp_path / "labels.csv", tmp_path / "imgs")
    assert len(custom) == len(builtin) == 5
    for i in range(5):
        (a, la), (b, lb) = custom[i], builtin[i]
        np.testing.assert_array_equal(a, b)
        assert a.shape == (3, 8 + i, 10) and int(la) == lb == i % 3
    batch = next(iter(DataLoader(builtin, batch_size=1, format="torch")))
    assert batch[0].shape == torch.Size([1, 3, 8, 10]) and batch[1].tolist() == [0]


class SimpleCustomBatch:
    """The custom batch with ``pin_memory`` from the torch.utils.data documentation."""

    def __init__(self, data):
        transposed_data = list(zip(*data))
        self.inp = torch.stack(transposed_data[0], 0)
        self.tgt = torch.stack(transposed_data[1], 0)

    def pin_memory(self):
        self.inp = self.inp.pin_memory()
        self.tgt = self.tgt.pin_memory()
        return self


def collate_wrapper(batch):
    return SimpleCustomBatch(batch)


def test_pinned_custom_batch():
    inps = torch.arange(10 * 5, dtype=torch.float32).view(10, 5)
    tgts = torch.arange(10 * 5, dtype=torch.float32).view(10, 5)
    dataset = TensorDataset(inps, tgts)
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate_wrapper, pin_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no accelerator here: pinning is skipped with a warning
        batches = list(loader)
    assert len(batches) == 5 and all(isinstance(b, SimpleCustomBatch) for b in batches)
    assert batches[1].inp.tolist() == inps[2:4].tolist()
    if torch.cuda.is_available():  # pragma: no cover - no GPU on CI
        assert batches[0].inp.is_pinned() and batches[0].tgt.is_pinned()
