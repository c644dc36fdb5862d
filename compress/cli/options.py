"""CLI options declared once, in groups that commands subscribe to (as Polygraphy's tools subscribe
to argument groups). Each option names the config key it fills (``train.batch_size``); a command
receives the given values as one nested mapping, ready for the single config-file merge
(:func:`compress.jobs.config_merge.merge_config`). Old spellings stay accepted for a while and print a
one-line deprecation notice.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import typer

from compress.errors import UserInputError


@dataclass(frozen=True)
class Opt:
    """One option: parameter ``name``, its ``flags`` (the first is the name shown), the config ``key`` it
    fills (``None``: an option of the command itself), and ``deprecated`` spellings still accepted."""

    name: str
    flags: tuple[str, ...]
    help: str
    key: str | None = None
    type: Any = Optional[str]
    default: Any = None
    deprecated: tuple[str, ...] = ()
    argument: bool = False
    show_default: bool | str = True


@dataclass(frozen=True)
class Group:
    title: str
    opts: tuple[Opt, ...]

    def __add__(self, other: "Group") -> "Group":
        return Group(self.title, self.opts + other.opts)


@dataclass
class Given:
    """What the user typed: ``config`` (nested by section, only given values) and the command's own options."""

    config: dict[str, Any] = field(default_factory=dict)
    own: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.own[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.own.get(name, default)


def _given(value: Any, opt: Opt) -> bool:
    if value is None:
        return False
    if opt.type is bool and value is False and opt.default is False:
        return False
    return not (isinstance(value, (list, tuple)) and not value and not opt.argument)


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *path, last = key.split(".")
    for part in path:
        tree = tree.setdefault(part, {})
    if isinstance(value, dict) and isinstance(tree.get(last), dict):
        tree[last] = {**tree[last], **value}
    else:
        tree[last] = value


def _parameter(opt: Opt, flags: tuple[str, ...], hidden: bool = False) -> inspect.Parameter:
    annotation = opt.type
    if opt.argument:
        info = typer.Argument(opt.default, help=opt.help, show_default=opt.show_default)
    elif hidden:  # an old spelling: "not given" unless typed
        annotation = bool if opt.type is bool else (opt.type if _optional(opt.type) else Optional[opt.type])
        info = typer.Option(False if opt.type is bool else None, *flags, hidden=True)
    else:
        info = typer.Option(opt.default, *flags, help=opt.help, show_default=opt.show_default)
    name = opt.name if not hidden else f"{opt.name}__{flags[0].lstrip('-').replace('-', '_')}"
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _optional(tp: Any) -> bool:
    import typing

    return type(None) in typing.get_args(tp)


def command(app: typer.Typer, name: str, *groups: Group, help: str | None = None,
            convert: dict[str, Callable[[Any], Any]] | None = None) -> Callable:
    """Register ``handler(given: Given)`` as ``name`` with every option of ``groups`` (declared once)."""
    opts = [o for g in groups for o in g.opts]
    names = [o.name for o in opts]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuntimeError(f"option(s) {sorted(dupes)} declared twice for '{name}'")
    convert = convert or {}

    def deco(handler: Callable[[Given], None]) -> Callable:
        params, aliases = [], {}
        for o in opts:
            params.append(_parameter(o, o.flags))
            for old in o.deprecated:
                p = _parameter(o, (old,), hidden=True)
                aliases[p.name] = (o, old)
                params.append(p)

        @functools.wraps(handler)
        def wrapper(**kwargs: Any) -> None:
            from compress.cli.common import cli_errors, err_console

            with cli_errors():
                given = Given()
                for pname, (o, old) in aliases.items():
                    value = kwargs.pop(pname)
                    if value is not None and value is not False and value != []:
                        err_console.print(f"[yellow]note:[/yellow] {old} is deprecated; use {o.flags[0]}.",
                                          soft_wrap=True, markup=True)
                        if kwargs.get(o.name) not in (None, False, [], o.default) and kwargs[o.name] != value:
                            raise UserInputError(f"{old} and {o.flags[0]} are the same option; give it once.")
                        kwargs[o.name] = value
                for o in opts:
                    value = kwargs[o.name]
                    if o.name in convert and _given(value, o):
                        value = convert[o.name](value)
                    if o.key is None:
                        given.own[o.name] = value
                    elif _given(value, o):
                        _set(given.config, o.key, list(value) if isinstance(value, tuple) else value)
                handler(given)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        app.command(name, help=help or inspect.getdoc(handler))(wrapper)
        return handler

    return deco


def opt(name: str, *flags: str, help: str, key: str | None = None, type: Any = Optional[str], default: Any = None,
        deprecated: tuple[str, ...] = (), show_default: bool | str = True) -> Opt:
    return Opt(name, flags or (f"--{name.replace('_', '-')}",), help, key, type, default, deprecated,
               show_default=show_default)


def arg(name: str, help: str, type: Any = str, default: Any = ...) -> Opt:
    return Opt(name, (), help, None, type, default, argument=True)


Int, Float, Str, Flag, Strs = Optional[int], Optional[float], Optional[str], bool, Optional[List[str]]
