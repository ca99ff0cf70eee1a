"""Units in the last place: how far apart two float results are, counted in floats."""

import numpy as np


def ulp_distance(a, b):
    """Elementwise distance in representable floats between two same-dtype NumPy arrays.

    NaN against NaN counts as 0; NaN against a number as the largest distance.

    >>> import numpy as np
    >>> a = np.array([1.0, 0.0, np.nan, np.nan], np.float32)
    >>> b = np.array([np.nextafter(np.float32(1), np.float32(2)), -0.0, np.nan, 1.0], np.float32)
    >>> ulp_distance(a, b).tolist()
    [1.0, 0.0, 0.0, inf]
    """
    a, b = np.asarray(a), np.asarray(b)
    itype = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}[a.dtype]
    ia, ib = a.view(itype).astype(np.int64), b.view(itype).astype(np.int64)
    sign = np.int64(np.iinfo(itype).min)
    # Map sign-magnitude bit patterns onto a line where neighbours differ by 1.
    ia = np.where(ia < 0, sign - ia, ia)
    ib = np.where(ib < 0, sign - ib, ib)
    # Same sign: the integer difference is exact. Opposite signs: the distance can pass
    # 2**63, so add the two magnitudes as floats (huge either way).
    same_sign = (ia >= 0) == (ib >= 0)
    with np.errstate(over="ignore"):
        exact = np.abs(np.where(same_sign, ia - ib, 0)).astype(np.float64)
    dist = np.where(same_sign, exact, np.abs(ia.astype(np.float64)) + np.abs(ib.astype(np.float64)))
    both_nan = np.isnan(a) & np.isnan(b)
    one_nan = np.isnan(a) ^ np.isnan(b)
    return np.where(both_nan, 0.0, np.where(one_nan, np.inf, dist))
