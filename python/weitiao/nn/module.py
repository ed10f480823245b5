"""Parameter, Module and Sequential: the layer protocol every weitiao network follows.

There is no autograd graph. ``forward(x)`` keeps what ``backward`` needs (only in training
mode, and only where backward will reach), and ``backward(grad_out)`` adds into its
parameters' ``.grad`` and returns the gradient w.r.t. its input, or ``None`` when nothing
below needs it. Before the outermost call of a forward pass the module tree is *planned*:
each module learns whether its input needs a gradient, so frozen prefixes keep nothing and
backward stops below the lowest trainable layer.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Iterator

import numpy as np

_call_state = threading.local()


class Parameter:
    """A trainable float32 array and its gradient.

    ``data`` is C-contiguous float32; ``grad`` is ``None`` until a backward pass adds into
    it. ``requires_grad=False`` keeps the value fixed (no gradient, no update).

    >>> p = Parameter(np.zeros((2, 3)))
    >>> p.shape, p.grad is None
    ((2, 3), True)
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    def grad_buffer(self) -> np.ndarray:
        """The gradient array to accumulate into, created as zeros on first use."""
        if self.grad is None:
            self.grad = np.zeros_like(self.data)
        return self.grad

    def __repr__(self) -> str:
        flag = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}{flag})"


