"""The Wiener filter on numpy arrays (the CPU runtime's) against torch's, itself tested against a
float64 block-by-block reference in tests/test_wiener.py."""

import numpy as np
import pytest
import torch

from exposed.imaging import wiener_numpy
from exposed.imaging.wiener import dct_matrix, dct_wiener


def test_the_dct_matrix_is_torchs():
    np.testing.assert_allclose(wiener_numpy.dct_matrix(8), dct_matrix(8).numpy(), atol=1e-7)


@pytest.mark.parametrize("stride,quincunx", [(2, False), (4, False), (8, False), (2, True), (4, True)])
@pytest.mark.parametrize("shape", [(3, 40, 52), (4, 37, 29), (1, 12, 9)])
@pytest.mark.parametrize("error", [0.0, 3e-3, "map"])
@pytest.mark.parametrize("residual", [0.0, 1.0])
def test_dct_wiener_matches_torchs(stride, quincunx, shape, error, residual):
    rng = np.random.default_rng(stride + shape[1])
    if error == "map":  # a pilot trusted less in places
        error = np.where(rng.random((1, *shape[1:])) < 0.2, 1e-2, 1e-5).astype(np.float32)
    clean = rng.random(shape, dtype=np.float32)
    noisy = clean + rng.normal(0.0, 0.05, shape).astype(np.float32)
    pilot = clean + rng.normal(0.0, 0.01, shape).astype(np.float32)
    pilot[:, :5, :7] -= 0.3  # wrong in one corner
    variance = (0.001 + 0.004 * rng.random(shape)).astype(np.float32)
    torch_error = torch.from_numpy(error)[None] if isinstance(error, np.ndarray) else error
    expected = dct_wiener(*(torch.from_numpy(a)[None] for a in (noisy, pilot, variance)), torch_error,
                          stride=stride, residual_error=residual, quincunx=quincunx)[0]
    got = wiener_numpy.dct_wiener(noisy, pilot, variance, error, stride=stride, residual_error=residual,
                                  quincunx=quincunx)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, expected.numpy(), atol=2e-6, rtol=0)


def test_dct_wiener_wants_a_block_the_stride_divides():
    x = np.zeros((1, 16, 16), np.float32)
    with pytest.raises(ValueError, match="multiple of stride"):
        wiener_numpy.dct_wiener(x, x, x, stride=3)
