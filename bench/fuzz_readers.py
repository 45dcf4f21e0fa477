"""Fuzz chute's file readers: only chute's own errors (ChuteError subclasses) may escape.

Mutations of valid IDX (raw and gzip), CIFAR pickle (protocol 2, 4 and Python-2 style), JPEG
(baseline, progressive, grey, EXIF) and PNG (RGB, RGBA, palette, grey+alpha, 16-bit,
interlaced) files go through every public reader of each format:

- IDX: ``read_idx`` (the MNIST family's reader);
- CIFAR: ``load_pickle`` (the restricted unpickler);
- JPEG: ``decode_jpeg`` with both backends, at full and reduced size, ``decode_image`` in
  three modes with EXIF orientation, and the reduced-decode path of the file datasets;
- PNG: ``decode_image`` in every mode, ``read_image`` from a file.

Mutations: bit flips, interesting bytes and 32-bit integers, truncation, insertion,
deletion, duplicated ranges, splices of two seeds; for PNG also with chunk CRCs fixed and
IDAT recompressed, for gzip IDX on the decompressed bytes (so the parser, not only the
gzip check, sees them). Anything else that escapes (an IndexError, a MemoryError, a hang of
more than ``--timeout`` seconds, a crash of the process) is a finding: the input is saved
under ``--out`` and listed at the end; the exit status is 1 when there is one.

Inputs run in child processes of ``--batch`` inputs each (a segfault loses one batch, and
names the input that caused it), under a 4 GiB address-space limit, with
``PIL.Image.MAX_IMAGE_PIXELS`` lowered to ``--max-pixels`` (see the note in ``_worker``).

Run (long; niced in the background)::

    PYTHONPATH=src nice -n 19 python bench/fuzz_readers.py --inputs 100000 --json fuzz.json
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import os
import pickle
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

READERS = ("idx", "cifar", "jpeg", "png")
INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF)
INTERESTING_32 = (0, 1, 2, 0x7F, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


# ----------------------------------------------------------------------------- seeds


def _image(h: int, w: int, c: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * (3 + k) + y * (5 + seed) + 40 * k) % 256 for k in range(c)]
    return np.stack(planes, axis=-1).astype(np.uint8)


def _pil_bytes(arr: np.ndarray, fmt: str, mode: str | None = None, **kw: Any) -> bytes:
    from PIL import Image

    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    if mode is not None:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _jpeg_seeds() -> list[bytes]:
    from PIL import Image

    rgb = _image(24, 32, 3, 1)
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        _pil_bytes(rgb, "JPEG", quality=80),
        _pil_bytes(rgb, "JPEG", quality=60, progressive=True),
        _pil_bytes(_image(16, 16, 1, 2), "JPEG"),
        _pil_bytes(rgb, "JPEG", exif=exif.tobytes()),
        _pil_bytes(rgb, "JPEG", subsampling=0, quality=95),
        _pil_bytes(_image(40, 24, 3, 3), "JPEG", mode="CMYK"),
    ]


def _png_seeds() -> list[bytes]:
    from PIL import Image

    rgb = _image(12, 10, 3, 4)
    g16 = Image.fromarray(_image(8, 9, 1, 5)[:, :, 0].astype(np.uint16) * 257)
    buf = io.BytesIO()
    g16.save(buf, format="PNG")
    return [
        _pil_bytes(rgb, "PNG"),
        _pil_bytes(_image(9, 7, 4, 6), "PNG"),
        _pil_bytes(rgb, "PNG", mode="P"),
        _pil_bytes(_image(6, 5, 2, 7)[:, :, :1], "PNG", mode="LA"),
        buf.getvalue(),
        _pil_bytes(rgb, "PNG", mode="1"),
        _pil_bytes(rgb, "PNG", optimize=True),
    ]


def _idx_seeds() -> list[tuple[bytes, bool]]:
    """(bytes, gzip) pairs: raw IDX of every type code, some meant to be gzip-compressed."""
    from chute.vision.idx import write_idx

    arrays = [
        _image(3, 4, 5, 8)[:, :, :5].reshape(3, 4, 5),
        np.arange(7, dtype=np.int8),
        np.arange(6, dtype=np.int16).reshape(2, 3),
        np.arange(4, dtype=np.int32),
        np.linspace(0, 1, 6, dtype=np.float32).reshape(3, 2),
        np.linspace(0, 1, 3, dtype=np.float64),
    ]
    out = []
    with tempfile.TemporaryDirectory() as d:
        for k, arr in enumerate(arrays):
            path = Path(d) / f"s{k}"
            write_idx(path, arr)
            raw = path.read_bytes()
            out.append((raw, False))
            out.append((raw, True))
    return out


def _cifar_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(x) for x in rng.integers(0, 10, 3)],
        b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
        b"filenames": [b"a.png", b"b.png", b"c.png"],
    }
    meta = {b"label_names": [b"airplane", b"cat"], b"num_cases_per_batch": 3}
    seeds = [pickle.dumps(batch, protocol=p) for p in (2, 4)]
    seeds.append(pickle.dumps(meta, protocol=2))
    seeds.append(seeds[0].replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    seeds.append(pickle.dumps({b"data": np.arange(6, dtype="<i8")}, protocol=5))
    return seeds


# ----------------------------------------------------------------------------- mutations


def _mutate_bytes(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        op = rng.randrange(9)
        n = len(buf)
        if n == 0:
            buf += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
            continue
        i = rng.randrange(n)
        if op == 0:  # bit flip
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # interesting byte
            buf[i] = rng.choice(INTERESTING_8)
        elif op == 2:  # interesting 32-bit integer, either byte order
            value = rng.choice(INTERESTING_32)
            packed = struct.pack(rng.choice((">I", "<I")), value)
            buf[i : i + 4] = packed
        elif op == 3:  # truncate
            del buf[rng.randrange(n) :]
        elif op == 4:  # insert random bytes
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
        elif op == 5:  # delete a range
            del buf[i : i + rng.randrange(1, 64)]
        elif op == 6:  # duplicate a range
            j = min(n, i + rng.randrange(1, 256))
            buf[i:i] = buf[i:j]
        elif op == 7:  # splice with another seed
            other = rng.choice(pool)
            k = rng.randrange(len(other) + 1)
            buf = buf[:i] + bytearray(other[k:])
        else:  # random byte
            buf[i] = rng.randrange(256)
    return bytes(buf)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, i = [], 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        chunks.append((kind, data[i + 8 : i + 8 + length]))
        i += 12 + length
    return chunks


def _png_build(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def _mutate_png(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """Chunk-aware: mutate one chunk's body (IDAT decompressed), fix every CRC."""
    chunks = _png_chunks(data)
    if not chunks or rng.random() < 0.3:
        return _mutate_bytes(data, rng, pool)
    k = rng.randrange(len(chunks))
    kind, body = chunks[k]
    if kind == b"IDAT" and rng.random() < 0.7:
        try:
            plain = zlib.decompress(body)
        except zlib.error:
            plain = body
        body = zlib.compress(_mutate_bytes(plain, rng, pool))
    else:
        body = _mutate_bytes(body, rng, pool)
    if rng.random() < 0.1:
        kind = rng.choice((b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"eXIf", b"iCCP"))
    chunks[k] = (kind, body)
    if rng.random() < 0.1:
        chunks.insert(rng.randrange(len(chunks) + 1), chunks[rng.randrange(len(chunks))])
    return _png_build(chunks)


