"""The sums of ``sums.py`` compiled by numba: the same additions, in the same order, fast.

``sums.py`` is the readable reference: Eigen's summation orders written with NumPy. Here
each of its loops is one compiled kernel that does exactly the same additions, in exactly
the same order, so the bits are the same (``parity_tests/test_sums_fast.py`` checks it on
drawn shapes, axes and dtypes, with -0.0, subnormals, inf and NaN):

==================  =====================================================================
kernel              the reference it replaces
==================  =====================================================================
``tree_sum``        ``_row_sums`` of one row (``reduce_sum``): each leaf of Eigen's tree
                    (``_eigen_tree``) in four interleaved packet accumulators (vector
                    registers: ``_packets``), the leaves in parallel (they are
                    independent), then the tree's ``0 + l + r``
``rows_sum``        ``_row_sums`` of many rows: one tree per row, rows in parallel
``slab_sums``       ``_slab_sums``: the four row-interleaved accumulators of a column sum,
                    the accumulators (and slabs) in parallel, and the one-by-one sums
                    only for the outputs that need them
``sequential_sums`` ``_sequential_sums`` of rows (``0 + x0 + x1 + ...``, rows in parallel),
                    and ``matmul.bias_add_grad``'s row-at-a-time sum over the batch
``segment_sums``    ``segment_sums_of_squares``: the segments of a flat buffer, each a
                    tensor of its own, every leaf of every segment in one loop
==================  =====================================================================

``transform`` is applied to each element as it is read (``x * x`` or ``abs(x)``): the
squared norm of ``clip_by_norm`` and the L1/L2 penalties without their temporary array.
It is the same rounded product NumPy's ``g * g`` makes.

Why the bits are the reference's: ``fastmath=False`` (numba then lets LLVM neither
reorder additions nor contract a multiply and an add into an FMA), so each ``+`` is one
IEEE-rounded addition, as in NumPy; vectorising a loop *across* independent accumulators
does not change any accumulator's order. The leaves' packet loops are LLVM IR written
here (``_packets``): ``fadd``/``fmul`` on vectors, without fast-math flags, are the same
IEEE operations lane by lane. Flush-to-zero: the serial kernels run in the
calling thread, inside ``tf_arithmetic``; the parallel ones read the caller's FTZ/DAZ bits
and set them in each worker's MXCSR for its chunk, then restore it, as the fused
optimizer kernels do (``optimizers/engine/fused_cpu.py``, whose intrinsics they share).

numba is optional (the ``fast`` extra): ``sums.py`` calls here only when ``available()``,
for C-contiguous NumPy float32/float64 arrays, and not when ``SCRATCHOPT_BACKEND=numpy``.
Each kernel is compiled on its first use (about a second) and kept for the process.
"""

import functools
import os
import platform

import numpy as np

from . import fpenv

#: From this many elements on, a kernel runs in parallel (numba ``prange``); below it,
#: serially in the calling thread. ``python benchmarks/sum_crossover.py`` on this project's
#: 2-core VM (load 0.4), ``sum_of_squares`` serial vs 2 threads: float32 19.8 vs 18.6 us at
#: 1e5, 27.6 vs 20.8 at 2e5, 43.4 vs 28.1 at 3e5, 430 vs 234 at 2.5e6; float64 28.2 vs 21.9
#: at 1e5, 54.3 vs 30.8 at 2e5 (``reduce_sum`` the same). Parallel wins from 400-800 KB
#: (a second run: float32 from 2e5, float64 from 1e5), so from 262,144 elements (1 MiB of
#: float32). A parallel launch
#: waits for its slowest thread: on a machine whose other cores are busy (load 4-5 on these
#: 2 cores) every parallel sum took about 16 ms, and ``numba.set_num_threads(1)`` (or
#: ``NUMBA_NUM_THREADS=1``) keeps every sum serial, as for the fused optimizer kernels.
PARALLEL_MIN_ELEMENTS = 1 << 18

