"""Shared settings of the fuzz tests: example count from ``SNN_FUZZ_EXAMPLES`` (CI default
small; the acceptance run sets ≥ 10,000) and a per-example hang guard."""
import contextlib
import os
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

N_EXAMPLES = int(os.environ.get("SNN_FUZZ_EXAMPLES", "120"))
HANG_S = 20

FUZZ = settings(max_examples=N_EXAMPLES, deadline=None, database=None, derandomize="SNN_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@contextlib.contextmanager
def no_hang(seconds: int = HANG_S):
    """Fail (``TimeoutError``) instead of hanging when a reader takes longer than ``seconds``."""
    def boom(*_):
        raise TimeoutError(f"hang: took longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def encode_atis(ev: np.ndarray) -> bytes:
    """N-MNIST/ATIS 40-bit events (x, y, p|t[22:16], t[15:8], t[7:0])."""
    raw = np.zeros((len(ev), 5), np.uint8)
    t = ev["t"].astype(np.int64)
    raw[:, 0], raw[:, 1] = ev["x"], ev["y"]
    raw[:, 2] = (ev["p"].astype(np.int64) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def encode_aedat2(ev: np.ndarray, header_lines: int = 1) -> bytes:
    """jAER AEDAT 2.0 (DVS128): header lines, then big-endian uint32 address + timestamp."""
    addr = (ev["x"].astype(np.uint32) << 8) | (ev["y"].astype(np.uint32) << 1) | ev["p"].astype(np.uint32)
    body = np.empty((len(ev), 2), ">u4")
    body[:, 0], body[:, 1] = addr, ev["t"]
    head = b"#!AER-DAT2.0\r\n" + b"".join(b"# comment %d\r\n" % i for i in range(header_lines))
    return head + body.tobytes()