# ----------------------------------------------------------------------------- targets


def _run_idx(path: Path, data: bytes) -> None:
    from chute.vision.idx import read_idx

    read_idx(path)


def _run_cifar(path: Path, data: bytes) -> None:
    from chute.vision.datasets.cifar import load_pickle

    load_pickle(path)


def _run_jpeg(path: Path, data: bytes) -> None:
    from chute import rng
    from chute.vision.datasets import _reduced
    from chute.vision.io import ImageReadMode, decode_image, decode_jpeg
    from chute.vision.transforms import RandomResizedCrop, Resize

    for backend in ("pil", "simplejpeg"):
        for min_size in (None, (3, 4)):
            _swallow(decode_jpeg, data, min_size=min_size, backend=backend)
    for mode in (ImageReadMode.UNCHANGED, ImageReadMode.GRAY, ImageReadMode.RGB):
        _swallow(decode_image, data, mode, apply_exif_orientation=True)
    for transform in (RandomResizedCrop(4), Resize(3)):
        plan = _reduced.plan(transform, ImageReadMode.RGB)
        assert plan is not None
        with rng.sample_scope(0):
            _swallow(_reduced.run, plan, data, str(path), ImageReadMode.RGB, hwc=True)


def _run_png(path: Path, data: bytes) -> None:
    from chute.vision.io import ImageReadMode, decode_image, read_image

    for mode in ImageReadMode:
        _swallow(decode_image, data, mode)
    _swallow(read_image, path, ImageReadMode.RGB, apply_exif_orientation=True)


