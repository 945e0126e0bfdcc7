"""Model exchange through NIR, the Neuromorphic Intermediate Representation (``pip install nir``;
Pedersen et al., Nature Communications 15, 8122, 2024).

* :func:`to_nir` / :func:`export_nir` — snn model → NIR graph (→ file, written atomically).
* :func:`from_nir` / :func:`import_nir` — NIR graph (or file) → snn modules on ``[T, B, ...]``.
* :mod:`snn.nir.params` — the time-constant conventions (``dt``, Euler or exact discretization).
"""
try:
    import nir as _nir  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("snn.nir needs the 'nir' package: pip install 'nir>=1.0,<2' (or pip install snn[nir])") from e

from snn.nir.export import export_nir, flatten_chain, to_nir
from snn.nir.importer import ChannelLeakyIntegrator, IntegerDelay, NIRGraphModule, from_nir, import_nir, load_nir
from snn.nir.params import DISCRETIZATIONS

__all__ = ["to_nir", "export_nir", "from_nir", "import_nir", "load_nir", "flatten_chain", "NIRGraphModule",
           "IntegerDelay", "ChannelLeakyIntegrator", "DISCRETIZATIONS"]
