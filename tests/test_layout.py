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
    for top in ("__main__.py", "__init__.py"):  # the program and the API: above every layer
        core.remove(SRC / "mlrefresh" / top)
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


def _private_names(tree) -> tuple[set, list]:
    """(the names a module defines, (what, line) of each private name it uses: a module path
    with a `_` part, an attribute `x._name`)."""
    defined, used = set(), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Store):
            defined.add(node.id if isinstance(node, ast.Name) else node.attr)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            modules += [a.name for a in node.names if isinstance(node, ast.Import)]
            defined.update(a.asname or a.name for a in node.names)
            used += [(f"import {m}", node.lineno) for m in modules
                     if any(p[:1] == "_" and p[-2:] != "__" for p in m.split("."))]  # fmt: skip
        elif isinstance(node, ast.Attribute) and node.attr[:1] == "_" and node.attr[-2:] != "__":
            used.append((node.attr, node.lineno))
    return defined, used


def test_src_uses_no_private_name_of_hydra_omegaconf_optuna_or_any_other_package():
    """No hydra._internal, omegaconf._impl, no `x._name` that src/ does not define itself
    (JobReturn._return_value, Optuna's trial._trial_id, study._storage, sampler._rng, the
    plugin's _impl: issue 32). Hydra's one internal step, job_configs.install, has no private
    name and its own canary (test_job_configs.test_a_sweep_composes_once_for_its_jobs)."""
    trees = {p: ast.parse(p.read_text()) for p in SRC.rglob("*.py")}
    defined, found = set(), []
    for path, tree in trees.items():
        names, used = _private_names(tree)
        defined |= names
        found += [(str(path.relative_to(SRC)), what, line) for what, line in used]
    foreign = [f for f in found if f[1].startswith("import ") or f[1] not in defined]
    assert foreign == [], foreign


def test_every_package_src_imports_is_declared_in_pyproject():
    """Each third-party import of src/ comes from a distribution pyproject.toml names (its
    dependencies or an extra): PyYAML, Pillow and omegaconf were imported, not declared."""
    import importlib.metadata
    import re
    import sys

    import tomllib

    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    declared = {
        re.split(r"[<>=!~\[; ]", w, maxsplit=1)[0].lower().replace("_", "-") for w in wanted
    }
    providers = importlib.metadata.packages_distributions()
    imported = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    missing = {}
    for name in sorted(imported - set(sys.stdlib_module_names) - {"mlrefresh", "hydra_plugins"}):
        dists = {d.lower().replace("_", "-") for d in providers.get(name, [name])}
        if not dists & declared:
            missing[name] = sorted(dists)
    assert missing == {}, missing


def test_no_script_shadows_a_module_it_or_a_library_imports():
    """`python scripts/x.py` puts scripts/ first on sys.path: a scripts/tensorboard.py made
    scripts/train.py's `import tensorboard` find it instead of TensorBoard ("tensorboard.compat
    is not installed"). No script is named after an importable module."""
    import importlib.util

    scripts = sorted((Path(ROOT) / "scripts").glob("*.py"))
    assert len(scripts) >= 5
    taken = [p.name for p in scripts if importlib.util.find_spec(p.stem) is not None]
    assert taken == [], f"scripts named like an importable module: {taken}"
