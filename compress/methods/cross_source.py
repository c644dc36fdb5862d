"""``cross-source``: stage 2 of Xiong et al. (JSTARS 2020 §III-B) — distil the source-1 network F into G.

G has F's architecture and starts from F's weights; its input layer is adapted to the second
source's band count; everything from ``freeze_from`` on (paper: Conv3–Conv5 = torchvision
``layer2``–``layer4``, plus the neck/head; ``auto`` picks the stage at output stride 8, which is ``layer2``
on ResNets and e.g. ``blocks.2`` on EfficientNets) is frozen, so only the low-level layers learn the new
source. Loss: ‖G(x_s2) − F(x_s1)‖² on PAIRED images (Eq. 5), F frozen. Batches are ``((x1, x2), y)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from compress.errors import UserInputError
from compress.losses.functional import feature_mse_loss
from compress.methods.base import METHODS, Method, StepOutput

INPUT_ADAPT = ("replicate", "average", "reinit")


def adapt_input_kernel(weight: torch.Tensor, in_chans: int, mode: str) -> torch.Tensor | None:
    """F's first-conv kernel ``[O, c1, k, k]`` → ``[O, in_chans, k, k]`` for G (None: keep G's fresh init).

    ``replicate``: band i of source 1 reads band ``i mod in_chans`` of source 2, so the kernels of
    the bands that share an input are summed — for a 1-band source this is exactly the paper's
    copying of the panchromatic band into every input channel; with more source-2 bands than
    source-1 bands, source-1 kernels are repeated cyclically and scaled by c1/in_chans.
    ``average``: every source-2 band gets the mean kernel scaled by c1/in_chans (same response to a
    flat grey input). ``reinit``: None.
    """
    if mode not in INPUT_ADAPT:
        raise UserInputError(f"input_adapt must be one of {', '.join(INPUT_ADAPT)}, got '{mode}'.")
    c1 = weight.shape[1]
    if mode == "reinit":
        return None
    if mode == "average":
        return weight.mean(dim=1, keepdim=True).repeat(1, in_chans, 1, 1) * (c1 / in_chans)
    if in_chans >= c1:
        reps = -(-in_chans // c1)
        return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (c1 / in_chans)
    out = torch.zeros(weight.shape[0], in_chans, *weight.shape[2:], dtype=weight.dtype, device=weight.device)
    for i in range(c1):
        out[:, i % in_chans] += weight[:, i]
    return out


def first_conv_name(model: nn.Module) -> str:
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            return name
    raise UserInputError(f"{type(model).__name__} has no Conv2d input layer to adapt.")


def backbone_stages(model: nn.Module) -> list[str]:
    """The backbone's stage paths: its children, with a container of blocks (timm's ``blocks``,
    torchvision's ``features``) opened one level, e.g. ``conv_stem, bn1, blocks.0, …, blocks.6, conv_head``."""
    root = getattr(model, "backbone", model)

    def holds_blocks(m: nn.Module) -> bool:
        kids = list(m.children())
        return isinstance(m, (nn.Sequential, nn.ModuleList)) and len(kids) > 1 and \
            all(len(list(k.children())) > 0 for k in kids)

    children = list(root.named_children())
    # one body container (timm's blocks) holds the stages; several (ResNet's layer1..4) are the stages
    body = [n for n, c in children if holds_blocks(c)]
    stages: list[str] = []
    for name, child in children:
        stages += [f"{name}.{g}" for g, _ in child.named_children()] if body == [name] else [name]
    return stages


