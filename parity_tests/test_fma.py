"""``scratchopt.numerics.fma`` against exact rational arithmetic, and against torch's kernels."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchopt.numerics.fma import fma


def exact_fma(a, b, c, dtype):
    """One correctly rounded ``a*b + c``: the exact rational, rounded to nearest-even in ``dtype``."""
    value = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if value == 0:
        # IEEE: an exact zero sum is +0, unless both addends are -0-like.
        prod_neg = (np.signbit(a) != np.signbit(b))
        if float(a) * float(b) == 0 and prod_neg and np.signbit(c) and float(c) == 0:
            return dtype(-0.0)
        return dtype(0.0)
    # Candidates: the float64 nearest, then step to the nearest in dtype by comparing exactly.
    guess = dtype(float(value))
    best = None
    for cand in (np.nextafter(guess, dtype(-np.inf)), guess, np.nextafter(guess, dtype(np.inf))):
        if not np.isfinite(cand):
            continue
        d = abs(Fraction(float(cand)) - value)
        bits = int(np.asarray(cand).view(np.int32 if dtype == np.float32 else np.int64))
        key = (d, bits & 1)  # ties to even
        if best is None or key < best[0]:
            best = (key, cand)
    return best[1]


def check(a, b, c, dtype):
    a, b, c = (np.asarray(v, dtype) for v in (a, b, c))
    got = fma(a, b, c)
    for i in np.ndindex(got.shape):
        want = exact_fma(a[i], b[i], c[i], dtype)
        assert got[i].tobytes() == np.asarray(want, dtype).tobytes(), (a[i], b[i], c[i], got[i], want)


def _floats(dtype, lo, hi):
    width = 32 if dtype == np.float32 else 64
    # The documented domain: no float64 underflow of the error terms (|x| >= 2**-200 or 0).
    return st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False).filter(
        lambda x: x == 0 or abs(x) >= 2.0 ** -200)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_fma_random_against_fractions(dtype, data):
    n = 50
    draw = lambda: np.array(data.draw(st.lists(
        st.one_of(_floats(dtype, -1024.0, 1024.0), _floats(dtype, -2.0 ** -10, 2.0 ** -10)), min_size=n, max_size=n)), dtype)
    check(draw(), draw(), draw(), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fma_cancellation_and_midpoints(dtype):
    """Cases chosen where two roundings fail: c cancels the product's top bits, or the product's
    low bits sit exactly at (or just off) a rounding midpoint of the result."""
    rng = np.random.default_rng(0)
    mant = 24 if dtype == np.float32 else 53
    a = (1 + rng.integers(1, 2**20, 4000) * 2.0 ** -(mant - 1)).astype(dtype)
    b = (1 + rng.integers(1, 2**20, 4000) * 2.0 ** -(mant - 1)).astype(dtype)
    p = a.astype(np.float64) * b.astype(np.float64)
    c1 = (-p).astype(dtype)                           # massive cancellation
    c2 = rng.choice([1.0, -1.0, 2.0 ** -mant, 3.0], 4000).astype(dtype)
    c3 = (np.ldexp(np.ones(4000), -mant - 1) * rng.choice([1, -1, 3], 4000)).astype(dtype)  # midpoints
    for c in (c1, c2, c3):
        check(a, b, c, dtype)
    # Signed zeros and specials
    z = np.array([0.0, -0.0, 1.0, -1.0], dtype)
    check(np.array([-0.0, 0.0, 0.0, 1.0], dtype), np.array([1.0, -1.0, 5.0, -1.0], dtype), z, dtype)
    assert np.isnan(fma(np.array([np.inf], dtype), np.array([0.0], dtype), np.array([1.0], dtype)))[0]
    assert fma(np.array([np.inf], dtype), np.array([2.0], dtype), np.array([1.0], dtype))[0] == np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_roundings_differ_so_the_test_can_fail(dtype):
    """The plain ``a*b + c`` fails the same check: the test has teeth."""
    a = np.array([1 + 2.0 ** -12], dtype) if dtype == np.float32 else np.array([1 + 2.0 ** -30])
    c = -(np.array([1 + 2.0 ** -11], dtype) if dtype == np.float32 else np.array([1 + 2.0 ** -29]))
    want = exact_fma(a[0], a[0], c[0], dtype)
    assert (a * a + c)[0] != want
    assert fma(a, a, c)[0] == want


def test_fma_dtype_rules():
    x = np.ones(3, np.float32)
    assert fma(x, 0.1, x).dtype == np.float32
    assert fma(x.astype(np.float64), 0.1, 1.0).dtype == np.float64
    with pytest.raises(TypeError, match="`fma`"):
        fma(np.ones(2, np.int32), 1, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_add_alpha_is_this_fma(dtype):
    """ATen's ``add(alpha=)`` on the CPU gives these bits (vector body and tail: 1003 elements)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal(1003).astype(dtype) for _ in range(2))
    for alpha in (0.1, -0.37, 1e-3):
        want = torch.from_numpy(x).add(torch.from_numpy(y), alpha=alpha).numpy()
        np.testing.assert_array_equal(fma(y, np.dtype(dtype).type(alpha), x), want)
