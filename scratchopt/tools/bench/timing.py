"""Timing: warm-up, repeats scaled to the step's own duration, medians and spread.

A measurement runs ``warmup`` untimed calls (first-call compilation, allocation, caches),
times one call, and from it chooses how many to time in all: enough to fill
``budget_s``, at least ``min_repeats``, at most ``max_repeats``. So a 5 µs step is
repeated many times and a 300 ms one a few times; every row says how many.

CPU steps are timed with ``time.perf_counter`` around each call. GPU steps are timed with
CUDA events recorded on the stream before and after the call, after a device
synchronisation, and the end event is waited for, so a row is the device time from the
first launch to the last kernel's end, host gaps included.
"""

import math
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plan:
    """How much to repeat: untimed ``warmup`` calls, then repeats filling ``budget_s``."""

    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 200
    budget_s: float = 0.5

    def repeats(self, first_s):
        wanted = math.ceil(self.budget_s / max(first_s, 1e-9))
        return max(self.min_repeats, min(self.max_repeats, wanted))


QUICK = Plan(warmup=1, min_repeats=3, max_repeats=25, budget_s=0.02)
FULL = Plan(warmup=2, min_repeats=5, max_repeats=200, budget_s=0.5)


def fixed(repeats, warmup=1):
    """A plan with exactly ``repeats`` timed calls."""
    return Plan(warmup=warmup, min_repeats=repeats, max_repeats=repeats, budget_s=0.0)


def perf_counter_timer(step):
    """One timed call of ``step`` on the host clock, in seconds."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def cupy_event_timer(cupy):
    """A timer for steps on CuPy arrays: CUDA events around the call, then synchronise."""
    start, end = cupy.cuda.Event(), cupy.cuda.Event()

    def timed(step):
        cupy.cuda.Device().synchronize()
        start.record()
        step()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / 1e3

    return timed


def torch_event_timer(torch):
    """The same with torch's CUDA events, for torch peers on the GPU."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def timed(step):
        torch.cuda.synchronize()
        start.record()
        step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timed


def measure(step, plan, timer=perf_counter_timer):
    """Seconds per call of ``step``: the list of timed calls, after ``plan.warmup`` untimed."""
    for _ in range(plan.warmup):
        step()
    times = [timer(step)]
    for _ in range(plan.repeats(times[0]) - 1):
        times.append(timer(step))
    return times


def summary(times):
    """Median, quartiles (the IQR is ``q3_s - q1_s``), min, max and count of ``times``."""
    t = np.asarray(times, dtype=np.float64)
    q1, median, q3 = np.percentile(t, [25, 50, 75])
    return {"median_s": float(median), "q1_s": float(q1), "q3_s": float(q3),
            "min_s": float(t.min()), "max_s": float(t.max()), "repeats": int(t.size)}
