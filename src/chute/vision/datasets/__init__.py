"""Vision datasets with torchvision's arguments, folder layouts and ``repr``."""

from __future__ import annotations

from .cifar import CIFAR10, CIFAR100
from .fake import FakeData
from .folder import IMG_EXTENSIONS, DatasetFolder, ImageCSVDataset, ImageFolder
from .mnist import EMNIST, KMNIST, MNIST, FashionMNIST
from .vision import StandardTransform, VisionDataset

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "EMNIST",
    "KMNIST",
    "MNIST",
    "FakeData",
    "FashionMNIST",
    "StandardTransform",
    "VisionDataset",
    # folder.py
    "IMG_EXTENSIONS",
    "DatasetFolder",
    "ImageFolder",
    "ImageCSVDataset",
]
