"""``model.summary()``: the layer table Keras and torchinfo users know, with what ``freeze=``
would freeze.

One eval-mode forward of a zero batch records each layer's output shape (the module calls
already pass through ``Module.__call__``, which appends to a recorder when one is set);
parameter counts and trainable flags come from the parameters themselves. The result is a
:class:`ModelSummary`, whose ``str`` (and ``repr``, so a notebook shows it) is the table,
as torchinfo's; nothing is printed as a side effect.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import module as _module


@dataclass(frozen=True)
class LayerRow:
    """One layer of the table: its dotted path, type, output shape (None: not reached by the
    forward), parameter counts, and the stage it belongs to ("" if none, "head")."""

    name: str
    type: str
    output_shape: tuple | None
    params: int
    trainable_params: int
    stage: str = ""

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params


@dataclass(frozen=True)
class FreezeCut:
    """A boundary ``freeze=`` can put in the table: every row up to ``after`` (an index into
    ``rows``) is frozen by each of ``values`` (e.g. ``(3, "layer2", "bottom-half")``)."""

    after: int
    values: tuple


@dataclass
class ModelSummary:
    """What :meth:`weitiao.nn.Module.summary` measured; ``str(summary)`` is the table."""

    title: str
    input_size: tuple
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    param_bytes: int
    cuts: list[FreezeCut] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    def table(self) -> str:
        """The summary as text: one row per layer, the freeze boundaries as rule lines, and
        the totals."""
        staged = any(r.stage for r in self.rows)
        head = ["layer", "type", "output shape", "params", "trainable"] + \
            (["stage"] if staged else [])
        cells = [head] + [_cells(r, staged) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        right = {3}  # numbers right-aligned

        def line(c):
            return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                             for i, (v, w) in enumerate(zip(c, widths))).rstrip()

        width = len(line(["x" * w for w in widths]))
        cut_after = {c.after: c for c in self.cuts}
        out = [self.title, "=" * width, line(head), "-" * width]
        for i, c in enumerate(cells[1:]):
            out.append(line(c))
            if i in cut_after and i != len(self.rows) - 1:
                out.append(_rule(cut_after[i].values, width))
        out += ["=" * width,
                f"Total params: {self.total_params:,} ({_size(self.param_bytes)} as float32)",
                f"Trainable params: {self.trainable_params:,}",
                f"Frozen params: {self.frozen_params:,}"]
        return "\n".join(out + self.notes)

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__


def _cells(row: LayerRow, staged: bool) -> list[str]:
    shape = "-" if row.output_shape is None else str(tuple(row.output_shape))
    if not row.params:
        flag = ""
    elif row.trainable_params == row.params:
        flag = "yes"
    else:
        flag = "frozen" if not row.trainable_params else "partly"
    return [row.name or "(model)", row.type, shape, f"{row.params:,}", flag] + \
        ([row.stage] if staged else [])


def _rule(values: tuple, width: int) -> str:
    named = "freeze=" + " / ".join(repr(v) for v in values)
    if "bottom-half" in values:
        named += " (FineTuner's default)"
    text = f"-- {named} freezes the rows above "
    return text + "-" * max(width - len(text), 2)


def _size(n: int) -> str:
    """Bytes in the unit that reads best: 900 B, 875.00 KiB, 44.59 MiB."""
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.2f} KiB" if n < 2**20 else f"{n / 2**20:.2f} MiB"


def input_shape(input_size, in_channels: int | None) -> tuple[int, ...]:
    """(N, C, H, W) from an int (the side, batch 1), a (C, H, W) or an (N, C, H, W) size."""
    if isinstance(input_size, (int, np.integer)) and not isinstance(input_size, bool):
        if in_channels is None:
            raise TypeError("summary: an int input_size needs a model that knows its input "
                            "channels; give the full (N, C, H, W) size")
        return (1, in_channels, int(input_size), int(input_size))
    try:
        size = tuple(int(s) for s in input_size)
    except TypeError:
        raise TypeError(f"summary: input_size must be an int or a (C, H, W) or (N, C, H, W) "
                        f"tuple, got {input_size!r}") from None
    if len(size) == 3:
        size = (1,) + size
    if len(size) != 4 or min(size) < 1:
        raise ValueError(f"summary: input_size must be an int or a (C, H, W) or (N, C, H, W) "
                         f"tuple of positive sizes, got {input_size!r}")
    return size


def trace(model, shape: tuple) -> list:
    """[module, output shape] of every module call of one eval-mode forward of zeros of
    ``shape``, in call order; every module's mode is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    records: list = []
    model.eval()
    _module._call_state.recorder = records
    try:
        model(np.zeros(shape, dtype=np.float32))
    finally:
        _module._call_state.recorder = None
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    return records


def summarize(model, input_size, *, in_channels: int | None = None, title: str | None = None,
              cuts: list | None = None, head: tuple = ()) -> ModelSummary:
    """The summary of ``model`` for ``input_size``. ``cuts``: (freeze values, module paths
    they freeze) from the input up, as :func:`weitiao.finetune.freezing.freeze_cuts` lists
    them; ``head``: the paths marked "head" in the stage column."""
    shape = input_shape(input_size, in_channels)
    names = {id(m): n for n, m in model.named_modules()}
    records = trace(model, shape)
    called, order = {}, []
    for module, out in records:
        if id(module) not in called and (not module._modules or module._parameters):
            called[id(module)] = out
            order.append(module)
    order += [m for _, m in model.named_modules()
              if id(m) not in called and not m._modules and m is not model]
    cuts = cuts or []

    def covered(name: str, paths) -> bool:
        return any(name == p or name.startswith(p + ".") for p in paths)

    rows = []
    for module in order:
        name = names.get(id(module), "?")
        own = list(module._parameters.values())
        stage = next((values[1] for values, paths in cuts
                      if isinstance(values[0], int) and covered(name, paths)), "")
        if not stage and covered(name, head):
            stage = "head"
        rows.append(LayerRow(name, type(module).__name__, called.get(id(module)),
                             sum(p.size for p in own),
                             sum(p.size for p in own if p.requires_grad), stage))
    lines = []
    for values, paths in cuts:
        below = [i for i, r in enumerate(rows) if covered(r.name, paths)]
        if below:
            lines.append(FreezeCut(max(below), tuple(values)))
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.size for p in unique)
    trainable = sum(p.size for p in unique if p.requires_grad)
    return ModelSummary(f"{title or type(model).__name__}, input {shape}", shape, rows,
                        total, trainable, sum(p.data.nbytes for p in unique), lines)
