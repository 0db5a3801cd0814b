"""What a network costs: parameters and FLOPs, counted as the papers count them.

- Parameters: the trainable ones, an auxiliary head excluded (DARTS
  ``utils.count_parameters_in_MB``).
- FLOPs: the multiply-adds of convolutions and linear layers for one input
  image, the convention of NAS papers' "FLOPs" columns (NAS-Bench-Macro's
  table, which a test checks against); pooling, batch norm and activations
  are not counted.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_parameters", "count_flops", "choice_costs"]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters as the papers count them: an auxiliary head excluded."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name and p.requires_grad)


def _macs(module, inputs, output) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output[0].numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


def _counting(modules, totals: dict, key_of):
    """Forward hooks adding each convolution's or linear layer's multiply-adds
    (of the first sample of the batch) to ``totals[key_of(module)]``."""
    handles = []
    for owner, module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                def hook(m, i, o, owner=owner):
                    totals[key_of(owner)] = totals.get(key_of(owner), 0) + _macs(m, i, o)
                handles.append(m.register_forward_hook(hook))
    return handles


def count_flops(model: nn.Module, *inputs) -> int:
    """Multiply-adds of `model`'s convolutions and linear layers for one sample
    of `inputs` (e.g. ``torch.zeros(1, 3, 32, 32)``)."""
    totals = {}
    handles = _counting([(None, model)], totals, lambda owner: "all")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(totals.get("all", 0))


def choice_costs(space, num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> dict:
    """``{"params": {table: [rows, options]}, "flops": {...}}``: the cost of each
    option of each row of `space`, measured on its supernet (whose
    `choices()` yields ``(table, row, option, module)``) and summed over the
    cells that share a row. One forward pass of the uniform mixture gives
    every option's FLOPs at the resolution it runs at."""
    supernet = space.supernet(num_classes, in_channels)
    shapes = space.shapes()
    params = {k: torch.zeros(shape, dtype=torch.float64) for k, shape in shapes.items()}
    flops = {k: torch.zeros(shape, dtype=torch.float64) for k, shape in shapes.items()}
    choices = list(supernet.choices())
    for table, row, option, module in choices:
        params[table][row, option] += sum(p.numel() for p in module.parameters())
    totals = {}
    handles = _counting([((t, r, o), m) for t, r, o, m in choices], totals, lambda owner: owner)
    uniform = {k: t.probabilities for k, t in space.tables().items()}
    try:
        with torch.no_grad():
            supernet.eval()
            supernet(torch.zeros(1, in_channels, image_size, image_size),
                     {k: torch.as_tensor(P, dtype=torch.float32) for k, P in uniform.items()})
    finally:
        for h in handles:
            h.remove()
    for (table, row, option), value in totals.items():
        flops[table][row, option] += value
    return {"params": params, "flops": flops}
