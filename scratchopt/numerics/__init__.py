"""TensorFlow's CPU arithmetic, reproduced to the last bit: what parity with Keras takes.

The optimizers, layers and losses are written with ordinary ``+ - * /`` and ``sqrt``; those
are IEEE-exact in NumPy and in TensorFlow's CPU kernels alike (no FMA contraction on either
side), so doing the same operations in the same order gives the same bits. Five things
are not automatic, and each lives here, once, so the rest of the code can stay readable
(measured facts: ``shared/KERAS_SEMANTICS.md`` §0 and §9):

1. **The floating-point environment** (``fpenv``: ``tf_arithmetic``, ``flush_denormals``,
   ``FTZ_DAZ``). TF's CPU kernels run with the FTZ and DAZ bits of the x86 MXCSR register
   set: subnormal inputs read as 0 and subnormal results become 0. ``tf_arithmetic`` sets
   the same bits around a block of NumPy code (and restores them after), so NumPy's own
   ufuncs flush exactly where TensorFlow's do.
2. **Python-float constants** (``casts``: ``as_dtype``, ``through_float32``,
   ``keras_cast``). ``ops.multiply(x, 0.1)`` rounds the double once to ``x``'s dtype;
   ``ops.cast(0.9, float64)`` goes through a float32 tensor first, so a float64 model sees
   ``0.8999999761581421``. The learning rate always takes the float32 road.
3. **Scalar powers, cosines and logs** (``libm``: ``power``, ``cos``, ``log``). Adam's
   ``beta_1 ** t`` and every schedule's ``pow``/``cos``/``log`` run TF's scalar kernels,
   which call the C library (``powf``/``cosf``/``logf``, ``pow``/``cos``/``log`` in
   float64). NumPy's float32 versions are up to 1 ULP away, so we call libm.
4. **Summation order** (``sums``: ``reduce_sum``, ``reduce_sum_over``,
   ``reduce_mean_over``; ``matmul``: ``matmul``, ``bias_add_grad``). A float sum depends
   on its order. ``tf.reduce_sum`` adds with Eigen's vectorised tree (packets of 8 float32
   or 4 float64, four interleaved accumulators, split in halves above 1024 packets), and
   each shape of reduction over axes has its own loop; float64 ``tf.matmul`` picks Eigen's
   kernel by shape: one inner index at a time; a one-column product in 4 lanes per row;
   and, with a dimension of 1 and m + k + n < 20, coefficient by coefficient (``matmul.py``
   lists the orders); ``BiasAddGrad`` one
   batch row at a time. ``np.sum`` and ``@`` use other orders and differ by up to
   hundreds of ULP.
5. **Packet and tail** (``elementwise``: ``rsqrt``, ``rsqrt_grad``). Eigen evaluates an
   elementwise op on whole packets, then on the last ``size % P`` elements, and some ops
   compute the two parts differently. ``RsqrtGrad`` is reproduced exactly; float32
   ``rsqrt`` on packets uses the CPU's approximate instruction and is not (a few ULP).

To report how far two results are when they are not the same bits: ``ulp.ulp_distance``.

Where each lives (every name is importable from ``scratchopt.numerics`` itself, except
the two in ``matmul``, imported from ``scratchopt.numerics.matmul``):

===============  ==========================================================================
module           holds
===============  ==========================================================================
``fpenv``        ``FTZ_DAZ`` (the MXCSR bits), ``FTZ_SUPPORTED``, ``flush_denormals``,
                 ``tf_arithmetic``
``casts``        ``as_dtype``, ``through_float32``, ``keras_cast``
``libm``         ``power``, ``cos``, ``log``
``sums``         ``reduce_sum`` (all elements), ``reduce_sum_over`` and
                 ``reduce_mean_over`` (over axes): Eigen's orders, with a table of them
``matmul``       ``matmul`` (``tf.matmul``), ``bias_add_grad`` (a Dense bias's gradient)
``elementwise``  ``rsqrt``, ``rsqrt_grad``
``pow``          ``power_array`` (``tf.pow`` on arrays: Eigen's ``generic_pow`` on whole
                 packets, the C library's ``pow`` on the tail; Ftrl and Lamb need it);
                 compiled, the same bits, in ``pow_fast`` (numba: imported only when used)
``fma``          ``fma`` (one rounding of ``a*b + c``: what PyTorch's CPU kernels do in
                 ``add(alpha=)``, ``lerp_``, ``addcmul_``; ``scratchopt.torch`` needs it)
``philox``       ``stateless_uniform`` (``tf.random.stateless_uniform``: TF's Philox4x32-10
                 numbers, from which Keras draws dropout masks), ``SeedGenerator`` (Keras's
                 seed sequence); a mask compiled, the same bits, in ``philox_fast``
``ulp``          ``ulp_distance``
===============  ==========================================================================

All of it is exact for NumPy arrays on one intra-op thread, which the parity tests pin.
On CuPy arrays none of it applies (a GPU has its own libm, FMA contraction and reduction
order): GPU results are compared with the NumPy path under a bound, not bitwise. The
exception is ``philox``: its integer arithmetic gives the same numbers on either device.
"""

from .casts import as_dtype, keras_cast, through_float32
from .elementwise import rsqrt, rsqrt_grad
from .fma import fma
from .fpenv import FTZ_DAZ, FTZ_SUPPORTED, flush_denormals, tf_arithmetic
from .libm import cos, log, power
from .philox import SeedGenerator, stateless_uniform
from .pow import power_array
from .sums import reduce_mean_over, reduce_sum, reduce_sum_over
from .ulp import ulp_distance

__all__ = [
    "FTZ_DAZ", "FTZ_SUPPORTED", "flush_denormals", "tf_arithmetic",
    "as_dtype", "through_float32", "keras_cast",
    "power", "cos", "log",
    "reduce_sum", "reduce_sum_over", "reduce_mean_over",
    "rsqrt", "rsqrt_grad",
    "stateless_uniform", "SeedGenerator",
    "power_array", "fma",
    "ulp_distance",
]
