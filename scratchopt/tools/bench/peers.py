"""The peers timed in the same run, when installed: Keras, TensorFlow's raw ops, PyTorch.

=============  ==========================================================================
peer           what is timed
=============  ==========================================================================
keras-eager    optimizers: ``optimizer.apply([grad], [keras.Variable])``; layers: the Keras
               layer called with ``training=True`` under a ``tf.GradientTape``, and its
               gradient for ``x`` and the weights with ``output_gradients=dy``
tf-raw-op      TensorFlow's fused C++ kernels: ``ResourceApplyGradientDescent``,
               ``ResourceApplyKerasMomentum``, ``ResourceApplyAdam`` (AdamW: TF has no fused
               AdamW, so the decay runs first as a multiply and ``AssignSubVariableOp``),
               ``ResourceApplyRMSProp`` and ``ResourceApplyCenteredRMSProp`` (both also
               update a momentum slot, even at momentum 0), ``FusedBatchNormV3`` +
               ``FusedBatchNormGradV3`` for BatchNormalization
tf-eager       clipping: ``tf.clip_by_norm`` per tensor, ``tf.clip_by_global_norm``
torch-foreach  ``torch.optim.*(foreach=True).step()``; clipping:
               ``torch.nn.utils.clip_grad_norm_(foreach=True)`` (in place)
torch-fused    ``torch.optim.*(fused=True).step()`` where torch has it (not RMSprop)
torch-eager    layers: ``torch.nn.functional.batch_norm / layer_norm / dropout`` and
               ``torch.autograd.grad`` with ``dy``
=============  ==========================================================================

Hyper-parameters are the components' (lr, momentum 0.9, betas, epsilon 1e-7, rho 0.9,
weight decay 0.004, dropout 0.5, epsilon 1e-3 for the norms): the work per element is the
same, the last bits are not (each framework has its own formula; see the optimizer files).
TensorFlow runs with its default thread pools (all cores); it and Keras are measured on
the CPU only. torch runs on the CPU and, when it sees CUDA, on the GPU (CUDA events).
"""

import contextlib
import importlib.util
import os

import numpy as np

from .components import optimizer_tensors
from .ours import Unavailable

PEERS = ("keras-eager", "tf-raw-op", "tf-eager", "torch-foreach", "torch-fused", "torch-eager")


def applies(peer, component):
    """Whether ``peer`` has a counterpart of ``component`` at all."""
    family = component.family
    return {
        "keras-eager": family in ("optimizer", "layer"),
        "tf-raw-op": component.name in _RAW_OPS,
        "tf-eager": family == "clipping",
        "torch-foreach": family in ("optimizer", "clipping"),
        "torch-fused": family == "optimizer",
        "torch-eager": family == "layer",
    }[peer]


#: The components with a TF raw op (``tf.raw_ops.ResourceApply*``, ``FusedBatchNormV3``).
_RAW_OPS = ("sgd", "sgd_momentum", "adam", "adamw", "adam_1000", "rmsprop", "rmsprop_centered", "adamax",
            "adagrad", "adadelta", "ftrl", "batchnorm")


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def status(device):
    """``{peer: (available, reason)}`` on ``device`` ("cpu" or "gpu"); imports nothing heavy
    except torch, when installed, to ask whether it sees CUDA."""
    result = {}
    tf_ok = _installed("tensorflow")
    keras_ok = _installed("keras")
    tf_missing = None if tf_ok else "TensorFlow is not installed (pip install \"scratchopt[parity]\")"
    for peer in ("keras-eager", "tf-raw-op", "tf-eager"):
        if device == "gpu":
            result[peer] = (False, "TensorFlow and Keras are measured on the CPU only")
        elif peer == "keras-eager" and tf_ok and not keras_ok:
            result[peer] = (False, "Keras is not installed (pip install \"scratchopt[parity]\")")
        else:
            result[peer] = (tf_ok, tf_missing)
    torch_why = None
    if not _installed("torch"):
        torch_why = "torch is not installed (pip install \"scratchopt[torch]\")"
    elif device == "gpu":
        try:
            import torch

            if not torch.cuda.is_available():
                torch_why = "torch is installed without CUDA, or sees no CUDA device"
        except Exception as error:  # noqa: BLE001 (a broken install: say so)
            torch_why = f"torch does not import: {error}"
    for peer in ("torch-foreach", "torch-fused", "torch-eager"):
        result[peer] = (torch_why is None, torch_why)
    return result


