"""Mutants of chosen functions: small AST edits a plausible bug would make.

Operators (each applied to one node at a time):

* comparison flipped at its boundary or negated (``<`` ↔ ``<=``, ``==`` ↔ ``!=``, ``in`` ↔ ``not in``, …);
* arithmetic swapped (``+`` ↔ ``-``, ``*`` ↔ ``/``, ``//`` → ``/``, ``**`` → ``*``), also in ``+=`` etc.;
* ``and`` ↔ ``or``; ``not x`` → ``x``; ``-x`` → ``x``;
* a number changed (``n`` → ``n + 1``, ``x`` → ``2x``, ``0.0`` → ``1.0``), ``True`` ↔ ``False``;
* an ``if``/``while``/conditional-expression test negated;
* a call statement removed (``f(x)`` → ``pass``).

Text inside f-strings (messages) is left alone. A mutant is addressed by the position of its node in
``ast.walk`` order of the whole module, so it is rebuilt from the source at any time; its ``key`` names
the function, the operator and the source text instead of line numbers, so the list of reviewed
equivalent mutants survives edits elsewhere in the file.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
         ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
BOOL = {ast.And: ast.Or, ast.Or: ast.And}


@dataclass(frozen=True)
class Mutant:
    """One edit of ``path`` (a module of the project) inside ``function``."""

    path: str
    function: str
    index: int  # the node's position in ast.walk(module)
    op: str
    line: int
    snippet: str
    occurrence: int  # how many earlier mutants of this function share (op, snippet)

    @property
    def key(self) -> str:
        return f"{self.path}::{self.function}::{self.op}::{self.snippet}#{self.occurrence}"


def _qualnames(tree: ast.Module) -> dict[int, str]:
    """id(node) → qualified name of the innermost function holding it."""
    out: dict[int, str] = {}

    def visit(node: ast.AST, prefix: str, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            name, f = prefix, func
            if isinstance(child, ast.ClassDef):
                name = f"{prefix}{child.name}."
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                f = f"{prefix}{child.name}"
                name = f"{f}."
            if f is not None and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out[id(child)] = f
            visit(child, name, f)

    visit(tree, "", None)
    return out


def _skipped(tree: ast.Module) -> set[int]:
    """Nodes a mutation must not touch: f-strings, docstrings, annotations and decorators."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                mark(d)
            mark(node.returns)
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                mark(a.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
    return skip


def _ops(node: ast.AST) -> Iterator[str]:
    """The operator names that apply to ``node``."""
    if isinstance(node, ast.Compare):
        for i, o in enumerate(node.ops):
            if type(o) in COMPARE:
                yield f"compare{i}:{type(o).__name__}->{COMPARE[type(o)].__name__}"
    elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in ARITH:
        yield f"arith:{type(node.op).__name__}->{ARITH[type(node.op)].__name__}"
    elif isinstance(node, ast.BoolOp):
        yield f"bool:{type(node.op).__name__}->{BOOL[type(node.op)].__name__}"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield f"drop-{type(node.op).__name__.lower()}"
    elif isinstance(node, ast.Constant) and type(node.value) in (bool, int, float):
        yield "constant"
    elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
        yield "negate-test"
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield "remove-call"


def _mutated_constant(value: bool | int | float) -> bool | int | float:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return 1.0 if value == 0 else value * 2.0


def _apply(node: ast.AST, op: str, parent: ast.AST) -> None:
    """Edit ``node`` in place (or in ``parent``) as ``op`` says."""
    if op.startswith("compare"):
        i = int(op[len("compare"):op.index(":")])
        node.ops[i] = COMPARE[type(node.ops[i])]()
    elif op.startswith("arith:"):
        node.op = ARITH[type(node.op)]()
    elif op.startswith("bool:"):
        node.op = BOOL[type(node.op)]()
    elif op.startswith("drop-"):
        _replace(parent, node, node.operand)
    elif op == "constant":
        node.value = _mutated_constant(node.value)
    elif op == "negate-test":
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    elif op == "remove-call":
        _replace(parent, node, ast.Pass())
    else:
        raise ValueError(op)


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                if v is old:
                    value[i] = new
                    return
    raise ValueError("node not found in its parent")


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}


def generate(path: str, functions: tuple[str, ...], root: Path) -> list[Mutant]:
    """Every mutant of the functions named (qualified: ``Class.method``; ``*`` = every function)."""
    source = (root / path).read_text()
    tree = ast.parse(source)
    owners, skip = _qualnames(tree), _skipped(tree)
    out: list[Mutant] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, node in enumerate(ast.walk(tree)):
        func = owners.get(id(node))
        if func is None or id(node) in skip or not ("*" in functions or func in functions):
            continue
        for op in _ops(node):
            snippet = " ".join((ast.get_source_segment(source, node) or "").split())[:80]
            n = seen.get((func, op, snippet), 0)
            seen[(func, op, snippet)] = n + 1
            out.append(Mutant(path, func, index, op, getattr(node, "lineno", 0), snippet, n))
    return out


def mutated_code(m: Mutant, root: Path):
    """The module ``m.path`` compiled with ``m`` applied (line numbers kept for tracebacks)."""
    file = root / m.path
    tree = ast.parse(file.read_text())
    node = next(n for i, n in enumerate(ast.walk(tree)) if i == m.index)
    parent = _parents(tree)[id(node)]
    _apply(node, m.op, parent)
    ast.fix_missing_locations(tree)
    return compile(tree, str(file), "exec")


def check_applies(m: Mutant, root: Path) -> bool:
    """Whether the mutant compiles (a few edits, e.g. a negated constant target, do not)."""
    try:
        mutated_code(m, root)
        return True
    except (SyntaxError, ValueError, TypeError):
        return False
