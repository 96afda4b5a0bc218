"""The quickstart notebook runs from start to end, and is stored without outputs.

It is executed by nbclient in a kernel of this interpreter (a kernel spec written to a
temporary JUPYTER_PATH, so nothing has to be installed beforehand), with a temporary working
directory. A cell appended in memory reports the notebook's results as JSON to check them.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "image_quickstart.ipynb"
KERNEL = "ncodec-test"
MARK = "NCODEC-NOTEBOOK-RESULT "

REPORT_CELL = f"""
import json as _json, sys as _sys
print({MARK!r} + _json.dumps({{
    "executable": _sys.executable, "codec": codec.name, "quality": codec.quality,
    "num_bytes": num_bytes, "height": height, "width": width, "bpp": bpp, "psnr": psnr,
    "curves": curves, "bd_rate": bd_rate,
}}))
"""


def _kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel spec running this interpreter, and Jupyter/IPython state kept in tmp_path."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ncodec test (this interpreter)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, \
            "clear the notebook's outputs before committing (Jupyter: Edit > Clear Outputs of All Cells)"


@pytest.mark.timeout(300)
def test_notebook_runs(tmp_path, monkeypatch):
    _kernel_env(tmp_path, monkeypatch)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))

    start = time.perf_counter()
    NotebookClient(nb, kernel_name=KERNEL, timeout=300, allow_errors=False,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    elapsed = time.perf_counter() - start

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(_text(c) for c in nb.cells if c.cell_type == "code")
    report = json.loads(next(line for line in text.splitlines() if line.startswith(MARK))[len(MARK):])
    assert Path(report["executable"]).resolve() == Path(sys.executable).resolve()

    # bpp and PSNR of the default codec, printed and consistent with the file size.
    assert "bpp" in text and "PSNR" in text and "BD-rate" in text
    assert report["bpp"] == pytest.approx(8 * report["num_bytes"] / (report["height"] * report["width"]))
    assert report["bpp"] > 0 and math.isfinite(report["psnr"]) and report["psnr"] > 0
    # The RD plot's data: the codec and both baselines, one bpp and one PSNR per point.
    assert set(report["curves"]) == {f"ncodec {report['codec']}", "JPEG", "WebP"}
    for curve in report["curves"].values():
        assert len(curve["bpp"]) == len(curve["psnr"]) >= 2
    # Two figures (original vs reconstruction, RD plot) rendered as PNG.
    pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 2
    assert elapsed < 300
