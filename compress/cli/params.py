"""Parsing the values of ``-p KEY=VALUE`` options (YAML scalars, lists and mappings)."""
from __future__ import annotations

from typing import Any

from compress.errors import UserInputError


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
