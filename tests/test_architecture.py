"""Imports point one way (ARCHITECTURE.md "Layers"): every module of compress, export, runtime and profiles is
parsed with ``ast`` (all imports, also those inside functions); a cycle between files or an import
against the direction fails, and no file may pass 400 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compress", "export", "runtime", "profiles")
CORE = {"compress", "compress.errors", "compress.io", "compress.registry", "compress.config", "compress.checkpoint",
        "compress.hardware", "compress.parallel", "compress.lock"}
LAYER2 = ("compress.data", "compress.models", "compress.losses", "compress.metrics", "compress.evaluation")
# layer → the layers it may import (its own included)
ALLOWED = {
    "core": {"core"},
    "layer2": {"core", "layer2"},
    "methods": {"core", "layer2", "methods"},
    "engine": {"core", "layer2", "methods", "engine"},
    "runtime": {"core", "runtime"},
    "profiles": {"core", "layer2", "runtime", "profiles"},
    "export": {"core", "layer2", "runtime", "export"},
    "jobs": {"core", "layer2", "methods", "engine", "runtime", "profiles", "export", "jobs"},
    "cli": {"core", "layer2", "methods", "engine", "runtime", "profiles", "export", "jobs", "cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in CORE:
        return "core"
    for prefix, layer in ((("compress.cli", "compress.__main__"), "cli"), (LAYER2, "layer2"),
                          (("compress.methods",), "methods"), (("compress.engine",), "engine"),
                          (("compress.jobs", "compress.api"), "jobs"), (("runtime",), "runtime"), (("profiles",), "profiles"),
                          (("export",), "export")):
        if any(module == p or module.startswith(p + ".") for p in prefix):
            return layer
    raise AssertionError(f"{module} belongs to no layer; add it to tests/test_architecture.py")


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules imported anywhere in ``path`` (``from pkg import sub`` counts as ``pkg.sub`` when it is one)."""
    me = module_name(path)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != me:
                out.add(name)
    return out


def test_imports_point_down_the_layers():
    modules = all_modules()
    bad = []
    for name, path in sorted(modules.items()):
        src = layer_of(name)
        for dep in sorted(imports_of(path, modules)):
            if layer_of(dep) not in ALLOWED[src]:
                bad.append(f"{name} ({src}) imports {dep} ({layer_of(dep)})")
    assert not bad, "imports against the layer direction:\n" + "\n".join(bad)


def test_no_import_cycles_between_files():
    modules = all_modules()
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle of files that import each other
    for name in graph:
        graph[name] = {d for d in graph[name] if not (modules[d].name == "__init__.py" and name.startswith(d + "."))}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_file_passes_400_lines(package):
    long = [f"{p.relative_to(ROOT)}: {n}" for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400]
    assert not long, "files over 400 lines: " + ", ".join(long)


def test_the_checker_sees_function_level_imports(tmp_path):
    modules = all_modules()
    probe = ROOT / "compress" / "methods" / "kd.py"
    assert "compress.losses.functional" in imports_of(probe, modules)
    lazy = ROOT / "compress" / "jobs" / "train_distill.py"
    assert "compress.checkpoint" in imports_of(lazy, modules)  # imported inside a function there


# A file name may repeat only as one concept seen from several layers (ARCHITECTURE.md "One name per
# concept"): the command (cli/), its job (jobs/), the model code (models/), … Anything else gets its own name.
MIRRORS = {
    "api.py": {"compress/api.py", "profiles/api.py"},  # the library surface; profiles' is the profile command's
    "base.py": {"compress/methods/base.py", "runtime/base.py"},  # each registry's base class
    "catalog.py": {"compress/cli/catalog.py", "compress/jobs/catalog.py"},
    "cross_source.py": {"compress/jobs/cross_source.py", "compress/methods/cross_source.py"},
    "embedding.py": {"compress/evaluation/embedding.py", "compress/models/embedding.py"},
    "ensemble.py": {"compress/cli/ensemble.py", "compress/models/ensemble.py"},
    "evaluate.py": {"compress/cli/evaluate.py", "compress/jobs/evaluate.py", "export/evaluate.py"},
    "pipeline.py": {"compress/cli/pipeline.py", "compress/jobs/pipeline.py"},
    "progress.py": {"compress/cli/progress.py", "compress/engine/progress.py"},  # the renderer / the sink
    "prune.py": {"compress/cli/prune.py", "compress/jobs/prune.py", "compress/models/prune.py"},
    "registry.py": {"compress/registry.py", "runtime/registry.py"},
    "remote.py": {"export/remote.py", "runtime/remote.py"},  # a Jetson over SSH: build there / measure there
    "retrieval.py": {"compress/cli/retrieval.py", "compress/metrics/retrieval.py"},
    "samples.py": {"compress/data/samples.py", "export/samples.py"},  # a run's images / the export's arrays
}


def test_a_file_name_repeats_only_as_one_concept_across_layers():
    seen: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            if p.name not in ("__init__.py", "__main__.py"):
                seen.setdefault(p.name, set()).add(p.relative_to(ROOT).as_posix())
    bad = {n: sorted(ps) for n, ps in seen.items() if len(ps) > 1 and ps != MIRRORS.get(n)}
    assert not bad, f"file names used for different things (rename one, or list a per-layer mirror in MIRRORS): {bad}"
