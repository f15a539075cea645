"""The package's layers hold: who may import whom, and which library lives where.

ARCHITECTURE.md explains the layers; this file is what keeps them true. Imports are read
from the source (every ``import`` statement, including those inside functions), so a
lazy import cannot slip past.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pneumo"

LAYERS = ("base", "stats", "modeling", "guard", "inference", "evaluation", "batch", "training", "render", "pacs", "cli")
"""Low to high: a module may import its own layer and the layers before it, never one after."""

BASE_MODULES = {"io", "dicom", "preprocess", "data", "folds", "store", "environment", "examples"}
"""Top-level modules of ``pneumo`` that form the base layer."""

ONLY_IN = {
    "plotly": {"pneumo/render/charts.py"},
    "fpdf": {"pneumo/render/pdf.py"},
}
"""Libraries that only one module of ``pneumo`` may import."""

LONG_MODULE_LINES = 420
LONG_MODULE_REASON = "one idea"
"""A module longer than this says in its docstring why it is one idea."""


def layer_of(module: str) -> str | None:
    """The layer of a dotted ``pneumo`` module name; None for the package itself."""
    parts = module.split(".")
    if parts[0] != "pneumo" or len(parts) == 1:
        return None
    head = parts[1]
    if head in LAYERS:
        return head
    if head in BASE_MODULES or head in ("__main__", "__init__"):
        return "cli" if head == "__main__" else "base"
    raise AssertionError(f"pneumo.{head} belongs to no layer: add it to a layer in ARCHITECTURE.md and here")


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    return ".".join(relative.parts)  # a package's own file stays ``pkg.__init__``


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """Every module a source file imports, as (line, dotted name); relative imports resolved."""
    found = []
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from pneumo import training`` imports the sub-package itself
            found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names
                         if name == "pneumo")
    return found


def layer_violations(source: str, module: str) -> list[str]:
    """Imports in ``source`` (the module ``module``) that reach a higher layer, or a library it may not use."""
    problems = []
    own = layer_of(module)
    path = module.replace(".", "/") + ".py"
    for line, name in imported_modules(source, module):
        top = name.split(".")[0]
        if top == "streamlit":
            problems.append(f"{module}:{line} imports streamlit (pages draw, pneumo computes)")
        if top in ONLY_IN and path not in ONLY_IN[top]:
            problems.append(f"{module}:{line} imports {top}, which only {sorted(ONLY_IN[top])} may")
        if top == "pneumo" and own is not None:
            target = layer_of(name)
            if target is not None and LAYERS.index(target) > LAYERS.index(own):
                problems.append(f"{module}:{line} ({own}) imports {name} ({target}), a higher layer")
    return problems


def page_violations(source: str, name: str) -> list[str]:
    """Imports of TensorFlow or Keras in a page or the app's frame."""
    return [f"{name}:{line} imports {imported}" for line, imported in imported_modules(source, name)
            if imported.split(".")[0] in {"tensorflow", "keras", "tf_keras_vis"}]


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_of_the_package_respects_the_layers():
    problems = []
    for path in package_files():
        problems += layer_violations(path.read_text(), module_name(path))
    assert not problems, "\n".join(problems)


def test_the_pages_and_the_frame_never_import_tensorflow():
    files = [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]
    problems = []
    for path in files:
        problems += page_violations(path.read_text(), str(path.relative_to(ROOT)))
    assert len(files) >= 6
    assert not problems, "\n".join(problems)


def test_every_top_level_module_belongs_to_a_layer():
    tops = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert tops <= BASE_MODULES, tops - BASE_MODULES
    assert packages == set(LAYERS) - {"base"}, packages ^ (set(LAYERS) - {"base"})


def test_long_modules_say_why_they_are_one_idea():
    long = []
    for path in package_files():
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > LONG_MODULE_LINES and LONG_MODULE_REASON not in doc.lower():
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not long, "split these, or say in the docstring why each is one idea: " + ", ".join(long)


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("from pneumo.render import wording\n", "pneumo.inference.predict", "a higher layer"),
    ("def f():\n    from pneumo.training import train\n", "pneumo.stats.metrics", "a higher layer"),
    ("from pneumo import training\n", "pneumo.guard.fit", "a higher layer"),
    ("from ..render import charts\n", "pneumo.inference.explain", "a higher layer"),
    ("import streamlit as st\n", "pneumo.render.wording", "imports streamlit"),
    ("import plotly.graph_objects as go\n", "pneumo.render.wording", "imports plotly"),
])
def test_the_checker_catches_a_violation(source, module, expected):
    problems = layer_violations(source, module)
    assert len(problems) == 1 and expected in problems[0]


@pytest.mark.parametrize(("source", "module"), [
    ("from pneumo.stats import metrics\nfrom pneumo import io\n", "pneumo.inference.predict"),
    ("from pneumo.inference import predict\n", "pneumo.render.wording"),
    ("import plotly.graph_objects as go\n", "pneumo.render.charts"),
    ("from . import wording\n", "pneumo.render.charts"),
])
def test_the_checker_allows_what_the_layers_allow(source, module):
    assert layer_violations(source, module) == []


def test_the_page_checker_catches_keras():
    assert page_violations("def f():\n    import keras\n", "app_pages/x.py") == ["app_pages/x.py:2 imports keras"]