_X86 = platform.machine() in ("x86_64", "AMD64")
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
TRANSFORMS = ("none", "square", "abs")


@functools.cache
def available():
    """Whether numba can be imported (the ``fast`` extra)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def wanted(x):
    """Whether ``x`` takes the compiled path: numba present, a NumPy float32/float64 array,
    and ``SCRATCHOPT_BACKEND`` not ``numpy``."""
    return (type(x) is np.ndarray and x.dtype in _DTYPES
            and os.environ.get("SCRATCHOPT_BACKEND") != "numpy" and available())


def _parallel(size):
    if size < PARALLEL_MIN_ELEMENTS:
        return False
    from ..optimizers.engine import fused_cpu

    return fused_cpu._threads() > 1  # starts numba's workers outside flush-to-zero, once


# --- the kernels, made per (packet, transform) ----------------------------------------------


@functools.cache
def _packets(packet, transform):
    """``(packets, packet_pair)``, compiled: the packet part of Eigen's leaf sum
    (``sums._leaf_sums``) of ``f(x[lo:lo + n])``, its one packet accumulator written to
    ``acc[:packet]`` (the leaf's last ``n % packet`` elements are the caller's); and of two
    leaves at once, ``packet_pair(x, lo_a, n_a, lo_b, n_b, acc)``, into ``acc[:packet]``
    and ``acc[packet:2 * packet]``. For each leaf, in LLVM IR::

        a0 = a1 = a2 = a3 = <packet x 0.0>
        for b in range(n // (4 * packet)):    # four packet accumulators, interleaved
            aj = aj + f(load <packet x T> at x[lo + 4 * packet * b + packet * j])   # j = 0..3
        if n >= 4 * packet:
            a0 = ((a0 + a1) + a2) + a3
        for each whole packet left:           # into accumulator 0
            a0 = a0 + f(load <packet x T>)
        store a0 at acc

    numba has no vector type: with the accumulators in an array, every addition waits
    for a store and a load of its accumulator, and that chain, not the memory, set the
    speed (``benchmarks/results/intel-xeon-2c/README.md``: clip_by_global_norm 0.81x of
    before at 1e5). Here they are vector registers. ``fadd``/``fmul`` without fast-math
    flags are IEEE operations lane by lane, so each lane is the reference's chain of
    roundings (``np.add.accumulate`` over its column), and nothing is contracted to FMA.

    A pair's blocks go side by side, as long as both have blocks (then each finishes
    alone): eight independent chains of additions instead of four, and two streams
    from memory instead of one. Leaves are independent, so each keeps its own order.
    """
    from llvmlite import ir
    from numba.core import cgutils
    from numba.core import types as nb
    from numba.extending import intrinsic

    def fabs(module, vector):  # llvm.fabs.v8f32 / .v4f64: clears each lane's sign bit
        name = f"llvm.fabs.v{vector.count}f{32 if isinstance(vector.element, ir.FloatType) else 64}"
        return module.globals.get(name) or ir.Function(module, ir.FunctionType(vector, [vector]), name)

    def leaves_packets(context, builder, x, args, acc):
        """The IR of the docstring's loop for the leaves ``args[1:-1]`` = (lo, n, lo, n...)."""
        i64 = ir.IntType(64)

        def int64(value):
            return builder.sext(value, i64) if value.type.width < 64 else value

        def const(value):
            return ir.Constant(i64, value)

        vector = ir.VectorType(context.get_value_type(x.dtype), packet)
        align = x.dtype.bitwidth // 8
        data = context.make_array(x)(context, builder, args[0]).data
        leaves = [(builder.gep(data, [int64(lo)]), int64(n)) for lo, n in zip(args[1:-1:2], args[2:-1:2])]

        def read(start, offset):  # f of the packet at start[offset]
            v = builder.load(builder.bitcast(builder.gep(start, [offset]), vector.as_pointer()), align=align)
            if transform == "square":
                return builder.fmul(v, v)
            if transform == "abs":
                return builder.call(fabs(builder.module, vector), [v])
            return v

        def add_blocks(block, which):  # block ``block`` of four packets into each leaf of ``which``
            first = builder.mul(block, const(4 * packet))
            for (start, _), sums, _ in which:
                for j, total in enumerate(sums):
                    packet_j = read(start, builder.add(first, const(j * packet)))
                    builder.store(builder.fadd(builder.load(total), packet_j), total)

        state = [(leaf, [cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * packet)) for _ in range(4)],
                  builder.sdiv(leaf[1], const(4 * packet))) for leaf in leaves]
        common = state[0][2]
        for *_, blocks in state[1:]:
            common = builder.select(builder.icmp_signed("<", blocks, common), blocks, common)
        with cgutils.for_range(builder, common) as loop:  # side by side
            add_blocks(loop.index, state)
        out = context.make_array(acc)(context, builder, args[-1]).data
        for k, ((start, count), sums, blocks) in enumerate(state):
            with cgutils.for_range_slice(builder, common, blocks, const(1)) as (index, _):  # alone
                add_blocks(index, [state[k]])
            with builder.if_then(builder.icmp_signed(">", blocks, const(0))):
                a0, a1, a2, a3 = (builder.load(total) for total in sums)
                builder.store(builder.fadd(builder.fadd(builder.fadd(a0, a1), a2), a3), sums[0])
            done = builder.mul(blocks, const(4 * packet))
            left = builder.sdiv(builder.sub(count, done), const(packet))
            with cgutils.for_range(builder, left) as loop:
                offset = builder.add(done, builder.mul(loop.index, const(packet)))
                builder.store(builder.fadd(builder.load(sums[0]), read(start, offset)), sums[0])
            where = builder.bitcast(builder.gep(out, [const(k * packet)]), vector.as_pointer())
            builder.store(builder.load(sums[0]), where, align=align)

    def typed(x, acc, integers):
        return (isinstance(x, nb.Array) and isinstance(acc, nb.Array) and x.dtype == acc.dtype
                and all(isinstance(i, nb.Integer) for i in integers))

    @intrinsic
    def packets(typingctx, x, lo, n, acc):
        if not typed(x, acc, (lo, n)):
            return None

        def codegen(context, builder, signature, args):
            leaves_packets(context, builder, x, args, acc)
            return context.get_dummy_value()

        return nb.none(x, lo, n, acc), codegen

    @intrinsic
    def packet_pair(typingctx, x, lo_a, n_a, lo_b, n_b, acc):
        if not typed(x, acc, (lo_a, n_a, lo_b, n_b)):
            return None

        def codegen(context, builder, signature, args):
            leaves_packets(context, builder, x, args, acc)
            return context.get_dummy_value()

        return nb.none(x, lo_a, n_a, lo_b, n_b, acc), codegen

    return packets, packet_pair