# --- TensorFlow and Keras -------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (TF's C++ start-up chatter) for the duration."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tensorflow():
    """TensorFlow, imported quietly (its thread pools left at their defaults)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _quiet_stderr():
        import tensorflow as tf
    return tf


def tf_threads():
    """TF's intra-op threads (0: its default, all cores), when TF is imported; else None."""
    import sys

    if "tensorflow" not in sys.modules:
        return None
    return sys.modules["tensorflow"].config.threading.get_intra_op_parallelism_threads()


def _keras():
    tensorflow()
    with _quiet_stderr():
        import keras
    if keras.backend.backend() != "tensorflow":
        raise Unavailable(f"Keras runs on {keras.backend.backend()}, not TensorFlow")
    return keras


def build(peer, component, data, device):
    """``(step, method, timer_kind)`` for ``peer``; ``timer_kind`` "torch" for torch on a GPU."""
    if peer in ("keras-eager", "tf-raw-op", "tf-eager"):
        build_tf = {"keras-eager": _keras_eager, "tf-raw-op": _tf_raw_op, "tf-eager": _tf_eager}[peer]
        step, method = build_tf(component, data)
        return step, method, None
    step, method = _torch(peer, component, data, device)
    return step, method, "torch" if device == "gpu" else None


def _optimizer_kwargs(component):
    return dict(component.optimizer[1])


def _keras_eager(component, data):
    tf, keras = tensorflow(), _keras()
    if component.family == "optimizer":
        name, kwargs = component.optimizer[0], _optimizer_kwargs(component)
        if "inner_optimizer" in kwargs:  # LossScaleOptimizer
            inner, inner_kwargs = kwargs["inner_optimizer"]
            kwargs["inner_optimizer"] = getattr(keras.optimizers, inner)(**inner_kwargs)
        opt = getattr(keras.optimizers, name)(**kwargs)
        variables = [keras.Variable(w) for w in optimizer_tensors(component, data["w"])]
        grads = [tf.constant(g) for g in optimizer_tensors(component, data["g"])]
        opt.apply(grads, variables)  # builds the slots
        return (lambda: opt.apply(grads, variables)), f"keras.optimizers.{name}.apply"
    layer = {"batchnorm": lambda: keras.layers.BatchNormalization(),
             "layernorm": lambda: keras.layers.LayerNormalization(),
             "dropout": lambda: keras.layers.Dropout(0.5, seed=0)}[component.name]()
    x, dy = tf.constant(data["x"]), tf.constant(data["dy"])

    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x] + layer.trainable_variables, output_gradients=dy)

    return step, f"keras.layers.{type(layer).__name__} + GradientTape"


def _tf_raw_op(component, data):
    tf = tensorflow()
    if component.name == "batchnorm":
        raw = tf.raw_ops
        rows, channels = data["x"].shape
        x = tf.constant(data["x"].reshape(rows, 1, 1, channels))
        dy = tf.constant(data["dy"].reshape(rows, 1, 1, channels))
        scale, offset = tf.ones(channels), tf.zeros(channels)
        empty = tf.constant([], tf.float32)

        def step():
            _, _, _, r1, r2, r3 = raw.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=1e-3,
                data_format="NHWC", is_training=True)
            return raw.FusedBatchNormGradV3(
                y_backprop=dy, x=x, scale=scale, reserve_space_1=r1, reserve_space_2=r2,
                reserve_space_3=r3, epsilon=1e-3, data_format="NHWC", is_training=True)

        return step, "FusedBatchNormV3 + FusedBatchNormGradV3"

    def c(value):
        return tf.constant(value, tf.float32)

    kw = _optimizer_kwargs(component)
    steps, method = [], None
    for w, g in zip(optimizer_tensors(component, data["w"]), optimizer_tensors(component, data["g"])):
        step, method = _tf_apply(tf, component.name, kw, c, tf.Variable(w), tf.constant(g))
        steps.append(step)
    if len(steps) == 1:
        return steps[0], method

    def all_tensors():
        for step in steps:
            step()

    return all_tensors, f"{method}, once per tensor"