class Module:
    """Base class of layers and networks, with PyTorch's names for the common methods.

    Subclasses set parameters, buffers and child modules as attributes, and implement
    ``forward(x)`` and ``backward(grad_out)``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "frozen", False)
        object.__setattr__(self, "input_needs_grad", False)
        # None until planned: forward() called directly, outside any module call.
        object.__setattr__(self, "keeps_activations", None)

    # ------------------------------------------------------------------ attributes
    def __setattr__(self, name: str, value) -> None:
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = value
            return
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, (Parameter, Module)):
            self.__dict__.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        for table in ("_parameters", "_modules", "_buffers"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._modules, self._buffers):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: np.ndarray, persistent: bool = True) -> None:
        """Keep a non-trainable array (e.g. BatchNorm running statistics) in the state dict."""
        self.__dict__.pop(name, None)
        self._buffers[name] = value
        if not persistent:
            self._non_persistent.add(name)

    # ------------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def get_submodule(self, target: str) -> "Module":
        """The module at a dotted path such as ``"layer2.0.conv1"``."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise KeyError(f"{type(self).__name__} has no submodule {target!r} "
                               f"({part!r} not found)")
            module = module._modules[part]
        return module

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> "Module":
        """Training mode: BatchNorm uses batch statistics, Dropout drops, forward keeps
        what backward needs."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode: running statistics, no dropout, nothing kept for backward."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` of every parameter; backward then stops below the lowest
        module that still has a trainable parameter."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def freeze(self) -> "Module":
        """Freeze: no parameter gets a gradient, and every BatchNorm inside normalises with
        and keeps its running statistics even in training mode."""
        self.requires_grad_(False)
        for m in self.modules():
            object.__setattr__(m, "frozen", True)
        return self

    def unfreeze(self) -> "Module":
        """Undo :meth:`freeze`."""
        self.requires_grad_(True)
        for m in self.modules():
            object.__setattr__(m, "frozen", False)
        return self

    def reseed(self, seed: int) -> "Module":
        """Give every stochastic layer inside (dropout, drop-connect: modules holding a
        ``_rng`` generator) its own generator from (``seed``, its position), so training
        with one seed repeats bit for bit whatever generator the model was built with."""
        for i, m in enumerate(self.modules()):
            if isinstance(getattr(m, "_rng", None), np.random.Generator):
                object.__setattr__(m, "_rng", np.random.default_rng([int(seed), i]))
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (to ``None`` by default, as PyTorch)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.fill(0.0)

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters and persistent buffers by dotted name, as torchvision names them.
        The arrays are the module's own (not copies)."""
        state: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_name, mod in self.named_modules():
            dot = f"{mod_name}." if mod_name else ""
            for name, p in mod._parameters.items():
                state[dot + name] = p.data
            for name, b in mod._buffers.items():
                if name not in mod._non_persistent:
                    state[dot + name] = b
        return state

    def load_state_dict(self, state, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy arrays into this module's parameters and buffers by name.

        Shapes must match exactly. With ``strict`` (default) any missing or unexpected key
        is an error; otherwise they are returned as ``(missing, unexpected)``. Nothing is
        changed unless every check passes.
        """
        if isinstance(state, (str, bytes, os.PathLike)):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a state dict "
                            f"(name -> array), got the path {state!r}; read the file first: "
                            f"model.load_state_dict(weitiao.io.load_state_dict(path))")
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        mismatched = [f"{k}: expected {own[k].shape}, got {np.shape(state[k])}"
                      for k in own if k in state and np.shape(state[k]) != own[k].shape]
        wrong_kind = [f"{k}: expected {own[k].dtype} values, got {np.asarray(state[k]).dtype}"
                      for k in own if k in state and np.asarray(state[k]).size
                      and not np.can_cast(np.asarray(state[k]).dtype, own[k].dtype,
                                          "same_kind")]
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + _listed(mismatched, "; "))
        if wrong_kind:
            problems.append("dtype mismatch for " + _listed(wrong_kind, "; "))
        if strict and missing:
            problems.append("missing keys: " + _listed(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + _listed(unexpected))
        if problems and own and len(missing) == len(own):
            problems.append("none of the checkpoint's names is one of this model's: it holds "
                            "another architecture (or its names carry a prefix to strip)")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + ". ".join(problems))
        for k, target in own.items():
            if k in state:
                np.copyto(target, np.asarray(state[k]), casting="unsafe")
        return missing, unexpected

    # ------------------------------------------------------------------ calls
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x, *, input_grad: bool = False):
        """Run forward. At the outermost call the tree is planned first; ``input_grad=True``
        makes the following backward return the gradient w.r.t. x (like x.requires_grad in
        PyTorch), otherwise backward returns None once the parameters have their grads."""
        depth = getattr(_call_state, "depth", 0)
        if depth == 0:
            self.plan_backward(input_grad)
        recorder = getattr(_call_state, "recorder", None)
        if recorder is not None:
            record = [self, None]
            recorder.append(record)
        _call_state.depth = depth + 1
        try:
            y = self.forward(x)
        finally:
            _call_state.depth = depth
        if recorder is not None:
            record[1] = np.shape(y)
        return y

    def has_trainable_parameters(self) -> bool:
        """Whether any parameter of this module (not its children) requires a gradient."""
        return any(p.requires_grad for p in self._parameters.values())

    def plan_backward(self, input_needs_grad: bool) -> bool:
        """Decide what the next forward keeps: this module keeps activations in training
        mode when it has trainable parameters or its input needs a gradient. Returns
        whether its output needs a gradient. Containers override this to plan children."""
        trainable = self.has_trainable_parameters()
        object.__setattr__(self, "input_needs_grad", bool(input_needs_grad))
        object.__setattr__(self, "keeps_activations",
                           self.training and (trainable or input_needs_grad))
        return input_needs_grad or trainable

    def _check_saved(self, saved) -> None:
        """Raise an error saying why, and what to do, when backward finds nothing saved."""
        if saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward: nothing was saved by "
                               f"forward: {self._why_nothing_saved()}")

    def _why_nothing_saved(self) -> str:
        if self.keeps_activations is None:
            return called_directly(self)
        if not self.keeps_activations:
            if self.training and not (self.has_trainable_parameters() or self.input_needs_grad):
                return ("this layer has nothing to train and its input needs no gradient, so "
                        "its forward keeps nothing and a model's backward skips it; for the "
                        "gradient w.r.t. the input, call the outermost module with "
                        "input_grad=True: model(x, input_grad=True)")
            return ("the last forward ran in eval mode; call backward after a forward in "
                    "training mode (model.train(), then model(x))")
        return ("backward already ran for the last forward (it frees what forward kept), or "
                "no forward ran; call the module again, model(x), before each backward")

    # ------------------------------------------------------------------ display
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def summary(self, input_size=None):
        """A table of the layers, Keras's ``model.summary()`` and torchinfo's ``summary``:
        each leaf layer (dotted name) with its output shape from one eval-mode forward of a
        zero batch of ``input_size`` ((N, C, H, W) or (C, H, W); a model from
        ``weitiao.models`` defaults to its own input size and may take just the side), its
        parameter count and whether it trains, then total, trainable and frozen parameters
        and their memory. Models from ``weitiao.models`` also show where each ``freeze=``
        value of FineTuner cuts. Returns a :class:`weitiao.nn.summary.ModelSummary`: its
        ``str`` and ``repr`` are the table (``print(model.summary())``; the last line of a
        notebook cell shows it), its fields the numbers. The model is left as it was.

        >>> print(Sequential(Conv2d(3, 8, 3), ReLU()).summary((1, 3, 32, 32)))  # doctest: +SKIP
        """
        from .summary import summarize

        if input_size is None:
            raise TypeError(f"{type(self).__name__}.summary: give input_size, e.g. "
                            f"(1, 3, 224, 224): the layers' output shapes depend on it")
        return summarize(self, input_size)


def _listed(items: list[str], sep: str = ", ", limit: int = 12) -> str:
    """The first ``limit`` items, and how many more, so a wrong file gives a readable error."""
    shown = sep.join(items[:limit])
    return shown + (f"{sep}... ({len(items) - limit} more)" if len(items) > limit else "")


class Sequential(Module):
    """Children called in order; backward in reverse, stopping where nothing below needs
    a gradient.

    >>> net = Sequential(Conv2d(3, 8, 3), ReLU())  # doctest: +SKIP
    """

    def __init__(self, *modules: Module):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                setattr(self, name, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        return items[index]

    def __iter__(self):
        return iter(self._modules.values())

    def plan_backward(self, input_needs_grad: bool) -> bool:
        object.__setattr__(self, "input_needs_grad", bool(input_needs_grad))
        needs = plan_chain(self._modules.values(), input_needs_grad)
        object.__setattr__(self, "keeps_activations", self.training and needs)
        return needs

    def forward(self, x):
        mark_if_called_directly(self)
        return forward_chain(self._modules.values(), x)

    def backward(self, grad_out):
        check_planned(self)
        return backward_chain(self._modules.values(), grad_out)


def called_directly(module: Module) -> str:
    """Why nothing was kept when ``module.forward`` ran outside any module call."""
    name = type(module).__name__
    return (f"{name}.forward(x) was called directly (or not at all); call the module, "
            f"layer(x) or model(x), so it keeps what backward needs")


def mark_if_called_directly(module: Module) -> None:
    """Called first by a container's forward. Outside any module call (``model.forward(x)``
    rather than ``model(x)``) nothing was planned and each child plans alone, as if its
    input needed no gradient, so a backward would quietly stop early; mark the container
    unplanned so that its backward says so (see :func:`check_planned`)."""
    if not getattr(_call_state, "depth", 0):
        object.__setattr__(module, "keeps_activations", None)


def check_planned(module: Module) -> None:
    """Called first by a container's backward: refuse when its last forward was not planned."""
    if module.keeps_activations is None:
        raise RuntimeError(f"{type(module).__name__}.backward: nothing was planned for "
                           f"backward: {called_directly(module)}")


def plan_chain(modules, input_needs_grad: bool) -> bool:
    """Plan modules applied one after another; returns whether the last output needs a
    gradient."""
    needs = input_needs_grad
    for m in modules:
        needs = m.plan_backward(needs)
    return needs


def forward_chain(modules, x):
    """Modules applied one after another."""
    for m in modules:
        x = m(x)
    return x


def forward_planned(modules, x):
    """Modules already planned (by :func:`plan_chain`) applied one after another as inside
    a module call: nothing below replans or counts as called directly."""
    depth = getattr(_call_state, "depth", 0)
    _call_state.depth = depth + 1
    try:
        for m in modules:
            x = m.forward(x)
    finally:
        _call_state.depth = depth
    return x


def backward_chain(modules, grad_out):
    """Backward through modules applied one after another, last first, stopping as soon as
    one returns None (nothing below needs a gradient)."""
    grad = grad_out
    for m in reversed(list(modules)):
        if grad is None:
            break
        grad = m.backward(grad)
    return grad
