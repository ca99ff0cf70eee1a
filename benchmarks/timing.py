"""The one timing helper the benchmark scripts share."""

import statistics
import time


def median_ms(step, repeats):
    """Median wall time of ``step()`` in milliseconds, over ``repeats`` calls after one warm-up."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
