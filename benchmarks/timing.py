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


def medians_in_turn(steps, repeats, rounds):
    """``{name: ms}`` for a dict of steps: the median over ``rounds`` rounds of each step's
    ``median_ms(step, repeats)``, the steps taken in turn within each round, so that a busy
    moment of the machine slows them all alike."""
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(median_ms(step, repeats))
    return {name: statistics.median(values) for name, values in times.items()}
