"""The clipped copy of a big gradient, ``out = (g * c) / d`` or ``out = g * s``, written
past the cache (non-temporal stores).

``clip_by_norm`` and ``clip_by_global_norm`` return new arrays (Keras's API; PyTorch's
``clip_grad_norm_`` scales in place). An ordinary store to ``out`` first brings each of
its 64-byte lines into the cache, reading memory the copy is about to overwrite whole
(read-for-ownership), so the copy reads two arrays to write one. A non-temporal store
(``movntps``/``movntpd``) writes a whole line straight to memory, unread::

    for each element before out's first 64-byte boundary:  out[i] = (g[i] * c) / d
    for each whole packet (64 bytes of out) after it:     out[i:i+P] = (g[i:i+P] * c) / d   (non-temporal)
    for each element left:                                 out[i] = (g[i] * c) / d
    sfence                                                 (the stores visible before the thread ends)

The same IEEE multiply and divide per element as the NumPy line and the engine's
``_copy`` rule (``fmul``/``fdiv`` on vectors without fast-math flags are lane by lane the
scalar operations), so the same bits; ``parity_tests/test_fused.py`` checks it. The
packets run in parallel, one chunk per thread, each chunk setting the caller's FTZ/DAZ
bits in its thread (as ``fused_cpu`` does).

Why only when a call writes ``MIN_BYTES`` or more: a line written this way is not in the
cache, and the optimizer step that takes the clipped gradients reads them right after. A
small enough output would still have been in the cache then; a big one would not, and
streaming it saves its read-for-ownership. ``python benchmarks/stream_copy.py`` measures
both stores, each followed by that read, at each size; on the 2-core development VM (2 MiB
of L2 per core, a share of a 105 MiB L3) streaming lost up to 11.4 MiB, came out about even
at 19 MiB, and won from 26.7 MiB on
(``benchmarks/results/intel-xeon-2c/issue16_stream_copy.txt``), hence 24 MiB. It counts
all the outputs of one call (``clip_by_global_norm``'s four tensors of 10 MB are 40 MB
written before the step reads the first).
"""

import functools
import platform

import numpy as np

from ...numerics import FTZ_DAZ

#: From this many bytes of output in one clipping call on, its copies are written with
#: non-temporal stores (measured: the module's docstring).
MIN_BYTES = 24 << 20

_X86 = platform.machine() in ("x86_64", "AMD64")
_LINE = 64


def big(nbytes):
    """Whether a clipping call that writes ``nbytes`` in all streams its copies (on x86-64:
    the stores and ``sfence`` are written for it)."""
    return _X86 and nbytes >= MIN_BYTES


def scaled_copy(g, out, prescale):
    """``out[...] = (g * c) / d`` for ``prescale = (c, d)``, ``g * s`` for ``(s,)``, the
    scalars rounded to ``g``'s dtype. Unchecked: ``g`` and ``out`` are arrays the engine's
    fused path takes (``fused_cpu.eligible``), of one size, as ``clipping._scaled_copy``
    makes sure before it calls here."""
    from . import fused_cpu

    t = g.dtype.type
    c, d = (t(prescale[0]), None) if len(prescale) == 1 else (t(prescale[0]), t(prescale[1]))
    _kernel()(g.reshape(-1), out.reshape(-1), c, d, max(1, fused_cpu._threads()))


@functools.cache
def _kernel():
    import numba

    from .fused_cpu import _mxcsr_intrinsics

    options = {"fastmath": False, "error_model": "numpy", "nogil": True}
    mxcsr = _mxcsr_intrinsics()
    get_mxcsr, set_mxcsr = mxcsr["_get_mxcsr"], mxcsr["_set_mxcsr"]
    ftz_daz = np.uint32(FTZ_DAZ)
    packets = _stream_packets()

    @numba.njit(inline="always", **options)
    def one(x, c, d):
        return x * c if d is None else (x * c) / d

    def scaled_copy(g, out, c, d, threads):
        n = out.size
        lanes = _LINE // out.itemsize
        head = min(n, ((-out.ctypes.data) % _LINE) // out.itemsize)  # until out's first line
        for i in range(head):
            out[i] = one(g[i], c, d)
        whole = (n - head) // lanes  # packets after the head
        per = (whole + threads - 1) // threads
        mode = get_mxcsr() & ftz_daz  # the calling thread's flush bits
        for t in numba.prange(threads):
            saved = get_mxcsr()
            set_mxcsr((saved & ~ftz_daz) | mode)
            first = min(whole, t * per)
            count = min(whole, first + per) - first
            packets(g, out, head + first * lanes, count, c, d)
            set_mxcsr(saved)
        for i in range(head + whole * lanes, n):
            out[i] = one(g[i], c, d)

    return numba.njit(parallel=True, **options)(scaled_copy)


@functools.cache
def _stream_packets():
    """``packets(g, out, lo, count, c, d)``, compiled: ``count`` packets of 64 bytes from
    ``lo`` (``out[lo]`` on a 64-byte boundary), ``(g * c) / d`` (``g * c`` when ``d`` is
    None) stored non-temporally, then ``sfence``. In LLVM IR::

        for k in range(count):
            v = load <P x T> at g[lo + P * k]            (any alignment)
            v = fdiv (fmul v, <c, c, ...>), <d, d, ...>
            store v at out[lo + P * k], align 64, !nontemporal
        call @llvm.x86.sse.sfence()
    """
    from llvmlite import ir
    from numba.core import cgutils
    from numba.core import types as nb
    from numba.extending import intrinsic

    def splat(builder, vector, value):
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), vector.count), [0] * vector.count)
        first = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(first, ir.Constant(vector, ir.Undefined), lanes)

    @intrinsic
    def packets(typingctx, g, out, lo, count, c, d):
        divide = not isinstance(d, nb.NoneType)
        if not (isinstance(g, nb.Array) and isinstance(out, nb.Array) and g.dtype == out.dtype
                and isinstance(lo, nb.Integer) and isinstance(count, nb.Integer)):
            return None

        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            element = context.get_value_type(out.dtype)
            vector = ir.VectorType(element, _LINE // (out.dtype.bitwidth // 8))
            source = context.make_array(g)(context, builder, args[0]).data
            target = context.make_array(out)(context, builder, args[1]).data
            start = builder.sext(args[2], i64) if args[2].type.width < 64 else args[2]
            times = splat(builder, vector, context.cast(builder, args[4], signature.args[4], out.dtype))
            over = splat(builder, vector, context.cast(builder, args[5], signature.args[5], out.dtype)) if divide else None
            nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
            with cgutils.for_range(builder, args[3]) as loop:
                offset = builder.add(start, builder.mul(loop.index, ir.Constant(i64, vector.count)))
                v = builder.load(builder.bitcast(builder.gep(source, [offset]), vector.as_pointer()),
                                 align=out.dtype.bitwidth // 8)
                v = builder.fmul(v, times)
                if divide:
                    v = builder.fdiv(v, over)
                store = builder.store(v, builder.bitcast(builder.gep(target, [offset]), vector.as_pointer()),
                                      align=_LINE)
                store.set_metadata("nontemporal", nontemporal)
            sfence = (builder.module.globals.get("llvm.x86.sse.sfence")
                      or ir.Function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence"))
            builder.call(sfence, [])
            return context.get_dummy_value()

        return nb.none(g, out, lo, count, c, d), codegen

    return packets
