"""MNIST, Fashion-MNIST and Kuzushiji-MNIST, read from their raw IDX files.

The folder layout, the arguments, ``mirrors``, ``resources``, ``classes`` and the ``repr``
are torchvision's: ``root/<ClassName>/raw/train-images-idx3-ubyte`` (or the ``.gz`` file as
downloaded). ``data`` is an Nx28x28 uint8 NumPy array and ``targets`` an int64 NumPy array;
samples are NumPy images, not PIL images (see NOTE [ Batch-first vision datasets ]).
"""

from __future__ import annotations

import os
import shutil
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...download import download_url, extract_archive
from ...errors import ChuteValueError, DatasetFormatError, DatasetNotFoundError
from ..idx import read_idx
from .vision import VisionDataset

__all__ = ["MNIST", "FashionMNIST", "KMNIST", "EMNIST"]


class MNIST(VisionDataset):
    """The `MNIST <http://yann.lecun.com/exdb/mnist/>`_ digits.

    Args:
        root: folder that holds ``MNIST/raw/train-images-idx3-ubyte`` (or ``.gz``) etc.
        train: the 60,000 training images if True, else the 10,000 test images.
        transform: a callable on the uint8 HxW image (e.g. ``ToTensor()``).
        target_transform: a callable on the int label.
        download: fetch the files from ``mirrors`` if they are not in ``root`` yet. Each file
            is checked against its md5 in ``resources`` before it is unpacked or read.

    Example:
        >>> ds = FashionMNIST("data", train=True, download=True)  # doctest: +SKIP
        >>> img, label = ds[0]  # doctest: +SKIP
        >>> img.shape, img.dtype, ds.classes[label]  # doctest: +SKIP
        ((28, 28), dtype('uint8'), 'Ankle boot')
    """

    accepts_index_arrays = True  # __getitems__ takes an int64 array (see chute.Dataset)
    safe_to_fetch_before_fork = True  # no handle kept between fetches (see chute.Dataset)

    mirrors: ClassVar[list[str]] = [
        "http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes: ClassVar[list[str]] = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool = True,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_exists():
            missing = [name for name in self._file_names() if self._find(name) is None]
            raise DatasetNotFoundError(
                f"Dataset not found. You can use download=True to download it "
                f"(missing in {self.raw_folder}: {', '.join(missing)}, or their .gz files)"
            )
        self.data, self.targets = self._load_data()

    @property
    def raw_folder(self) -> str:
        """``root/<ClassName>/raw``, where the IDX files live."""
        return os.path.join(str(self.root), type(self).__name__, "raw")

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name → label."""
        return {name: i for i, name in enumerate(self.classes)}

    def _file_names(self) -> list[str]:
        split = "train" if self.train else "t10k"
        return [f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"]

    def _find(self, name: str) -> Path | None:
        """The extracted file if present, else its ``.gz`` form if present, else None."""
        for candidate in (name, f"{name}.gz"):
            path = Path(self.raw_folder) / candidate
            if path.is_file():
                return path
        return None

    def _check_exists(self) -> bool:
        return all(self._find(name) is not None for name in self._file_names())

    def _load_data(self) -> tuple[np.ndarray, np.ndarray]:
        image_name, label_name = self._file_names()
        image_path, label_path = self._find(image_name), self._find(label_name)
        assert image_path is not None and label_path is not None
        data = read_idx(image_path)
        labels = read_idx(label_path)
        if data.ndim != 3 or data.dtype != np.uint8:
            raise DatasetFormatError(
                f"{image_path}: expected uint8 images of shape NxHxW, found {data.dtype} "
                f"of shape {data.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(data):
            raise DatasetFormatError(
                f"{label_path}: expected {len(data)} labels (one per image in "
                f"{image_path.name}), found shape {labels.shape}"
            )
        return data, labels.astype(np.int64)

    def download(self) -> None:
        """Download the ``.gz`` files and unpack them, for every file not unpacked yet.

        A ``.gz`` file already in ``raw_folder`` is used if its md5 matches, else fetched
        again; nothing is unpacked or parsed before its md5 matches.
        """
        os.makedirs(self.raw_folder, exist_ok=True)
        for filename, md5 in self.resources:
            extracted = Path(self.raw_folder, filename[: -len(".gz")])
            if extracted.is_file():
                continue
            archive = download_url(
                [f"{mirror}{filename}" for mirror in self.mirrors],
                Path(self.raw_folder, filename),
                md5=md5,
            )
            extract_archive(archive, self.raw_folder)

    def __len__(self) -> int:
        return len(self.data)

    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.data.take(idx, axis=0), self.targets.take(idx)

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train is True else 'Test'}"


class FashionMNIST(MNIST):
    """`Fashion-MNIST <https://github.com/zalandoresearch/fashion-mnist>`_: Zalando's
    28x28 gray images of clothes, in MNIST's format. Arguments as :class:`MNIST`."""

    mirrors: ClassVar[list[str]] = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes: ClassVar[list[str]] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


class KMNIST(MNIST):
    """`Kuzushiji-MNIST <https://github.com/rois-codh/kmnist>`_: cursive Japanese
    characters, in MNIST's format. Arguments as :class:`MNIST`."""

    mirrors: ClassVar[list[str]] = ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
        ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
        ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
        ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
    ]
    classes: ClassVar[list[str]] = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]


