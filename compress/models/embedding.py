"""Embedding models for retrieval: a BN-neck net (Xiong et al. JOC) and a cosine-prototype net (Kang et al.
HR-S²DML). Both wrap any classifier of the zoo as backbone (its logits layer removed), return class
logits from ``forward`` (so classification evaluation and export work unchanged) and the retrieval
embedding from ``embed``.

Registered as ``embed-bnneck`` and ``embed-cosine``; the backbone name is a model kwarg, so a
checkpoint rebuilds from ``Manifest.architecture`` + ``model_kwargs``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import UserInputError
from compress.models.factory import register_model

NECK_EMBEDDINGS = ("pre-bn", "post-bn")


def headless_backbone(name: str, in_chans: int, pretrained: bool = False,
                      weights: str | None = None) -> tuple[nn.Module, int]:
    """A zoo model with its logits Linear replaced by ``Identity``: ``[B, C, H, W]`` → pooled ``[B, d]``; and d."""
    from compress.models.factory import create_model
    from compress.models.introspect import set_module, classifier_module

    if name.startswith("embed-"):
        raise UserInputError(f"backbone '{name}' is itself an embedding model; pass a classifier such as resnet18.")
    model = create_model(name, num_classes=1, in_chans=in_chans, pretrained=pretrained, weights=weights)
    path, head = classifier_module(model)
    if not isinstance(head, nn.Linear):
        raise UserInputError(f"Cannot use '{name}' as a backbone: its head '{path}' is not an nn.Linear.")
    set_module(model, path, nn.Identity())
    return model, int(head.in_features)


class BNNeckNet(nn.Module):
    """backbone → pooled F_t ``[B, d]`` → BatchNorm1d → F_i → Linear → logits ``[B, C]`` (Xiong et al. Fig. 4).

    Triplet and center losses see F_t, the softmax sees the classifier on F_i. ``embedding`` picks
    what ``embed`` returns: ``pre-bn`` (F_t, default — the feature the Euclidean losses shaped) or
    ``post-bn`` (F_i).
    """

    def __init__(self, num_classes: int, in_chans: int = 3, backbone: str = "resnet18", embedding: str = "pre-bn",
                 classifier_bias: bool = True, pretrained: bool = False, backbone_weights: str | None = None) -> None:
        super().__init__()
        if embedding not in NECK_EMBEDDINGS:
            raise UserInputError(f"embedding must be one of {', '.join(NECK_EMBEDDINGS)}, got '{embedding}'.")
        self.backbone, dim = headless_backbone(backbone, in_chans, pretrained, backbone_weights)
        self.neck = nn.BatchNorm1d(dim)
        self.classifier = nn.Linear(dim, num_classes, bias=classifier_bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)
        if classifier_bias:
            nn.init.zeros_(self.classifier.bias)
        self.embedding, self.embedding_dim, self.backbone_name = embedding, dim, backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """F_t ``[B, d]``: the backbone's pooled features."""
        return torch.flatten(self.backbone(x), 1)

    def neck_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F_t [B, d], logits [B, C])`` from one forward pass."""
        f_t = self.features(x)
        return f_t, self.classifier(self.neck(f_t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck_outputs(x)[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The retrieval embedding ``[B, d]`` (F_t or F_i, see ``embedding``)."""
        f_t = self.features(x)
        return f_t if self.embedding == "pre-bn" else self.neck(f_t)


class CosineEmbeddingNet(nn.Module):
    """backbone → Linear(d, D) → L2-normalised embedding f ``[B, D]``; normalised class prototypes W ``[C, D]``.

    ``forward`` returns ``cos(f, w_c) / τ`` (Kang et al. Eq. 2/6 with normalised weights); the margin
    of Eq. 3 is applied by the loss, which needs the labels.
    """

    def __init__(self, num_classes: int, in_chans: int = 3, backbone: str = "resnet18", embedding_dim: int = 128,
                 scale_tau: float = 0.05, pretrained: bool = False, backbone_weights: str | None = None) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise UserInputError(f"embedding_dim must be ≥ 1, got {embedding_dim}.")
        if scale_tau <= 0:
            raise UserInputError(f"scale_tau (temperature τ) must be > 0, got {scale_tau}.")
        self.backbone, dim = headless_backbone(backbone, in_chans, pretrained, backbone_weights)
        self.projection = nn.Linear(dim, embedding_dim)
        self.prototypes = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.prototypes)
        self.scale_tau, self.embedding_dim, self.backbone_name = float(scale_tau), int(embedding_dim), backbone

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-length embedding ``[B, D]``."""
        return F.normalize(self.projection(torch.flatten(self.backbone(x), 1)), dim=1)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` unit embeddings → ``[B, C]`` cosines to the normalised prototypes."""
        return emb @ F.normalize(self.prototypes, dim=1).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cosine(self.embed(x)) / self.scale_tau


register_model("embed-bnneck")(BNNeckNet)
register_model("embed-cosine")(CosineEmbeddingNet)

# model kwargs that only matter when building from scratch; never recorded in a manifest
INIT_ONLY_KWARGS = ("pretrained", "backbone_weights")
