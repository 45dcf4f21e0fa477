"""TensorDataset, 60,000 × (1×28×28 float32, int64 label), batch 64, shuffled, one epoch.

chute.DataLoader vs torch.utils.data.DataLoader, num_workers=0, same data, same run.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.utils.data as tud

import chute
from _common import Result, parser, report, time_epoch


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = 60_000
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)

    tds = tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    gen = torch.Generator().manual_seed(0)
    t_torch, s_torch = time_epoch(
        lambda: tud.DataLoader(tds, batch_size=64, shuffle=True, generator=gen), args.repeat
    )

    cds = chute.TensorDataset(x, y)
    chute_np = chute.DataLoader(cds, batch_size=64, shuffle=True, seed=0)
    t_np, s_np = time_epoch(lambda: chute_np, args.repeat)
    chute_t = chute.DataLoader(cds, batch_size=64, shuffle=True, seed=0, format="torch")
    t_t, s_t = time_epoch(lambda: chute_t, args.repeat)
    ctds = chute.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    chute_tt = chute.DataLoader(ctds, batch_size=64, shuffle=True, seed=0)
    t_tt, s_tt = time_epoch(lambda: chute_tt, args.repeat)

    results = [
        Result("torch.utils.data (torch tensors)", s_torch, t_torch),
        Result("chute (numpy arrays)", s_np, t_np),
        Result('chute (numpy arrays, format="torch")', s_t, t_t),
        Result("chute (torch tensors)", s_tt, t_tt),
    ]
    base = results[0].rate
    ratios = {f"{r.name} / torch": r.rate / base for r in results[1:]}
    report("TensorDataset 60k x (1x28x28 f32, i64), batch 64, shuffle", results, ratios, args.json)


if __name__ == "__main__":
    main()
