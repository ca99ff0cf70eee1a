"""``scratchopt.memory``: big outputs reuse the memory of dropped ones, and never of one still held.

What must hold: an array handed out keeps its memory to itself for as long as anything can
reach that memory (the array, a view of it, a view of a view, its ``base``, a
``memoryview``, a ctypes pointer, another library's array over it); once nothing can, the
next output of the same byte size gets it. Checked one holder at a time, then on drawn
sequences of allocations, views and drops (every live array keeps the values written into
it, and no two share memory), from several threads at once, and through the layers and
clipping functions that use it (a held result is not overwritten by the next call, and the
bits are those of plain ``np.empty`` outputs).
"""

import ctypes
import threading
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchopt import layers, memory
from scratchopt.clipping import clip_by_global_norm, clip_by_norm
from scratchopt.regularization import normalization_fast


@pytest.fixture(autouse=True)
def pool(monkeypatch):
    """A pool of its own for the test (what other tests hold stays in theirs), empty, that
    takes every size (so that small arrays exercise it)."""
    monkeypatch.delenv("SCRATCHOPT_REUSE_OUTPUTS", raising=False)
    monkeypatch.setattr(memory, "MIN_BYTES", 0)
    monkeypatch.setattr(memory, "_buffers", [])


def address(a):
    return a.__array_interface__["data"][0]


def test_a_dropped_output_gives_its_memory_to_the_next_of_its_byte_size():
    a = memory.empty((100, 10), np.float32)
    where = address(a)
    del a
    b = memory.empty((500,), np.float64)  # 4000 bytes too, another shape and dtype
    assert address(b) == where and b.shape == (500,) and b.dtype == np.float64
    assert b.flags.c_contiguous and b.flags.writeable and b.flags.aligned
    c = memory.empty((1001,), np.float32)  # another size: other memory
    assert address(c) != where
    assert memory.held() == (2, 4000 + 4004)


HOLDERS = {
    "the array": lambda a: a,
    "a view": lambda a: a[1:],
    "a view of a view": lambda a: a.reshape(-1)[::2][1:],
    "its base": lambda a: a.base,
    "a memoryview": memoryview,
    "a ctypes pointer": lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
    "an object array": lambda a: np.array([a, None], dtype=object),
    "np.asarray of it": np.asarray,
    "a DLPack import": np.from_dlpack,
}


@pytest.mark.parametrize("holder", list(HOLDERS))
def test_memory_that_something_still_reaches_is_not_reused(holder):
    a = memory.empty((64, 16), np.float32)
    a[...] = 7.0
    kept = HOLDERS[holder](a)
    del a
    b = memory.empty((64, 16), np.float32)
    b[...] = -1.0
    del kept  # now free: the next one takes it
    c = memory.empty((64, 16), np.float32)
    assert address(c) != address(b)
    assert memory.held()[0] == 2


def test_a_torch_tensor_over_an_output_holds_it():
    torch = pytest.importorskip("torch")
    a = memory.empty((64, 16), np.float32)
    a[...] = 3.0
    t = torch.from_numpy(a)
    where = address(a)
    del a
    b = memory.empty((64, 16), np.float32)
    b[...] = 0.0
    assert address(b) != where and bool((t == 3.0).all())


def test_turned_off_every_output_is_new(monkeypatch):
    monkeypatch.setenv("SCRATCHOPT_REUSE_OUTPUTS", "0")
    a = memory.empty((64, 16), np.float32)
    assert a.flags.owndata and memory.held() == (0, 0)


def test_small_outputs_are_plain_arrays(monkeypatch):
    monkeypatch.setattr(memory, "MIN_BYTES", 4096)
    assert memory.empty((1023,), np.float32).flags.owndata  # 4092 bytes
    assert not memory.empty((1024,), np.float32).flags.owndata
    assert memory.held() == (1, 4096)


def test_the_pool_keeps_at_most_its_limits_and_makes_room_from_free_buffers(monkeypatch):
    monkeypatch.setattr(memory, "MAX_BUFFERS", 2)
    monkeypatch.setattr(memory, "MAX_BYTES", 10_000)
    a, b = memory.empty(1000, np.uint8), memory.empty(2000, np.uint8)
    c = memory.empty(3000, np.uint8)  # both held, two buffers already: a plain array
    assert c.flags.owndata and memory.held() == (2, 3000)
    del a
    d = memory.empty(3000, np.uint8)  # a is free: dropped to make room
    assert not d.flags.owndata and memory.held() == (2, 5000)
    e = memory.empty(6000, np.uint8)  # over MAX_BYTES, b and d held
    assert e.flags.owndata
    del b, d
    f = memory.empty(9000, np.uint8)
    assert not f.flags.owndata and memory.held() == (1, 9000)
    assert memory.empty(10_001, np.uint8).flags.owndata  # never fits


