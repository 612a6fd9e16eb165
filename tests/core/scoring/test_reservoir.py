"""The seeded reservoir sample behind the serving log."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from airflow_mlops.core.scoring.reservoir import _Reservoir


def test_the_reservoir_is_uniform_and_independent_of_batching() -> None:
    def sample(cuts: list[int]) -> list[int]:
        reservoir = _Reservoir(50, seed=3)
        start = 0
        for size in cuts:
            chosen = reservoir.select(size)
            reservoir.add(pa.table({"i": np.arange(start, start + size)[chosen]}))
            start += size
        return reservoir.result().column("i").to_pylist()

    one = sample([10_000])
    assert one == sample([1] * 100 + [9_900]) == sample([3_333, 3_333, 3_334])
    assert len(one) == 50 and one == sorted(one) and len(set(one)) == 50
    hits = np.zeros(10, int)
    for seed in range(200):
        reservoir = _Reservoir(10, seed=seed)
        chosen = reservoir.select(100)
        reservoir.add(pa.table({"i": np.arange(100)[chosen]}))
        np.add.at(hits, np.asarray(reservoir.result().column("i")) // 10, 1)
    assert hits.min() > 150 and hits.max() < 250  # each decile gets ~200 of 2000 draws
