"""``DataLoader(progress=True)``: a tqdm bar per epoch with samples/s and the data-wait share.

The bar reads the epoch's :class:`~chute.stats.EpochRecorder` (the same figures as
``loader.stats()``), so it costs one ``update`` per batch and a postfix refresh at most a few
times a second. tqdm is imported only when a bar is shown (the ``progress`` extra).
"""

from __future__ import annotations

from typing import Any

from ._lazy import require
from .stats import EpochRecorder, clock

__all__ = ["EpochBar"]

_REFRESH_S = 0.5  # seconds between postfix updates


class EpochBar:
    """One epoch's bar: ``update()`` after each batch, ``close()`` at the end."""

    def __init__(self, epoch: int, total: int | None, recorder: EpochRecorder | None) -> None:
        tqdm = require("tqdm", "DataLoader(progress=True)").tqdm
        self._bar: Any = tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=True)
        self._recorder = recorder
        self._next_refresh = 0.0

    def update(self) -> None:
        """One more batch; refresh samples/s and the wait share now and then."""
        self._bar.update(1)
        now = clock()
        if self._recorder is not None and now >= self._next_refresh:
            self._next_refresh = now + _REFRESH_S
            self._bar.set_postfix_str(_postfix(self._recorder), refresh=False)

    def close(self) -> None:
        """End the bar with the epoch's final figures (idempotent)."""
        if self._bar is None:
            return
        if self._recorder is not None:
            self._bar.set_postfix_str(_postfix(self._recorder), refresh=False)
        self._bar.close()
        self._bar = None


def _postfix(recorder: EpochRecorder) -> str:
    s = recorder.snapshot()
    return f"{s.samples_per_s:,.0f} samples/s, data wait {100 * s.wait_fraction:.0f}%"