def test_release_frees_only_free_buffers():
    a = memory.empty(1000, np.uint8)
    b = memory.empty(3000, np.uint8)
    del b
    assert memory.release() == 3000 and memory.held() == (1, 1000)
    a[...] = 5
    assert memory.release() == 0 and (a == 5).all()


@settings(max_examples=scaled(60), deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["new", "view", "drop"]), st.integers(0, 7),
                                st.sampled_from([8, 16, 24])), max_size=60),
       limit=st.integers(1, 6))
def test_live_arrays_never_share_memory_and_keep_their_values(steps, limit):
    memory.release()
    with mock.patch.object(memory, "MAX_BUFFERS", limit):
        check_sequence(steps)


def check_sequence(steps):
    live, values = [], []
    for n, (op, pick, size) in enumerate(steps):
        if op == "new" or not live:
            a = memory.empty((size,), np.float32)
            a[...] = n
            live.append(a)
            values.append(float(n))
        elif op == "view":
            k = pick % len(live)
            live.append(live[k][1:])
            values.append(values[k])
        else:
            k = pick % len(live)
            del live[k], values[k]
        for a, v in zip(live, values):
            assert (a == v).all()
        for i in range(len(live)):
            for j in range(i):
                if values[i] != values[j]:  # views of one array share it, and hold the same value
                    assert not np.shares_memory(live[i], live[j])


def test_threads_never_get_memory_another_holds():
    errors = []

    def work(k):
        for _ in range(scaled(300)):
            a = memory.empty((256,), np.float32)
            a[...] = k
            b = memory.empty((256,), np.float32)
            b[...] = -k
            if not ((a == k).all() and (b == -k).all()):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- through the layers and clipping functions that ask for their outputs here -------------


def steps(make, shape, calls=3):
    """``calls`` forward/backward pairs; every output held until the end, and a copy of it."""
    rng = np.random.default_rng(0)
    layer = make()
    held, copies = [], []
    for _ in range(calls):
        x = rng.standard_normal(shape).astype(np.float32)
        y = layer(x, training=True)
        dx = layer.backward(rng.standard_normal(shape).astype(np.float32))
        held += [y, dx]
        copies += [y.copy(), dx.copy()]
    return held, copies


@pytest.mark.skipif(not normalization_fast.sums_fast.available(), reason="numba is not installed: no compiled layers")
@pytest.mark.parametrize("make", [layers.BatchNormalization, layers.LayerNormalization,
                                  lambda: layers.Dropout(0.5, seed=3)], ids=["batch", "layer", "dropout"])
def test_layer_outputs_held_are_not_overwritten_and_bits_are_unchanged(make, monkeypatch):
    held, copies = steps(make, (300, 40))
    assert memory.held()[0] >= 2  # the outputs came from the pool
    for a, b in zip(held, copies):
        assert a.tobytes() == b.tobytes()
    monkeypatch.setenv("SCRATCHOPT_REUSE_OUTPUTS", "0")
    plain, _ = steps(make, (300, 40))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(held, plain))


@pytest.mark.skipif(not normalization_fast.sums_fast.available(), reason="numba is not installed: no compiled copy")
def test_clipped_copies_held_are_not_overwritten(monkeypatch):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(1 << 16).astype(np.float32) for _ in range(4)]
    first = clip_by_norm(grads[:1], 1.0)[0]
    first_global = clip_by_global_norm(grads, 1.0)
    snapshot = [first.copy()] + [g.copy() for g in first_global]
    again = clip_by_norm(grads[1:2], 1.0)[0], clip_by_global_norm(grads[::-1], 1.0)
    assert not first.flags.owndata and memory.held()[0] >= 5
    assert all(a.tobytes() == b.tobytes() for a, b in zip([first, *first_global], snapshot))
    monkeypatch.setenv("SCRATCHOPT_REUSE_OUTPUTS", "0")
    assert clip_by_norm(grads[1:2], 1.0)[0].tobytes() == again[0].tobytes()


@pytest.mark.parametrize(("call", "error", "names"), [
    (lambda: memory.empty((2.5, 3), np.float32), TypeError, "shape"),
    (lambda: memory.empty((4, -1), np.float32), ValueError, "shape"),
    (lambda: memory.empty(3, "no such dtype"), TypeError, "dtype"),
    (lambda: memory.empty_like([1.0, 2.0]), TypeError, "x must be a NumPy array"),
], ids=["float dimension", "negative dimension", "bad dtype", "not an array"])
def test_bad_input_is_a_clear_error_and_takes_nothing(call, error, names):
    with pytest.raises(error, match=names):
        call()
    assert memory.held() == (0, 0)
