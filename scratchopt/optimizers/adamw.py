"""AdamW: Adam with weight decay taken out of the gradient ("decoupled")."""

from .adam import Adam


class AdamW(Adam):
    """``AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, ...)``.

    The rule is Adam's; the decay is the shared weight-decay step every optimizer has,
    run on the weights just before the Adam update::

        Textbook (Loshchilov & Hutter 2019)     Keras (this code)
        w = w - eta_t * (lr * adam_step + wd * w)   w = w - (w * wd) * lr      then the Adam step
        (eta_t: a schedule multiplier, lr separate)  (decay multiplied by the current lr)

    What the difference does: Keras multiplies the decay by the learning rate, as
    PyTorch does (``p *= 1 - lr * wd``), so with ``lr = 1e-3`` a ``weight_decay`` of
    0.004 shrinks weights by 4e-6 per step, not 0.004, and lowering the rate also
    lowers the decay. A Python float ``weight_decay`` reaches float64 weights through float32
    (Keras's ``ops.cast``; a NumPy float keeps its own precision).
    ``Adam(weight_decay=x)`` is the same optimizer; only the default (0.004) and the
    refusal of ``weight_decay=None`` are AdamW's own. Against PyTorch's AdamW
    (``python docs/textbook_gap.py``) the gap, 4.5e-4 in 200 steps, is Adam's epsilon-hat;
    the decay itself has the same form.

    Examples
    --------
    With a zero gradient Adam's step is exactly 0 (``m = v = 0``), so only the decay
    moves the weights: ``w = w - (w * 0.5) * 0.1``, 5% smaller.

    >>> import numpy as np
    >>> from scratchopt.optimizers import AdamW
    >>> w = np.array([2.0, -4.0])
    >>> opt = AdamW(learning_rate=0.1, weight_decay=0.5)
    >>> opt.apply([np.zeros(2)], [w])
    >>> np.round(w, 4)
    array([ 1.9, -3.8])
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="AdamW", **kwargs):
        if weight_decay is None:  # Keras's one check of its own
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                         gradient_accumulation_steps, name, **kwargs)