def _tf_apply(tf, name, kw, c, var, grad):
    """One tensor's raw-op step for optimizer ``name`` with hyper-parameters ``kw``."""
    raw = tf.raw_ops
    lr = c(kw["learning_rate"])

    def slot():
        return tf.Variable(tf.zeros(var.shape, tf.float32))

    if name == "sgd":
        return (lambda: raw.ResourceApplyGradientDescent(var=var.handle, alpha=lr, delta=grad),
                "ResourceApplyGradientDescent")
    if name == "sgd_momentum":
        accum = slot()
        return (lambda: raw.ResourceApplyKerasMomentum(var=var.handle, accum=accum.handle, lr=lr, grad=grad,
                                                       momentum=c(kw["momentum"]), use_nesterov=False),
                "ResourceApplyKerasMomentum")
    if name in ("adam", "adam_1000", "adamw"):
        m, v = slot(), slot()
        b1, b2, eps = c(0.9), c(0.999), c(1e-7)

        def adam():
            return raw.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1,
                                         beta2_power=b2, lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=grad)

        if name != "adamw":
            return adam, "ResourceApplyAdam"
        decay = c(kw["weight_decay"] * kw["learning_rate"])

        def adamw():
            raw.AssignSubVariableOp(resource=var.handle, value=var * decay)
            return adam()

        return adamw, "w*wd*lr + AssignSubVariableOp, then ResourceApplyAdam (no fused AdamW in TF)"
    if name == "adamax":
        m, u = slot(), slot()
        b1 = c(0.9)
        return (lambda: raw.ResourceApplyAdaMax(var=var.handle, m=m.handle, v=u.handle, beta1_power=b1, lr=lr,
                                                beta1=b1, beta2=c(0.999), epsilon=c(1e-7), grad=grad),
                "ResourceApplyAdaMax")
    if name == "adagrad":
        accum = tf.Variable(tf.fill(var.shape, 0.1))
        return (lambda: raw.ResourceApplyAdagradV2(var=var.handle, accum=accum.handle, lr=lr, epsilon=c(1e-7),
                                                   grad=grad),
                "ResourceApplyAdagradV2")
    if name == "adadelta":
        accum, update = slot(), slot()
        return (lambda: raw.ResourceApplyAdadelta(var=var.handle, accum=accum.handle, accum_update=update.handle,
                                                  lr=lr, rho=c(0.95), epsilon=c(1e-7), grad=grad),
                "ResourceApplyAdadelta")
    if name == "ftrl":
        accum, linear = tf.Variable(tf.fill(var.shape, 0.1)), slot()
        return (lambda: raw.ResourceApplyFtrlV2(var=var.handle, accum=accum.handle, linear=linear.handle, grad=grad,
                                                lr=lr, l1=c(0.0), l2=c(0.0), l2_shrinkage=c(0.0), lr_power=c(-0.5)),
                "ResourceApplyFtrlV2")
    ms, mom = slot(), slot()
    rho, momentum, eps = c(0.9), c(0.0), c(1e-7)
    if name == "rmsprop":
        return (lambda: raw.ResourceApplyRMSProp(var=var.handle, ms=ms.handle, mom=mom.handle, lr=lr,
                                                 rho=rho, momentum=momentum, epsilon=eps, grad=grad),
                "ResourceApplyRMSProp (also updates a momentum slot)")
    mg = slot()
    return (lambda: raw.ResourceApplyCenteredRMSProp(var=var.handle, mg=mg.handle, ms=ms.handle,
                                                     mom=mom.handle, lr=lr, rho=rho, momentum=momentum,
                                                     epsilon=eps, grad=grad),
            "ResourceApplyCenteredRMSProp (also updates a momentum slot)")


def _tf_eager(component, data):
    tf = tensorflow()
    grads = [tf.constant(g) for g in data["grads"]]
    if component.name == "clip_norm":
        return (lambda: [tf.clip_by_norm(g, 1.0) for g in grads]), "tf.clip_by_norm"
    return (lambda: tf.clip_by_global_norm(grads, 1.0)), "tf.clip_by_global_norm"


# --- PyTorch ----------------------------------------------------------------------------------

#: Where torch.optim has no counterpart: the reason, shown as the row's note.
_NOT_IN_TORCH = {
    "ftrl": "torch.optim has no FTRL",
    "lion": "torch.optim has no Lion (pytorch#94904)",
    "lamb": "torch.optim has no LAMB (pytorch#94904)",
    "schedule_free_adamw": "torch.optim has no schedule-free AdamW (it is in the schedulefree package)",
    "loss_scale_adam": "torch scales losses with torch.amp.GradScaler, not an optimizer",
}