def paper_freeze_point(model: nn.Module, size: int = 128) -> str:
    """Xiong et al. freeze Conv3–Conv5 (ResNet ``layer2`` on): the first stage whose output stride reaches 8
    (or half the backbone's final stride when it never does), found by one forward pass at ``size`` px."""
    root = getattr(model, "backbone", model)
    modules = dict(root.named_modules())
    strides: dict[str, int] = {}

    def recorder(name: str):
        def hook(_module, _inputs, out) -> None:  # returns None: the output is left as it is
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] > 1:  # not a global pool
                strides.setdefault(name, size // out.shape[-1])
        return hook

    hooks = [modules[n].register_forward_hook(recorder(n)) for n in backbone_stages(model)]
    conv = next((m for m in root.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise UserInputError(f"{type(root).__name__} has no Conv2d layer: pass freeze_from explicitly.")
    was_training = root.training
    try:
        root.eval()
        with torch.no_grad():
            root(torch.zeros(1, conv.in_channels, size, size, device=conv.weight.device))
    finally:
        root.train(was_training)
        for h in hooks:
            h.remove()
    if not strides:
        raise UserInputError(f"Cannot find the stages of {type(root).__name__}: pass freeze_from explicitly.")
    target = min(8, max(2, max(strides.values()) // 2))
    return next(n for n, st in strides.items() if st >= target)  # dict order = the order the stages ran


def frozen_modules(model: nn.Module, freeze_from: str) -> list[str]:
    """Module paths from ``backbone.<freeze_from>`` on, in registration order (the neck/head included);
    ``auto`` → :func:`paper_freeze_point`."""
    if freeze_from == "auto":
        freeze_from = paper_freeze_point(model)
    names = [n for n, _ in model.named_modules()]
    target = f"backbone.{freeze_from}" if hasattr(model, "backbone") else freeze_from
    if target not in names:
        raise UserInputError(f"freeze_from '{freeze_from}' is not a backbone module; choose one of "
                             f"{', '.join(backbone_stages(model)) or 'the backbone modules'}, or auto "
                             "(the first stage at output stride 8: layer2 for ResNets, as in the paper).")
    return names[names.index(target):]  # named_modules is depth-first: ancestors come before, never after


@dataclass(frozen=True)
class CrossSourceParams:
    input_adapt: str = "replicate"  # replicate | average | reinit
    freeze_from: str = "auto"  # paper: Conv3–Conv5 frozen = layer2..layer4; auto = the stride-8 stage
    init_from_teacher: bool = True
    # Eq. 5 sums ‖·‖² over the batch; batchmean divides by B (same direction, the LR absorbs B)
    reduction: str = "batchmean"  # batchmean | sum | mean

    def __post_init__(self) -> None:
        if self.input_adapt not in INPUT_ADAPT:
            raise UserInputError(f"input_adapt must be one of {', '.join(INPUT_ADAPT)}, got '{self.input_adapt}'.")


@METHODS.register("cross-source")
class CrossSourceDistillation(Method):
    """G(x_s2) regresses the frozen F(x_s1) embedding; only G's layers before ``freeze_from`` train."""

    requires_teacher = True
    Params: ClassVar[type] = CrossSourceParams

    def __init__(self, student, teacher=None, params: Any = None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        if teacher is None:
            raise UserInputError("cross-source needs the stage-1 network F as teacher (--teacher CKPT).")
        for who, m in (("teacher", teacher), ("student", student)):
            if not callable(getattr(m, "embed", None)):
                raise UserInputError(f"cross-source: the {who} must be an embedding model (embed-bnneck/embed-cosine).")
        if self.params.init_from_teacher:
            self._init_from(teacher)
        self.frozen = frozen_modules(student, self.params.freeze_from)
        frozen = set(self.frozen)
        for name, p in student.named_parameters():
            owner = name.rpartition(".")[0]
            if owner in frozen or owner == "":  # root-level parameters (prototypes) belong to the head
                p.requires_grad_(False)
        if not any(p.requires_grad for p in student.parameters()):
            raise UserInputError(f"freeze_from '{self.params.freeze_from}' leaves nothing to train in G.")

    def _init_from(self, teacher: nn.Module) -> None:
        t_state, s_state = teacher.state_dict(), self.student.state_dict()
        if set(t_state) != set(s_state):
            raise UserInputError("cross-source: G must have F's architecture to start from F's weights.")
        conv = first_conv_name(self.student) + ".weight"
        new = {}
        for k, v in t_state.items():
            if k == conv:
                adapted = adapt_input_kernel(v, s_state[k].shape[1], self.params.input_adapt)
                new[k] = s_state[k] if adapted is None else adapted
            elif v.shape != s_state[k].shape:
                raise UserInputError(f"cross-source: '{k}' is {tuple(v.shape)} in F but {tuple(s_state[k].shape)} in G.")
            else:
                new[k] = v
        self.student.load_state_dict(new)

    def train(self, mode: bool = True):  # noqa: D102 - frozen stages keep their BN statistics and dropout off
        super().train(mode)
        if mode:
            modules = dict(self.student.named_modules())
            for name in getattr(self, "frozen", ()):
                modules[name].eval()
        return self

    def training_step(self, images, targets: torch.Tensor) -> StepOutput:
        if not isinstance(images, (tuple, list)) or len(images) != 2:
            raise UserInputError("cross-source trains on paired batches ((x_source1, x_source2), y); "
                                 "use paired data (--source1 DIR --source2 DIR).")
        x1, x2 = images
        with torch.inference_mode():
            target = self.teacher.embed(x1)
        target = target.clone().float()
        loss = feature_mse_loss(self.student.embed(x2).float(), target, reduction=self.params.reduction)
        return StepOutput(losses={"mse": loss})

    def evaluate(self, dataset, class_names, device, amp=None):
        """Score: mean of the two cross-source mAPs (s1→s2, s2→s1) within ``dataset`` (paired)."""
        from compress.evaluation.embedding import embed_dataset
        from compress.metrics.retrieval import retrieval_report

        e1, y, _ = embed_dataset(self.teacher, dataset, device, amp=amp, part=0)
        e2, _, _ = embed_dataset(self.student, dataset, device, amp=amp, part=1)
        ks = tuple(k for k in (1, 5, 10, 20) if k <= len(y)) or (1,)
        a = retrieval_report(e1, y, e2, y, ks=ks, exclude_self=False)
        b = retrieval_report(e2, y, e1, y, ks=ks, exclude_self=False)
        score = (a.map + b.map) / 2
        out = {"map": score, "map_s1_to_s2": a.map, "map_s2_to_s1": b.map, "mse": float(((e1 - e2) ** 2).sum(1).mean())}
        return score, out, out
