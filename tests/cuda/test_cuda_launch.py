"""Launch geometry of the GPU kernels (snn/cuda/launch.py)."""
import warnings

import pytest

from snn.cuda.launch import NARROWEST, WIDEST, grid_blocks, quiet_occupancy_warning, threads_per_block


@pytest.mark.parametrize("n, sms, want", [
    (65536, 132, 128),  # 512 blocks of 128: every SM busy
    (16896, 132, 128),  # exactly one block of 128 per SM
    (16768, 132, 64),   # 131 blocks of 128, one short: 262 blocks of 64
    (8192, 132, 32),    # 64 blocks of 128 would leave half the SMs idle; 256 of 32 do not
    (100, 132, 32),     # never below one warp
    (1, 1, 128),
    (10**9, 132, 128),
])
def test_threads_per_block(n, sms, want):
    t = threads_per_block(n, sms)
    assert t == want
    assert NARROWEST <= t <= WIDEST and t % 32 == 0
    assert grid_blocks(n, t) * t >= n > (grid_blocks(n, t) - 1) * t
    # the widest block that still gives every SM a block (when one does)
    assert grid_blocks(n, t) >= sms or t == NARROWEST
    assert t == WIDEST or grid_blocks(n, 2 * t) < sms


def test_threads_per_block_rejects_nonpositive():
    with pytest.raises(ValueError, match="positive"):
        threads_per_block(0, 132)
    with pytest.raises(ValueError, match="positive"):
        threads_per_block(10, 0)


def test_numba_occupancy_warning_is_silenced_and_only_it():
    dispatcher = pytest.importorskip("numba.cuda.dispatcher")
    config = getattr(dispatcher, "_LaunchConfiguration", None)
    if config is None:
        pytest.skip("this numba.cuda has no _LaunchConfiguration")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        config(None, (4, 1, 1), (32, 1, 1), 0, 0)  # what kernel[grid, block, stream] builds
    assert any("under-utilization" in str(w.message) for w in seen)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_occupancy_warning():
            config(None, (4, 1, 1), (32, 1, 1), 0, 0)
            warnings.warn("another warning")
    assert [str(w.message) for w in seen] == ["another warning"]