@functools.cache
def _kernels(packet, transform):
    """The compiled kernels for packets of ``packet`` elements, each element read through
    ``transform``. numba freezes the closure's constants into the code."""
    import numba

    from ..optimizers.engine.fused_cpu import _mxcsr_intrinsics

    options = {"fastmath": False, "error_model": "numpy", "nogil": True}
    P = packet
    FTZ_DAZ = np.uint32(fpenv.FTZ_DAZ)
    if _X86:
        intrinsics = _mxcsr_intrinsics()
        get_mxcsr, set_mxcsr = intrinsics["_get_mxcsr"], intrinsics["_set_mxcsr"]
    else:  # nothing is flushed there (fpenv.FTZ_SUPPORTED): nothing to carry over

        @numba.njit
        def get_mxcsr():
            return np.uint32(0)

        @numba.njit
        def set_mxcsr(value):
            pass

    @numba.njit(inline="always", **options)
    def enter_worker(mode):
        """At the start of a thread's chunk: the caller's FTZ/DAZ bits ``mode`` set in this
        thread's MXCSR; returns the MXCSR it had, for ``set_mxcsr(saved)`` at the end."""
        saved = get_mxcsr()
        set_mxcsr((saved & ~FTZ_DAZ) | mode)
        return saved

    if transform == "square":

        @numba.njit(**options)
        def f(v):
            return v * v
    elif transform == "abs":

        @numba.njit(**options)
        def f(v):
            return abs(v)
    else:

        @numba.njit(**options)
        def f(v):
            return v

    if P == 8:

        @numba.njit(**options)
        def hsum(a):
            return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    else:

        @numba.njit(**options)
        def hsum(a):
            return (a[0] + a[2]) + (a[1] + a[3])

    packets, packet_pair = _packets(P, transform)

    @numba.njit(**options)
    def finish(x, lo, n, a):
        """A leaf's sum from its packet accumulator ``a[:P]``: its last ``n % P`` elements
        one by one, plus Eigen's horizontal add of the packet."""
        tail = x.dtype.type(0)
        for j in range(lo + (n // P) * P, lo + n):
            tail += f(x[j])
        return tail + hsum(a)

    @numba.njit(**options)
    def leaf(x, lo, n, acc):
        """``sums._leaf_sums`` of ``f(x[lo:lo + n])`` (``acc``: scratch of ``P`` elements)."""
        packets(x, lo, n, acc)
        return finish(x, lo, n, acc)

    @numba.njit(**options)
    def leaf_of(y, n, acc):
        """The leaf sum of ``f(y[:n])`` (a row of its own)."""
        return leaf(y, 0, n, acc)

    @numba.njit(**options)
    def leaf_pair(x, lo_a, n_a, lo_b, n_b, acc):
        """``(leaf(x, lo_a, n_a), leaf(x, lo_b, n_b))``, their packets read side by side
        (``acc``: scratch of ``2 * P`` elements)."""
        packet_pair(x, lo_a, n_a, lo_b, n_b, acc)
        return finish(x, lo_a, n_a, acc), finish(x, lo_b, n_b, acc[P:])

    @numba.njit(**options)
    def leaves(x, start, offsets, lengths, first, stop, sums, acc):
        """``sums[k] = leaf(x, start + offsets[k], lengths[k])`` for ``first <= k < stop``,
        two leaves at a time (``leaf_pair``)."""
        k = first
        while k + 1 < stop:
            sums[k], sums[k + 1] = leaf_pair(x, start + offsets[k], lengths[k],
                                             start + offsets[k + 1], lengths[k + 1], acc)
            k += 2
        if k < stop:
            sums[k] = leaf(x, start + offsets[k], lengths[k], acc)

    @numba.njit(**options)
    def combine(sums, lefts, rights, root):
        """The tree's nodes in post-order: node k is ``(0 + left) + right``."""
        leaves = sums.size - lefts.size
        for k in range(lefts.size):
            sums[leaves + k] = (sums.dtype.type(0) + sums[lefts[k]]) + sums[rights[k]]
        return sums[root]

    @numba.njit(**options)
    def tree_serial(x, start, offsets, lengths, lefts, rights, root, sums, acc):
        """One tree from ``x[start]`` (``acc``: scratch of ``2 * P`` elements)."""
        leaves(x, start, offsets, lengths, 0, offsets.size, sums, acc)
        return combine(sums, lefts, rights, root)

    @numba.njit(parallel=True, **options)
    def tree_parallel(x, offsets, lengths, lefts, rights, root, chunks):
        """One row's tree, its leaves in ``chunks`` parallel chunks."""
        count = offsets.size
        sums = np.empty(count + lefts.size, x.dtype)
        mode = get_mxcsr() & FTZ_DAZ
        per = (count + chunks - 1) // chunks
        for c in numba.prange(chunks):
            saved = enter_worker(mode)
            leaves(x, 0, offsets, lengths, c * per, min(count, (c + 1) * per), sums, np.empty(2 * P, x.dtype))
            set_mxcsr(saved)
        return combine(sums, lefts, rights, root)

    def rows_kernel(parallel):
        loop = numba.prange if parallel else range

        def rows_sum(x, n, plan_of, offsets, lengths, counts, lefts, rights, inner, roots, out, chunks):
            """Row r of ``x`` (flat, rows of n) as a tree: plan ``plan_of[(r * n) % P]``."""
            rows = out.size
            mode = get_mxcsr() & FTZ_DAZ
            per = (rows + chunks - 1) // chunks
            for c in loop(chunks):
                saved = enter_worker(mode)
                acc = np.empty(P, x.dtype)
                sums = np.empty(offsets.shape[1] + lefts.shape[1], x.dtype)
                for r in range(c * per, min(rows, (c + 1) * per)):
                    q = plan_of[(r * n) % P]
                    k = counts[q]
                    for j in range(k):
                        sums[j] = leaf(x, r * n + offsets[q, j], lengths[q, j], acc)
                    m = inner[q]
                    for j in range(m):
                        sums[k + j] = (x.dtype.type(0) + sums[lefts[q, j]]) + sums[rights[q, j]]
                    out[r] = sums[roots[q]]
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(rows_sum)

    def slab_kernel(parallel):
        loop = numba.prange if parallel else range

        def slab_sums(x, packed, single, out):
            """(A, B, C) over B. ``single[a, c]``: output (a, c) is summed one by one."""
            a_size, b, c_size = x.shape
            mode = get_mxcsr() & FTZ_DAZ
            whole = (b // 4) * 4
            if packed:  # accumulator j of slab a over rows j, j + 4, ...: one task each
                p = np.zeros((a_size, 4, c_size), x.dtype)
                for t in loop(a_size * 4):
                    saved = enter_worker(mode)
                    ai = t // 4
                    j = t % 4
                    for i in range(j, whole, 4):
                        for ci in range(c_size):
                            p[ai, j, ci] += f(x[ai, i, ci])
                    set_mxcsr(saved)
                for ai in range(a_size):
                    for ci in range(c_size):
                        s = ((p[ai, 0, ci] + p[ai, 1, ci]) + p[ai, 2, ci]) + p[ai, 3, ci]
                        for i in range(whole, b):
                            s = s + f(x[ai, i, ci])
                        out[ai, ci] = s
            for ai in loop(a_size):  # the one-by-one outputs, rows in order
                saved = enter_worker(mode)
                cols = np.empty(c_size, np.int64)
                k = 0
                for ci in range(c_size):
                    if single[ai, ci]:
                        cols[k] = ci
                        k += 1
                if k == c_size:
                    for ci in range(c_size):
                        out[ai, ci] = 0
                    for i in range(b):
                        for ci in range(c_size):
                            out[ai, ci] += f(x[ai, i, ci])
                elif k > 0:
                    acc = np.zeros(k, x.dtype)
                    for i in range(b):
                        for q in range(k):
                            acc[q] += f(x[ai, i, cols[q]])
                    for q in range(k):
                        out[ai, cols[q]] = acc[q]
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(slab_sums)

    def sequential_kernel(parallel):
        loop = numba.prange if parallel else range

        def sequential_sums(x, out, chunks):
            """``0 + x[r, 0] + x[r, 1] + ...`` for each row r of 2-d ``x``."""
            rows, n = x.shape
            mode = get_mxcsr() & FTZ_DAZ
            per = (rows + chunks - 1) // chunks
            for c in loop(chunks):
                saved = enter_worker(mode)
                for r in range(c * per, min(rows, (c + 1) * per)):
                    s = x.dtype.type(0)
                    for i in range(n):
                        s += f(x[r, i])
                    out[r] = s
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(sequential_sums)

    def columns_kernel(parallel):
        loop = numba.prange if parallel else range

        def column_sums(x, out, chunks):
            """``0 + x[0, c] + x[1, c] + ...`` for each column c (rows added one at a time)."""
            rows, n = x.shape
            mode = get_mxcsr() & FTZ_DAZ
            per = (n + chunks - 1) // chunks
            per = (per + 15) // 16 * 16
            for c in loop(chunks):
                saved = enter_worker(mode)
                lo = c * per
                hi = min(n, lo + per)
                for ci in range(lo, hi):
                    out[ci] = 0
                for r in range(rows):
                    for ci in range(lo, hi):
                        out[ci] += f(x[r, ci])
                set_mxcsr(saved)

        return numba.njit(parallel=parallel, **options)(column_sums)

    def segments_kernel(parallel):
        loop = numba.prange if parallel else range

        def segment_sums(x, starts, sizes, plan, leaf_segment, leaf_offsets, leaf_lengths, leaf_first, lefts, rights,
                         inner, roots, width, leaf_out, rest, out, chunks):
            """Segment s of flat ``x`` (``sizes[s]`` elements from ``starts[s]``) as a tensor of
            its own: Eigen's tree (plan ``plan[s]``). Every leaf of every segment first, the
            leaves in ``chunks`` chunks (balanced: a leaf is at most a few thousand elements);
            a segment that is one leaf (``leaf_out[k]``: its index, else -1) is that leaf's
            sum, written there. Then the ``rest``: each tree from its leaves,
            ``leaf_first[s]`` on, and the segments of 0 and 1 elements."""
            count = leaf_offsets.size
            leaf_sums = np.empty(count, x.dtype)
            mode = get_mxcsr() & FTZ_DAZ
            per = (count + chunks - 1) // chunks
            for c in loop(chunks):
                saved = enter_worker(mode)
                acc = np.empty(2 * P, x.dtype)
                k, stop = c * per, min(count, (c + 1) * per)
                while k + 1 < stop:  # two leaves at a time
                    leaf_sums[k], leaf_sums[k + 1] = leaf_pair(
                        x, starts[leaf_segment[k]] + leaf_offsets[k], leaf_lengths[k],
                        starts[leaf_segment[k + 1]] + leaf_offsets[k + 1], leaf_lengths[k + 1], acc)
                    k += 2
                if k < stop:
                    leaf_sums[k] = leaf(x, starts[leaf_segment[k]] + leaf_offsets[k], leaf_lengths[k], acc)
                for j in range(c * per, stop):  # the tree is its one leaf
                    if leaf_out[j] >= 0:
                        out[leaf_out[j]] = leaf_sums[j]
                set_mxcsr(saved)
            sums = np.empty(width, x.dtype)
            for seg in rest:
                if sizes[seg] == 0:
                    out[seg] = 0
                elif sizes[seg] == 1:  # nothing to add up: TF copies the element
                    out[seg] = f(x[starts[seg]])
                else:
                    q, first = plan[seg], leaf_first[seg]
                    leaves, nodes = leaf_first[seg + 1] - first, inner[q]
                    for j in range(leaves):
                        sums[j] = leaf_sums[first + j]
                    out[seg] = combine(sums[:leaves + nodes], lefts[q, :nodes], rights[q, :nodes], roots[q])

        return numba.njit(parallel=parallel, **options)(segment_sums)

    return {"leaf": leaf, "leaf_of": leaf_of, "leaf_pair": leaf_pair,
            "mxcsr": (get_mxcsr, set_mxcsr, FTZ_DAZ), "enter_worker": enter_worker,
            "segments": {False: segments_kernel(False), True: segments_kernel(True)},
            "tree_serial": tree_serial, "tree_parallel": tree_parallel,
            "rows": {False: rows_kernel(False), True: rows_kernel(True)},
            "slab": {False: slab_kernel(False), True: slab_kernel(True)},
            "sequential": {False: sequential_kernel(False), True: sequential_kernel(True)},
            "columns": {False: columns_kernel(False), True: columns_kernel(True)}}


# --- the trees, as arrays ---------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _plan(first, n, packet):
    """``sums._eigen_tree(first, n, packet)`` as arrays: leaf offsets and lengths, and the
    inner nodes in post-order (children by index: leaves first, then inner nodes), root."""
    from .sums import _eigen_tree

    tree, leaves = _eigen_tree(first, n, packet)
    lefts, rights = [], []

    def walk(node):
        if isinstance(node, int):
            return node
        left, right = walk(node[0]), walk(node[1])
        lefts.append(left)
        rights.append(right)
        return len(leaves) + len(lefts) - 1

    root = walk(tree)
    as_array = functools.partial(np.array, dtype=np.int64)
    return (as_array([o for o, _ in leaves]), as_array([c for _, c in leaves]),
            as_array(lefts), as_array(rights), root)


@functools.lru_cache(maxsize=256)
def _row_plans(n, packet):
    """The plans of rows of ``n`` for each start residue modulo ``packet``, stacked."""
    residues = sorted({(r * n) % packet for r in range(packet)})
    plans = [_plan(residue, n, packet) for residue in residues]
    plan_of = np.zeros(packet, np.int64)
    for k, residue in enumerate(residues):
        plan_of[residue] = k
    width = max(len(p[0]) for p in plans)
    offsets = np.zeros((len(plans), width), np.int64)
    lengths = np.zeros((len(plans), width), np.int64)
    for k, (o, c, _, _, _) in enumerate(plans):
        offsets[k, :len(o)], lengths[k, :len(c)] = o, c
    counts = np.array([len(p[0]) for p in plans], np.int64)
    return (plan_of, offsets, lengths, counts, *_stacked_nodes(plans))


def _stacked_nodes(plans):
    """The inner nodes of ``plans`` (``_plan``'s), one row each: ``(lefts, rights, inners,
    roots)``, ``inners[k]`` the count of row k (rows padded with 0; at least one row)."""
    rows, inner = max(len(plans), 1), max([len(p[2]) for p in plans] + [1])
    lefts, rights = np.zeros((rows, inner), np.int64), np.zeros((rows, inner), np.int64)
    for k, (_, _, l, r, _) in enumerate(plans):
        lefts[k, :len(l)], rights[k, :len(r)] = l, r
    inners = np.array([len(p[2]) for p in plans] or [0], np.int64)
    roots = np.array([p[4] for p in plans] or [0], np.int64)
    return lefts, rights, inners, roots


@functools.lru_cache(maxsize=64)
def _segment_plans(sizes, packet):
    """The trees of segments of ``sizes`` (a tuple), each as a tensor of its own (``_plan``
    from 0): every leaf (its segment, offset in it, length), where each segment's leaves
    start, and the inner nodes of each distinct size, stacked as ``_row_plans`` does; then
    each leaf's segment if it is that segment's only leaf (else -1), and the other segments."""
    distinct = sorted({n for n in sizes if n >= 2})
    plans = [_plan(0, n, packet) for n in distinct]
    which = {n: q for q, n in enumerate(distinct)}
    plan = np.array([which.get(n, 0) for n in sizes], np.int64)
    leaf_segment, leaf_offsets, leaf_lengths, leaf_first = [], [], [], [0]
    for seg, n in enumerate(sizes):
        if n >= 2:
            offsets, lengths = plans[which[n]][:2]
            leaf_segment += [seg] * len(offsets)
            leaf_offsets += offsets.tolist()
            leaf_lengths += lengths.tolist()
        leaf_first.append(len(leaf_offsets))
    width = max([len(p[0]) + len(p[2]) for p in plans] + [1])
    one_leaf = [leaf_first[seg + 1] - leaf_first[seg] == 1 for seg in range(len(sizes))]
    leaf_out = [seg if one_leaf[seg] else -1 for seg in leaf_segment]
    rest = [seg for seg in range(len(sizes)) if not one_leaf[seg]]
    as_array = functools.partial(np.array, dtype=np.int64)
    return (as_array(sizes), plan, as_array(leaf_segment), as_array(leaf_offsets), as_array(leaf_lengths),
            as_array(leaf_first), *_stacked_nodes(plans), width, as_array(leaf_out), as_array(rest))


def _packet_size(dtype):
    return 8 if dtype == np.float32 else 4


def _chunks(size, parts):
    if not _parallel(size):
        return 1
    from ..optimizers.engine import fused_cpu

    return max(1, min(parts, fused_cpu._threads() * 4))


# --- the entry points (sums.py calls these) ----------------------------------------------------


def reduce_sum(x, transform="none"):
    """``sums.reduce_sum(f(x))`` of a C-contiguous float32/float64 NumPy array: a 0-d value."""
    flat = x.reshape(-1)
    packet = _packet_size(x.dtype)
    kernels = _kernels(packet, transform)
    offsets, lengths, lefts, rights, root = _plan(0, flat.size, packet)
    chunks = _chunks(flat.size, offsets.size)
    if chunks > 1:
        return kernels["tree_parallel"](flat, offsets, lengths, lefts, rights, root, chunks)
    sums = np.empty(offsets.size + lefts.size, x.dtype)
    acc = np.empty(2 * packet, x.dtype)
    return kernels["tree_serial"](flat, 0, offsets, lengths, lefts, rights, root, sums, acc)


def row_sums(rows, transform="none"):
    """``sums._row_sums(f(rows))``: each row of a C-contiguous 2-d array as Eigen's tree."""
    k, n = rows.shape
    out = np.zeros(k, rows.dtype)
    if k == 0:
        return out
    if k == 1:
        out[0] = reduce_sum(rows, transform)
        return out
    packet = _packet_size(rows.dtype)
    plans = _row_plans(n, packet)
    chunks = _chunks(rows.size, k)
    _kernels(packet, transform)["rows"][chunks > 1](rows.reshape(-1), n, *plans, out, chunks)
    return out


def segment_sums(flat, starts, sizes, transform="none"):
    """``[sums.reduce_sum(f(flat[a:a + n])) for a, n in zip(starts, sizes)]`` of a 1-d
    C-contiguous float32/float64 array, as one (k,) array: each segment a tensor of its own
    (a packed buffer's params), every segment in one call. ``sizes`` is a tuple."""
    packet = _packet_size(flat.dtype)
    plans = _segment_plans(sizes, packet)
    out = np.empty(len(sizes), flat.dtype)
    chunks = _chunks(flat.size, max(1, plans[3].size))
    _kernels(packet, transform)["segments"][chunks > 1](flat, starts, *plans, out, chunks)
    return out


def _single(a, c, packet):
    """Which outputs of an (A, C) slab sum are added one by one (``sums._slab_sums``)."""
    o = np.arange(a * c)
    start = o - o % packet
    return ~((start + packet <= a * c) & (start % c + packet <= c)).reshape(a, c)


def slab_sums(x, transform="none"):
    """``sums._slab_sums(f(x))``: a C-contiguous (A, B, C) array summed over B: (A, C)."""
    a, b, c = x.shape
    out = np.empty((a, c), x.dtype)
    single = np.ones((a, c), np.bool_) if b < 16 else _single(a, c, _packet_size(x.dtype))
    packed = b >= 16 and not single.all()
    parallel = _parallel(x.size)
    _kernels(_packet_size(x.dtype), transform)["slab"][parallel](x, packed, single, out)
    return out


def sequential_sums(rows, transform="none"):
    """``sums._sequential_sums(f(rows), axis=1)`` of a C-contiguous 2-d array."""
    out = np.empty(rows.shape[0], rows.dtype)
    chunks = _chunks(rows.size, rows.shape[0])
    _kernels(_packet_size(rows.dtype), transform)["sequential"][chunks > 1](rows, out, chunks)
    return out


def column_sums(x, transform="none"):
    """``0 + x[0] + x[1] + ...`` over the rows of a C-contiguous 2-d array (``bias_add_grad``)."""
    out = np.empty(x.shape[1], x.dtype)
    chunks = _chunks(x.size, max(1, x.shape[1] // 16))
    _kernels(_packet_size(x.dtype), transform)["columns"][chunks > 1](x, out, chunks)
    return out
