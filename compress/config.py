"""Typed frozen-dataclass configs: YAML/TOML files loaded at the edge, unknown keys rejected."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from compress.errors import UserInputError

C = TypeVar("C")


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases (``*name``): a config never needs them, and they are how a short
    file expands to gigabytes (alias bombs) or refers to itself (endless recursion)."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise UserInputError(f"YAML alias at line {mark.line + 1}: aliases (*name) are not accepted in "
                                     "config files; write the value out.")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliases)  # noqa: S506 - a SafeLoader subclass


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.yaml``/``.yml``/``.toml``/``.json`` file into a dict (keys may use - or _)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"Config file '{path}' does not exist; pass an existing .yaml or .toml file.")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = load_yaml(text) or {}
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            import json

            data = json.loads(text)
        else:
            raise UserInputError(f"Config file '{path}' has suffix '{suffix}'; use .yaml, .yml, .toml or .json.")
    except UserInputError:
        raise
    except Exception as exc:  # parse errors of three libraries
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(f"Config file '{path}' cannot be parsed: {first}") from exc
    if not isinstance(data, dict):
        raise UserInputError(f"Config file '{path}' must hold a mapping of keys to values at the top level.")
    return data


def _norm_key(key: str) -> str:
    return str(key).strip().replace("-", "_")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Coerce YAML/TOML/CLI values to the annotated field type (paths, tuples, optionals)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        last: Exception | None = None
        for a in non_none:
            try:
                return _coerce(value, a, where)
            except UserInputError as exc:
                last = exc
        raise last or UserInputError(f"{where}: bad value {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, Mapping):
            raise UserInputError(f"{where}: expected a section of keys, got {value!r}")
        return build_config(tp, value, section=where)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        if origin is tuple and len(args) >= 2 and args[1] is not Ellipsis:
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        seq = [_coerce(v, inner, where) for v in value]
        return tuple(seq) if origin is tuple else seq
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise UserInputError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Path:
        return Path(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise UserInputError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float, str):
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError) as exc:
            raise UserInputError(f"{where}: expected {tp.__name__}, got {value!r}") from exc
    return value


def command_section(values: Mapping[str, Any], command: str) -> dict[str, Any]:
    """A command's keys in a ``--config`` file: its section (``export:``, ``profile:``) when the file has one,
    else the whole file — so one file can hold several commands' settings, or one command's at the top."""
    section = values.get(command)
    return dict(section) if isinstance(section, Mapping) else dict(values)


def build_config(cls: type[C], values: Mapping[str, Any] | None = None, *, section: str = "config") -> C:
    """Build frozen dataclass ``cls`` from a mapping; unknown keys raise a UserInputError listing valid ones."""
    values = {_norm_key(k): v for k, v in (values or {}).items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserInputError(
            f"Unknown key(s) {', '.join(unknown)} in {section}. Valid keys: {', '.join(sorted(fields))}."
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UserInputError(f"{section}: {exc}") from exc


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["temperature=4", "alpha=0.5"]`` → ``{"temperature": 4, "alpha": 0.5}``; a malformed value is one clear error."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserInputError(f"--method-param '{item}' must look like KEY=VALUE, e.g. temperature=4.")
        k, v = item.split("=", 1)
        try:
            out[k.strip().replace("-", "_")] = yaml.safe_load(v)
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserInputError(f"--method-param '{item}': the value is not valid YAML ({first}); quote it, e.g. "
                                 f"-p '{k.strip()}=\"{v}\"', or fix the brackets.") from exc
    return out
