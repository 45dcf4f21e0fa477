"""Samplers written as users write them, shared by the sampler and loader tests."""

from __future__ import annotations

from typing import Any

import chute


class EvensFirst(chute.BatchSampler):
    """A grouped batch sampler (as detectron2's): even indices, then odd ones."""

    def __iter__(self) -> Any:
        order = list(self.sampler)
        for group in ([i for i in order if i % 2 == 0], [i for i in order if i % 2]):
            for lo in range(0, len(group), self.batch_size):
                yield group[lo : lo + self.batch_size]
