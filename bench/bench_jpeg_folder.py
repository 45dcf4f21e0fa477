"""CSV-annotated folder of 375x500 JPEGs, RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor.

chute: ``ImageCSVDataset`` + ``chute.vision.transforms`` + ``chute.DataLoader``.
PyTorch: the tutorial's ``CustomImageDataset`` (PIL open + convert RGB) with the transforms
torchvision runs on PIL images (PIL crop/resize/flip, then a torch to-tensor), written here
because torchvision is not installed, and ``torch.utils.data.DataLoader``; and the same
dataset with the transforms written as torch tensor ops (uint8 ``interpolate`` with
antialias, which is faster than Pillow's resize).

Batch 64, shuffled, one epoch, ``--workers`` workers on both sides (chute tries thread and
process workers), same files, same run. Prints samples/s and the ratios.
"""

from __future__ import annotations

import gc
import math
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.utils.data as tud
from PIL import Image

import chute
from _common import Result, batch_len, parser, report
from chute.vision import transforms as T
from chute.vision.datasets import ImageCSVDataset
from chute.vision.io import write_jpeg


def make_folder(root: str, n: int, height: int = 375, width: int = 500, quality: int = 90) -> str:
    """Write ``n`` photo-like JPEGs and ``labels.csv``; return the CSV path."""
    gen = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    lines = []
    for i in range(n):
        a, b, c = gen.uniform(0.01, 0.06, 3)
        img = np.stack(
            [
                127 + 100 * np.sin(a * x + b * y),
                127 + 100 * np.cos(b * x - c * y),
                127 + 100 * np.sin(c * (x + y)),
            ]
        )
        img += gen.normal(0, 12, img.shape).astype(np.float32)
        name = f"img_{i:05d}.jpg"
        write_jpeg(np.clip(img, 0, 255).astype(np.uint8), os.path.join(root, name), quality)
        lines.append(f"{name},{i % 10}\n")
    csv_path = os.path.join(root, "labels.csv")
    with open(csv_path, "w") as f:
        f.writelines(lines)
    return csv_path


# -- the PyTorch side: the tutorial's dataset and torchvision's PIL transforms, re-implemented --


class TutorialImageDataset(tud.Dataset):
    """The tutorial's CustomImageDataset, reading with PIL (as torchvision's default loader)."""

    def __init__(self, annotations_file: str, img_dir: str, transform: Callable[..., Any]):
        with open(annotations_file) as f:
            rows = [line.strip().split(",") for line in f if line.strip()]
        self.img_labels = [(name, int(label)) for name, label in rows]
        self.img_dir = img_dir
        self.transform = transform

    def __len__(self) -> int:
        return len(self.img_labels)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        name, label = self.img_labels[idx]
        with open(os.path.join(self.img_dir, name), "rb") as f:
            image = Image.open(f).convert("RGB")
        return self.transform(image), label


def _rrc_params(width: int, height: int) -> tuple[int, int, int, int]:
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(0.08, 1.0).item()
        aspect = math.exp(torch.empty(1).uniform_(*log_ratio).item())
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, (1,)).item())
            j = int(torch.randint(0, width - w + 1, (1,)).item())
            return i, j, h, w
    side = min(width, height)
    return (height - side) // 2, (width - side) // 2, side, side


def torchvision_style_transform(img: Image.Image) -> torch.Tensor:
    """RandomResizedCrop(224) + RandomHorizontalFlip() + ToTensor(), as torchvision on PIL."""
    i, j, h, w = _rrc_params(*img.size)
    img = img.crop((j, i, j + w, i + h)).resize((224, 224), Image.BILINEAR)
    if torch.rand(1).item() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous().float().div(255)


