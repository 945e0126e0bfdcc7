"""Shared helpers of the energy tests."""
import pytest

import snn.energy.registry as registry


@pytest.fixture
def isolated_rules(monkeypatch):
    """Rules registered inside a test disappear after it (a copy of the registry)."""
    monkeypatch.setattr(registry, "_RULES", dict(registry._RULES))
    return registry._RULES


@pytest.fixture
def event_folder(tmp_path):
    """``root/c0``, ``root/c1``: 12 random 16×16 recordings each (class 1 has twice the events)."""
    import numpy as np
    import tonic
    rng = np.random.default_rng(3)
    root = tmp_path / "events"
    for label in (0, 1):
        (root / f"c{label}").mkdir(parents=True)
        for i in range(12):
            n = 200 * (label + 1)
            ev = np.zeros(n, dtype=tonic.io.events_struct)
            ev["x"], ev["y"] = rng.integers(0, 16, n), rng.integers(0, 16, n)
            ev["t"] = np.sort(rng.integers(0, 50_000, n))
            ev["p"] = rng.integers(0, 2, n).astype(bool)
            np.save(root / f"c{label}" / f"{i}.npy", ev)
    return root
