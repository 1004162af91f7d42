"""The layout docs/extending.md describes: the lecture core (src/mlrefresh/*.py and data/)
imports nothing from runs/, sweeps/ or plots/; no source file over 300 lines, no function over
60."""

import ast
from pathlib import Path

from helpers import ROOT

SRC = Path(ROOT) / "src"
LAYERS = ("mlrefresh.runs", "mlrefresh.sweeps", "mlrefresh.plots")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_core_imports_no_layer_above_it():
    core = [*(SRC / "mlrefresh").glob("*.py"), *(SRC / "mlrefresh" / "data").glob("*.py")]
    assert len(core) > 15
    for path in core:
        above = [n for n in _imports(path) if n.startswith(LAYERS)]
        assert not above, f"{path.relative_to(SRC)} imports {above}"


def test_files_and_functions_are_short():
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert text.count("\n") <= 300, f"{path.relative_to(SRC)}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{path.relative_to(SRC)}: {node.name} has {length} lines"


def test_every_folder_says_what_it_owns_and_may_import():
    for folder in ("runs", "sweeps", "plots"):
        doc = ast.get_docstring(ast.parse((SRC / "mlrefresh" / folder / "__init__.py").read_text()))
        assert doc and "May import" in doc and "Example" in doc


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


# torch's private names src/ uses, each with its measured reason in docs/measurements.md: none
PRIVATE_TORCH = set()


def test_src_calls_only_torchs_public_api():
    """No torch._C, torch._functorch, torch._foreach_*, no super(torch.autograd.Function, ...):
    a torch release that renames one would break every run (issue 30)."""
    used = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = _dotted(node) if isinstance(node, ast.Attribute) else ""
            private = [p for p in name.split(".")[1:] if p.startswith("_") and not p.endswith("__")]
            if name.startswith("torch.") and private:
                used.add((str(path.relative_to(SRC)), name))
            if isinstance(node, ast.Call) and _dotted(node.func) == "super" and node.args:
                assert _dotted(node.args[0]) != "torch.autograd.Function", path
    assert {name for _, name in used} <= PRIVATE_TORCH, sorted(used)