def tensor_ops_transform(img: Image.Image) -> torch.Tensor:
    """The same three transforms with torch tensor ops (torchvision v2 style on tensors).

    ``pil_to_tensor``, crop by slicing, ``interpolate(antialias=True)`` on uint8, ``flip``, then
    the float conversion of ``ToTensor``.
    """
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1)
    i, j, h, w = _rrc_params(*img.size)
    t = t[:, i : i + h, j : j + w]
    t = torch.nn.functional.interpolate(
        t[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False
    )[0]
    if torch.rand(1).item() < 0.5:
        t = t.flip(-1)
    return t.float().div(255)


def _worker_seed(worker_id: int) -> None:
    random.seed(worker_id)


# -- timing ----------------------------------------------------------------------------------


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its reaped worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def one_epoch(make: Callable[[], Iterable[Any]]) -> tuple[float, int, float]:
    """Wall time of one epoch (loader creation and worker start-up included), samples, and
    the CPU seconds it used in all processes (workers are joined at the end of the epoch)."""
    gc.collect()
    c0 = _cpu_seconds()
    t0 = time.perf_counter()
    n = sum(batch_len(b) for b in make())
    wall = time.perf_counter() - t0
    gc.collect()  # let the finished loader shut its workers down before reading their CPU time
    return wall, n, _cpu_seconds() - c0


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--n", type=int, default=512, help="number of JPEG files")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    w = args.workers
    with tempfile.TemporaryDirectory() as root:
        csv_path = make_folder(root, args.n)
        tds = TutorialImageDataset(csv_path, root, torchvision_style_transform)
        tds_ops = TutorialImageDataset(csv_path, root, tensor_ops_transform)
        transform = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
        cds = ImageCSVDataset(csv_path, root, transform=transform)

        def torch_loader(workers: int, ops: bool = False) -> Iterable[Any]:
            init = _worker_seed if workers else None
            return tud.DataLoader(
                tds_ops if ops else tds,
                batch_size=64,
                shuffle=True,
                num_workers=workers,
                worker_init_fn=init,
            )

        def chute_loader(workers: int, worker_type: str = "thread") -> Iterable[Any]:
            return chute.DataLoader(
                cds,
                batch_size=64,
                shuffle=True,
                num_workers=workers,
                worker_type=worker_type,
                seed=0,
            )

        configs: dict[str, Callable[[], Iterable[Any]]] = {
            f"torch.utils.data, {w} workers": lambda: torch_loader(w),
            f"torch.utils.data + tensor ops, {w} workers": lambda: torch_loader(w, ops=True),
            f"chute, {w} thread workers": lambda: chute_loader(w, "thread"),
            f"chute, {w} process workers": lambda: chute_loader(w, "process"),
            "torch.utils.data, num_workers=0": lambda: torch_loader(0),
            "torch.utils.data + tensor ops, num_workers=0": lambda: torch_loader(0, ops=True),
            "chute, num_workers=0": lambda: chute_loader(0),
        }
        # Interleave the configurations so that a change in machine load hits all of them.
        best: dict[str, tuple[float, int]] = {}
        cpu: dict[str, float] = {}
        notes: list[str] = []
        for _ in range(args.repeat):
            for name, make in list(configs.items()):
                try:
                    seconds, samples, cpu_s = one_epoch(make)
                except (ImportError, NotImplementedError) as exc:
                    notes.append(f"{name}: not available ({type(exc).__name__}: {exc})")
                    del configs[name]
                    continue
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, samples)
                cpu[name] = min(cpu.get(name, math.inf), cpu_s / samples)

    results = [Result(name, s, t) for name, (t, s) in best.items()]
    rate = {r.name: r.rate for r in results}
    base = rate[f"torch.utils.data, {w} workers"]
    ratios = {
        f"{name} / torch {w} workers": value / base
        for name, value in rate.items()
        if name.startswith("chute") and "workers=0" not in name
    }
    ratios[f"chute, {w} thread workers / torch + tensor ops, {w} workers"] = (
        rate[f"chute, {w} thread workers"] / rate[f"torch.utils.data + tensor ops, {w} workers"]
    )
    ratios["chute / torch, num_workers=0"] = (
        rate["chute, num_workers=0"] / rate["torch.utils.data, num_workers=0"]
    )
    torch_best = max(v for k, v in rate.items() if k.startswith("torch"))
    chute_best = max(v for k, v in rate.items() if k.startswith("chute"))
    ratios["best chute / best torch"] = chute_best / torch_best
    for note in notes:
        print(f"  note: {note}")
    # CPU per sample is what a busy machine distorts least: wall-clock ratios with workers
    # need two idle cores, CPU ratios only need the same work to be done.
    print("  CPU time per sample (all processes, best epoch):")
    for name, value in cpu.items():
        print(f"    {name:<48} {value * 1e3:6.3f} ms")
    base_cpu = cpu[f"torch.utils.data, {w} workers"]
    ratios[f"CPU per sample: torch {w} workers / chute {w} thread workers"] = (
        base_cpu / cpu[f"chute, {w} thread workers"]
    )
    report(
        f"{args.n} JPEGs 375x500 q90, RandomResizedCrop(224)+HFlip+ToTensor, batch 64, shuffle",
        results,
        ratios,
        args.json,
    )


if __name__ == "__main__":
    main()