_TORCH_OPTIMIZERS = {
    "nadam": ("NAdam", {"lr": 1e-3, "eps": 1e-7}),
    "adamax": ("Adamax", {"lr": 1e-3, "eps": 1e-7}),
    "adagrad": ("Adagrad", {"lr": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-7}),
    "adadelta": ("Adadelta", {"lr": 1.0, "rho": 0.95, "eps": 1e-7}),
    "adafactor": ("Adafactor", {}),
    "adafactor_2d": ("Adafactor", {}),
    "sgd": ("SGD", {"lr": 0.01}),
    "sgd_momentum": ("SGD", {"lr": 0.01, "momentum": 0.9}),
    "adam": ("Adam", {"lr": 1e-3, "eps": 1e-7}),
    "adamw": ("AdamW", {"lr": 1e-3, "eps": 1e-7, "weight_decay": 0.004}),
    "rmsprop": ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
    "rmsprop_centered": ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7, "centered": True}),
}


def _torch(peer, component, data, device):
    import torch

    def tensor(a):  # a private torch copy of a NumPy or CuPy array, on the same device
        if isinstance(a, np.ndarray):
            return torch.from_numpy(a).clone()
        return torch.from_dlpack(a).clone()

    if component.family == "optimizer":
        if component.name in _NOT_IN_TORCH:
            raise Unavailable(_NOT_IN_TORCH[component.name])
        clipped = "global_clipnorm" in component.optimizer[1]
        name, kwargs = _TORCH_OPTIMIZERS["adam" if component.name in ("adam_1000", "adam_global_clip",
                                                                     "adam_1000_global_clip")
                                         else component.name]
        params = []
        for w, g in zip(optimizer_tensors(component, data["w"]), optimizer_tensors(component, data["g"])):
            p = torch.nn.Parameter(tensor(w))
            p.grad = tensor(g)
            params.append(p)
        flag = "fused" if peer == "torch-fused" else "foreach"
        try:
            opt = getattr(torch.optim, name)(params, **kwargs, **{flag: True})
            opt.step()  # makes the state; fails here where torch has no such kernel
        except (RuntimeError, TypeError, ValueError) as error:
            raise Unavailable(f"torch.optim.{name}({flag}=True): {str(error).splitlines()[0][:120]}") from None
        if clipped:  # torch's optimizers do not clip: clip_grad_norm_ first, as a training loop does

            def clip_and_step():
                torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
                opt.step()

            return clip_and_step, f"clip_grad_norm_(foreach=True) + torch.optim.{name}({flag}=True).step"
        return opt.step, f"torch.optim.{name}({flag}=True).step"
    if component.family == "clipping":
        params = []
        for g in data["grads"]:
            p = torch.nn.Parameter(torch.zeros_like(tensor(g)))
            p.grad = tensor(g)
            params.append(p)

        def clip(foreach=True):
            return torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=foreach)

        try:
            clip()
        except RuntimeError as error:  # torch has foreach kernels for CUDA only in some versions
            return (lambda: clip(None)), (f"torch.nn.utils.clip_grad_norm_ (default path: foreach=True "
                                          f"failed: {str(error).splitlines()[0][:80]})")
        return clip, "torch.nn.utils.clip_grad_norm_(foreach=True)"
    functional = torch.nn.functional
    x = tensor(data["x"]).requires_grad_(True)
    dy = tensor(data["dy"])
    channels = x.shape[1]
    weight = torch.ones(channels, device=x.device, requires_grad=True)
    bias = torch.zeros(channels, device=x.device, requires_grad=True)
    running_mean = torch.zeros(channels, device=x.device)
    running_var = torch.ones(channels, device=x.device)
    forward, inputs = {
        "batchnorm": (lambda: functional.batch_norm(x, running_mean, running_var, weight, bias, training=True,
                                                    momentum=0.01, eps=1e-3), (x, weight, bias)),
        "layernorm": (lambda: functional.layer_norm(x, (channels,), weight, bias, eps=1e-3), (x, weight, bias)),
        "dropout": (lambda: functional.dropout(x, 0.5, training=True), (x,)),
    }[component.name]

    def step():
        return torch.autograd.grad(forward(), inputs, dy)

    return step, f"torch.nn.functional.{component.name.replace('norm', '_norm')} + autograd.grad"
