"""Draw the benchmarks' chute-vs-torch ratios from their ``--json`` output as one PNG chart.

Every benchmark in ``bench/`` writes ``{"title", "results", "ratios"}`` with ``--json PATH``.
This script reads any number of those files and draws each ratio against
``torch.utils.data`` as a horizontal bar on a log scale, grouped by benchmark, with a line at
1x (as fast as torch). Time ratios ("... time to first batch", lower is better) are drawn
inverted, as speed-ups, so every bar reads "how many times faster than torch".

    python bench/bench_tensor.py --json results-tensor.json
    python bench/bench_workers.py --json results-workers.json
    python bench/plot_results.py results-*.json --out docs/performance.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def speedups(payload: dict[str, Any]) -> list[tuple[str, float]]:
    """The (label, times faster than torch) pairs of one benchmark's JSON output."""
    out = []
    for name, ratio in payload["ratios"].items():
        if "torch" not in name or not ratio or not math.isfinite(ratio):
            continue  # a ratio against something else (e.g. a bare NumPy loop)
        label = name.split(" (target")[0]
        if "time" in name:  # a time ratio: chute's time / torch's time
            out.append((f"{label} (inverted: torch's time / chute's)", 1.0 / ratio))
        else:
            out.append((label, ratio))
    return out


def plot(files: list[Path], out: Path, note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows: list[tuple[str, str, float]] = []
    for path in files:
        payload = json.loads(path.read_text())
        rows.extend((payload["title"], label, value) for label, value in speedups(payload))
    if not rows:
        raise SystemExit(f"no ratios against torch in {', '.join(map(str, files))}")

    titles = list(dict.fromkeys(t for t, _, _ in rows))
    fig, ax = plt.subplots(figsize=(11, 0.36 * len(rows) + 1.4 + 0.25 * len(titles)))
    colours = plt.get_cmap("tab10")
    y = list(range(len(rows)))[::-1]
    for yi, (title, _, value) in zip(y, rows):
        ax.barh(yi, value, color=colours(titles.index(title) % 10))
        ax.text(value * 1.05, yi, f"{value:.2f}x", va="center", fontsize=9)
    ax.set_yticks(y, [label for _, label, _ in rows], fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i % 10)) for i in range(len(titles))]
    ax.legend(handles, titles, loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlim(min(0.5, min(v for *_, v in rows) / 1.5), max(v for *_, v in rows) * 3)
    ax.set_ylim(-0.7 - 0.55 * len(titles), len(rows) - 0.4)  # room for the legend below
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlabel("times faster than torch.utils.data (log scale; 1x = as fast)")
    ax.set_title(f"chute vs torch.utils.data, same data, same run{note}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path, help="JSON files written with --json")
    p.add_argument("--out", type=Path, default=Path("performance.png"), help="PNG to write")
    p.add_argument("--note", default="", help="added to the title (e.g. the machine's load)")
    args = p.parse_args(argv)
    plot(args.files, args.out, f"\n{args.note}" if args.note else "")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
