"""docs/lecture.ipynb, the lecture in a notebook, executed by a real Jupyter kernel (nbclient,
ipykernel) on the Python API: every cell runs, the figures are drawn inline, and the contrasts
come out as the lecture says. Its outputs are not committed."""

import json
import os

import pytest

from helpers import ROOT

NOTEBOOK = os.path.join(ROOT, "docs", "lecture.ipynb")


def test_the_notebook_is_committed_without_outputs():
    with open(NOTEBOOK) as f:
        cells = json.load(f)["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.slow  # a kernel of its own, 17 runs
def test_the_notebook_runs_in_a_kernel_and_shows_the_lecture(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4  # one figure a contrast
    results = [o["data"]["text/plain"] for o in outputs if o.output_type == "execute_result"]
    saturation, outliers, xor, kl = (eval(r) for r in results)  # noqa: S307 (our own dicts)
    assert saturation["ce"] > saturation["square"] + 0.2
    assert outliers["logistic_ce"] > outliers["linear_square"]
    assert dict(xor)["mlp"] > max(dict(xor)["logistic"], dict(xor)["softmax"]) + 0.2
    assert kl["ce"] < kl["square"]
    assert (tmp_path / "outputs" / "runs").is_dir()  # the runs' folders, where the docs say