#: Chute errors raised inside the multi-call targets (JPEG, PNG), by class name.
SWALLOWED: collections.Counter[str] = collections.Counter()


def _swallow(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run one reader call: a ChuteError is the expected outcome for bad input."""
    from chute.errors import ChuteError

    try:
        call(*args, **kwargs)
    except ChuteError as exc:
        SWALLOWED[type(exc).__name__] += 1


TARGETS: dict[str, Callable[[Path, bytes], None]] = {
    "idx": _run_idx,
    "cifar": _run_cifar,
    "jpeg": _run_jpeg,
    "png": _run_png,
}


class _Timeout(BaseException):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def _worker(seed: int, count: int, out: Path, timeout: int, args_max_pixels: int) -> None:
    """Fuzz ``count`` inputs; print one JSON line per finding and one summary line."""
    from chute.errors import ChuteError

    limit = 4 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    from PIL import Image

    # NOTE [ One pixel limit for every decoder ] (vision/io.py): a header may claim up to
    # twice this many pixels and be decoded. Pillow's default (179 M pixels, 500 MB) makes a
    # forged 80-byte PNG take 20 s; a lower limit keeps every input fast and exercises the
    # limit itself on every header that claims more.
    Image.MAX_IMAGE_PIXELS = args_max_pixels
    signal.signal(signal.SIGALRM, _on_alarm)
    rng = random.Random(seed)
    seeds = {
        "jpeg": _jpeg_seeds(),
        "png": _png_seeds(),
        "cifar": _cifar_seeds(),
    }
    idx_seeds = _idx_seeds()
    pool = [s for v in seeds.values() for s in v] + [s for s, _ in idx_seeds]
    counts: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    work = Path(
        tempfile.mkdtemp(
            prefix="chute-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
        )
    )
    current = out / f"current-{os.getpid()}"
    try:
        for n in range(count):
            reader = READERS[n % len(READERS)]
            if reader == "idx":
                raw, gz = rng.choice(idx_seeds)
                if gz and rng.random() < 0.8:
                    data = gzip.compress(_mutate_bytes(raw, rng, pool), mtime=0)
                else:
                    data = _mutate_bytes(gzip.compress(raw, mtime=0) if gz else raw, rng, pool)
                name = "f-idx-ubyte.gz" if gz and rng.random() < 0.5 else "f-idx-ubyte"
            else:
                seed_data = rng.choice(seeds[reader])
                mutate = _mutate_png if reader == "png" else _mutate_bytes
                data = mutate(seed_data, rng, pool)
                name = {"jpeg": "f.jpg", "png": "f.png", "cifar": "data_batch_1"}[reader]
            path = work / name
            path.write_bytes(data)
            current.write_bytes(reader.encode() + b"\n" + data)  # names the input if we crash
            counts[reader] += 1
            signal.alarm(timeout)
            try:
                TARGETS[reader](path, data)
            except ChuteError as exc:
                errors[type(exc).__name__] += 1
            except _Timeout:
                _finding(out, reader, data, f"hang: more than {timeout} s", "")
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                _finding(
                    out, reader, data, f"{type(exc).__name__}: {exc}"[:500], traceback.format_exc()
                )
            finally:
                signal.alarm(0)
            path.unlink(missing_ok=True)
    finally:
        current.unlink(missing_ok=True)
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    errors.update(SWALLOWED)
    print(json.dumps({"summary": {"counts": counts, "errors": errors}}), flush=True)


def _finding(out: Path, reader: str, data: bytes, what: str, tb: str) -> None:
    import hashlib

    digest = hashlib.sha1(data).hexdigest()[:12]
    path = out / f"{reader}-{digest}.bin"
    path.write_bytes(data)
    print(
        json.dumps(
            {"finding": {"reader": reader, "what": what, "input": str(path), "traceback": tb}}
        ),
        flush=True,
    )


def _supervise(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    findings: list[dict[str, Any]] = []
    t0 = time.monotonic()
    done = 0
    batch_no = 0
    while done < args.inputs:
        n = min(args.batch, args.inputs - done)
        seed = args.seed * 1_000_003 + batch_no
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                "--seed",
                str(seed),
                "--count",
                str(n),
                "--out",
                str(out),
                "--timeout",
                str(args.timeout),
                "--max-pixels",
                str(args.max_pixels),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        summary = None
        for line in proc.stdout.splitlines():
            record = json.loads(line)
            if "finding" in record:
                findings.append(record["finding"])
                print(
                    f"FINDING {record['finding']['reader']}: {record['finding']['what']} "
                    f"({record['finding']['input']})",
                    flush=True,
                )
            else:
                summary = record["summary"]
        if summary is None:  # the child died: the input it was on is the finding
            leftovers = sorted(out.glob("current-*"))
            for cur in leftovers:
                reader, _, data = cur.read_bytes().partition(b"\n")
                name = reader.decode()
                crash = out / f"{name}-crash-{seed}.bin"
                crash.write_bytes(data)
                cur.unlink()
                findings.append(
                    {
                        "reader": name,
                        "what": f"process died (rc {proc.returncode})",
                        "input": str(crash),
                        "traceback": proc.stderr[-2000:],
                    }
                )
                print(f"FINDING {name}: process died rc={proc.returncode} ({crash})", flush=True)
            if not leftovers:
                print(f"batch {batch_no} failed: rc={proc.returncode}\n{proc.stderr[-2000:]}")
                return 2
            # count what the dead batch could not report: nothing, to stay honest
        else:
            counts.update(summary["counts"])
            errors.update(summary["errors"])
        done += n
        batch_no += 1
        rate = sum(counts.values()) / (time.monotonic() - t0)
        print(
            f"{sum(counts.values()):>7} inputs run ({dict(sorted(counts.items()))}), "
            f"{len(findings)} findings, {rate:.0f} inputs/s",
            flush=True,
        )
    result = {
        "inputs": sum(counts.values()),
        "per_reader": dict(sorted(counts.items())),
        "chute_errors": dict(sorted(errors.items())),
        "findings": findings,
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "findings"}, indent=1))
    print(f"{len(findings)} findings")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if findings else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--inputs", type=int, default=100_000, help="inputs in all (default 100000)")
    p.add_argument("--batch", type=int, default=2_000, help="inputs per child process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=20, help="seconds before an input is a hang")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=1 << 20,
        help="PIL.Image.MAX_IMAGE_PIXELS in the fuzzed process (default 1048576)",
    )
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "chute-fuzz-findings"))
    p.add_argument("--json", default=None, help="write the counts and findings here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args.seed, args.count, Path(args.out), args.timeout, args.max_pixels)
        return 0
    return _supervise(args)


if __name__ == "__main__":
    raise SystemExit(main())
