"""tests/cuda: make compiled test helpers that use snn.cuda.dynamics cache-safe too."""
from snn.cuda.numba_cache import install

install()
