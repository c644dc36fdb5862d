"""Finding the well-known parts of any classifier: its head, its first conv, its stage outputs, its
pooled features. Works on timm, torchvision and our small nets without rewriting them."""
from __future__ import annotations

import torch
from torch import nn

from compress.errors import UserInputError


def _path_of(model: nn.Module, target: nn.Module) -> str | None:
    for path, mod in model.named_modules():
        if mod is target:
            return path
    return None


def classifier_module(model: nn.Module) -> tuple[str, nn.Module]:
    """``(path, module)`` of the layer producing the logits.

    timm: ``get_classifier()``; otherwise a top-level ``fc``/``classifier`` Linear, else the last
    ``nn.Linear`` registered (torchvision ``classifier.N``).
    """
    get = getattr(model, "get_classifier", None)
    if callable(get):
        head = get()
        path = _path_of(model, head) if isinstance(head, nn.Module) else None
        if path:
            return path, head
    for attr in ("fc", "classifier", "head"):
        mod = getattr(model, attr, None)
        if isinstance(mod, nn.Linear):
            return attr, mod
    last: tuple[str, nn.Module] | None = None
    for path, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = (path, mod)
    if last is None:
        raise UserInputError(f"Cannot find the classifier of {type(model).__name__}: it has no nn.Linear layer.")
    return last


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, new)


def replace_classifier(model: nn.Module, num_classes: int) -> str:
    """Swap the logits Linear for a freshly initialised one with ``num_classes`` outputs; returns its path."""
    path, head = classifier_module(model)
    if not isinstance(head, nn.Linear):
        raise UserInputError(f"Cannot replace the head of {type(model).__name__}: '{path}' is not nn.Linear.")
    new = nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
    set_module(model, path, new.to(head.weight.device, head.weight.dtype))
    return path


def adapt_conv_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """RGB conv kernel ``[O, 3, k, k]`` → ``[O, in_chans, k, k]`` keeping the response scale (as timm).

    1 band: sum over RGB; more bands: repeat RGB cyclically and scale by 3/in_chans.
    """
    src = weight.shape[1]
    if in_chans == src:
        return weight.clone()
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // src)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (src / in_chans)


def replace_first_conv(model: nn.Module, in_chans: int) -> str:
    """Give the first Conv2d ``in_chans`` input bands, adapting its current weights; returns its path."""
    for path, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1:
                break
            new = nn.Conv2d(in_chans, mod.out_channels, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                            1, mod.bias is not None, mod.padding_mode)
            with torch.no_grad():
                new.weight.copy_(adapt_conv_weight(mod.weight, in_chans))
                if mod.bias is not None:
                    new.bias.copy_(mod.bias)
            set_module(model, path, new.to(mod.weight.device, mod.weight.dtype))
            return path
    raise UserInputError(f"Cannot set in_chans={in_chans} on {type(model).__name__}: no plain first Conv2d found.")


def input_channels(model: nn.Module) -> int:
    """Bands the model takes (``in_channels`` of its first conv; 3 if it has none)."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            return mod.in_channels
    return 3


def default_feature_layers(model: nn.Module, image_size: int = 128) -> list[str]:
    """Module paths of stage outputs (stride ≥ 4) for feature distillation (AT, FitNet, SP...).

    Order: the model's own ``feature_layers``; ResNet ``layer1..layer4``; timm ``feature_info``;
    else a dry forward on a ``image_size`` dummy input keeping the last module of each resolution.
    """
    own = getattr(model, "feature_layers", None)
    if own:
        return list(own)
    if all(isinstance(getattr(model, f"layer{i}", None), nn.Module) for i in (1, 2, 3, 4)):
        return ["layer1", "layer2", "layer3", "layer4"]
    info = getattr(model, "feature_info", None)
    if info is not None:
        try:
            paths = [f["module"] for f in info if f.get("reduction", 1) >= 4]
        except (TypeError, AttributeError, KeyError):
            paths = []
        modules = dict(model.named_modules())
        if paths and all(p in modules for p in paths):
            return list(dict.fromkeys(paths))
    return _stage_outputs_by_probe(model, image_size)


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    # Top-level children, with the children of Sequential/ModuleList bodies (``features.N``, ``blocks.N``).
    out: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            out += [(f"{name}.{sub}", m) for sub, m in child.named_children()]
        else:
            out.append((name, child))
    return out


def _stage_outputs_by_probe(model: nn.Module, image_size: int) -> list[str]:
    cands = _candidates(model)  # the head's outputs are 2-D, so only feature maps are kept below
    shapes: dict[str, tuple[int, int]] = {}
    order: list[str] = []

    def hook(path: str):
        def fn(_m: nn.Module, _i: object, out: object) -> None:
            # 1×1 maps are global pools, not stages
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1 \
                    and path not in shapes:
                shapes[path] = (int(out.shape[-2]), int(out.shape[-1]))
                order.append(path)
        return fn

    handles = [m.register_forward_hook(hook(p)) for p, m in cands]
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(1, input_channels(model), image_size, image_size,
                    device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None else None)
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    stages: dict[tuple[int, int], str] = {}
    for path in order:
        if shapes[path][0] * 4 <= image_size:  # stride ≥ 4: the stem's large maps are too costly to match
            stages[shapes[path]] = path  # later modules at the same resolution win
    if not stages:
        raise UserInputError(f"Found no stage outputs in {type(model).__name__}; pass feature layer paths explicitly.")
    return list(stages.values())


def forward_with_pooled(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass → ``(logits [B, C], pooled pre-logits features [B, D])`` (the classifier's input)."""
    _, head = classifier_module(model)
    box: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, inp: box.append(inp[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not box:
        raise UserInputError(f"The classifier of {type(model).__name__} was not called in forward().")
    return logits, torch.flatten(box[-1], 1)


def forward_features_pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features ``[B, D]`` (timm ``forward_head(pre_logits=True)``; else the head's input)."""
    if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):
        return torch.flatten(model.forward_head(model.forward_features(x), pre_logits=True), 1)
    return forward_with_pooled(model, x)[1]
