#!/usr/bin/env bash
# The GPU half of the fused-kernel checks, in one run on a machine with an NVIDIA GPU:
# the parity suites of the "cupy" and numba.cuda backends on the device (tests/cuda, plus the
# neuron and delay suites, whose GPU cases skip without a GPU), then the LIF benchmark against
# the peers on CUDA (ATan and Sigmoid surrogates). Everything lands in OUT_DIR:
#   environment.txt   nvidia-smi, versions of torch / CuPy / Numba / numba-cuda / peers
#   pytest.log        the test run (-rs: every skip with its reason)
#   neurons-atan/     neurons.json + neurons.md      neurons-sigmoid/  the same, Sigmoid
# Exit status: 0 when every step passed, else 1 (the later steps still run).
#
# Usage: bash benchmarks/gpu_check.sh OUT_DIR [--quick]
#   --quick: the tests only (no benchmarks)
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR [--quick]}
quick=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$out"
py=${PYTHON:-python3}

if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device; nothing to check here" >&2
    exit 1
fi
{
    nvidia-smi
    "$py" - <<'EOF'
import importlib.metadata as md, torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name())
for p in ("cupy-cuda12x", "cupy-cuda13x", "numba", "numba-cuda", "spikingjelly", "norse", "snntorch", "tonic"):
    try:
        print(p, md.version(p))
    except md.PackageNotFoundError:
        print(p, "not installed")
from snn.neurons import available_backends
print("snn backends on cuda:", available_backends("cuda"))
EOF
} >"$out/environment.txt" 2>&1
cat "$out/environment.txt"

status=0
"$py" -m pytest -q -rs -p no:cacheprovider tests/cuda tests/neurons tests/delays 2>&1 | tee "$out/pytest.log" || status=1
if [ "$quick" != "--quick" ]; then
    "$py" benchmarks/neurons.py --device cuda --out "$out/neurons-atan" || status=1
    "$py" benchmarks/neurons.py --device cuda --surrogate sigmoid --out "$out/neurons-sigmoid" || status=1
fi
exit $status
