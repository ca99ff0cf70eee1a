"""Measure the float32 bounds of ``test_nn.py``: one training step of drawn networks, ours
against Keras's (oneDNN's FMA matmul), errors in float32 epsilons.

    python parity_tests/measure_nn_f32.py 300     # networks to draw (default 100)

Prints the largest loss error (epsilons of the loss) and the largest gradient error
(epsilons of each entry's term scale, ``test_nn.term_scales``), with the network that gave
it. The draws use ``test_nn.networks()`` with random seeds, as the test does.
"""

import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_nn
from scratchopt.tools.keras_reference import tensorflow


def main(count):
    tf = tensorflow()
    worst = {"loss": (0.0, None), "gradient": (0.0, None)}

    @settings(max_examples=count, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(net=test_nn.networks(), seed=st.integers(0, 2**16))
    def measure(net, seed):
        loss_error, ratios = test_nn.f32_errors(tf, net, seed)
        if loss_error > worst["loss"][0]:
            worst["loss"] = (loss_error, (net, seed))
        if max(ratios) > worst["gradient"][0]:
            worst["gradient"] = (max(ratios), (net, seed))

    measure()
    print(f"{count} networks: largest loss error {worst['loss'][0]:.3g} epsilons of the loss ({worst['loss'][1]})")
    print(f"largest gradient error {worst['gradient'][0]:.3g} epsilons of the term scale ({worst['gradient'][1]})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
