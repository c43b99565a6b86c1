"""The quickstart notebook runs top to bottom in a fresh kernel, so it cannot rot."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKDL_REPO", str(REPO))
    monkeypatch.setenv("SPARKDL_LAKE", str(tmp_path / "lake"))
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                      for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "epoch   2" in outputs  # the summary printed by the training cell
    # training showed a progress bar: tqdm's Jupyter widget, one per epoch, full at the end (the
    # widgets' last state is what nbclient stores in the notebook's metadata)
    widgets = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    texts = [w["state"].get("value", "").replace("\u2007", " ") for w in widgets if w["model_name"] == "HTMLModel"]
    epochs = sorted(t for t in texts if t.startswith("epoch "))  # the job's training, then the estimator's fit
    assert epochs == ["epoch 1/2: 100%"] * 2 + ["epoch 2/2: 100%"] * 2, texts
    assert "predictedLabel" in outputs
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
