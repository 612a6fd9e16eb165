"""A seeded reservoir sample of a stream of rows: the serving log and the shadow report's score sample."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class _Reservoir:
    """A uniform sample of at most ``capacity`` rows of a stream, deterministic for a seed.

    Every row draws a key from one seeded generator, in stream order, and the sample is the rows with
    the smallest keys: the draws do not depend on how the stream is cut into batches, so neither does
    the sample. Rows come out in stream order.
    """

    def __init__(self, capacity: int, seed: int) -> None:
        import numpy as np

        self.capacity = capacity
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._parts: list[Any] = []
        self._pending = np.empty(0)
        self._threshold = math.inf
        self._seen = 0

    def select(self, rows: int) -> np.ndarray:
        """Indices (within the next ``rows`` rows) that may enter the sample; pass them to :meth:`add`."""
        import numpy as np

        keys = self._rng.random(rows)
        self._seen += rows
        if self.capacity == 0:
            return np.empty(0, dtype=np.int64)
        chosen = np.flatnonzero(keys < self._threshold)
        if len(chosen) > self.capacity:
            # A row whose key has `capacity` smaller ones in this batch alone can never be in the sample, so
            # it is not taken: the first batch of a stream used to copy all its rows (every column) here.
            chosen = np.sort(chosen[np.argpartition(keys[chosen], self.capacity - 1)[: self.capacity]])
        self._pending = keys[chosen]
        return chosen

    def add(self, table: Any) -> None:
        import numpy as np

        if table is None or table.num_rows == 0:
            return
        self._keys = np.concatenate([self._keys, self._pending])
        self._parts.append(table)
        if len(self._keys) >= 2 * self.capacity:
            self._compact()
        elif len(self._keys) >= self.capacity:  # the bar later rows must pass, before any table is compacted
            self._threshold = float(np.partition(self._keys, self.capacity - 1)[self.capacity - 1])

    def _compact(self) -> None:
        import numpy as np
        import pyarrow as pa

        if not self._parts:
            return
        merged = pa.concat_tables(self._parts) if len(self._parts) > 1 else self._parts[0]
        if len(self._keys) > self.capacity:
            keep = np.sort(np.argpartition(self._keys, self.capacity - 1)[: self.capacity])
            merged, self._keys = merged.take(keep), self._keys[keep]
        if len(self._keys) >= self.capacity:
            self._threshold = float(self._keys.max())
        self._parts = [merged.combine_chunks()]

    def result(self) -> Any:
        self._compact()
        return self._parts[0] if self._parts else None