_EMNIST_MERGED = set("cijklmopsuvwxyz")
_EMNIST_ALL = set(string.digits + string.ascii_letters)


class EMNIST(MNIST):
    """`EMNIST <https://www.nist.gov/itl/products-and-services/emnist-dataset>`_: handwritten
    digits and letters in six splits, in MNIST's format.

    Args:
        root: folder that holds ``EMNIST/raw/emnist-<split>-train-images-idx3-ubyte`` etc.
        split: ``"byclass"``, ``"bymerge"``, ``"balanced"``, ``"letters"``, ``"digits"`` or
            ``"mnist"``.
        **kwargs: ``train``, ``transform``, ``target_transform``, ``download`` as
            :class:`MNIST`. The download is one zip archive of all splits (md5-checked).
    """

    url = "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip"
    md5 = "58c8d27c78d21e728a6bc7b3cc06412e"
    splits = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
    classes_split_dict: ClassVar[dict[str, list[str]]] = {
        "byclass": sorted(_EMNIST_ALL),
        "bymerge": sorted(_EMNIST_ALL - _EMNIST_MERGED),
        "balanced": sorted(_EMNIST_ALL - _EMNIST_MERGED),
        "letters": ["N/A", *string.ascii_lowercase],
        "digits": list(string.digits),
        "mnist": list(string.digits),
    }

    def __init__(self, root: str | os.PathLike[str], split: str, **kwargs: Any) -> None:
        if split not in self.splits:
            raise ChuteValueError(
                f"Unknown value {split!r} for argument split. "
                f"Valid values are {{{', '.join(self.splits)}}}."
            )
        self.split = split
        super().__init__(root, **kwargs)
        self.classes = self.classes_split_dict[split]  # type: ignore[misc]

    def _file_names(self) -> list[str]:
        prefix = f"emnist-{self.split}-{'train' if self.train else 'test'}"
        return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]

    def download(self) -> None:
        """Download the zip of all splits (md5-checked) and unpack its ``.gz`` files."""
        if self._check_exists():
            return
        raw = Path(self.raw_folder)
        raw.mkdir(parents=True, exist_ok=True)
        archive = download_url(self.url, raw / "gzip.zip", md5=self.md5)
        extract_archive(archive, raw)
        gzip_folder = raw / "gzip"
        for member in sorted(gzip_folder.glob("*.gz")):
            extract_archive(member, raw)
        shutil.rmtree(gzip_folder)
