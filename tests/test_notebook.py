"""The quickstart notebooks run from start to end, and are stored without outputs.

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

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK = NOTEBOOKS / "image_quickstart.ipynb"
AUDIO_NOTEBOOK = NOTEBOOKS / "audio_quickstart.ipynb"
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

AUDIO_REPORT_CELL = f"""
import json as _json, sys as _sys
print({MARK!r} + _json.dumps({{
    "executable": _sys.executable, "codec": codec.name, "bitrates": list(codec.bitrates),
    "frame_rate": codec.frame_rate, "sr": sr, "out_sr": out_sr, "samples": wav.shape[-1], "seconds": seconds,
    "results": results, "stream_equal": stream_equal, "stream_samples": stream_out.shape[-1],
    "tokens": list(tokens.shape), "back": list(back.shape), "hop": codec.hop,
    "single": list(single.shape), "single_frame_rate": tokenizer.frame_rate,
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


@pytest.mark.parametrize("notebook", [NOTEBOOK, AUDIO_NOTEBOOK], ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, \
            "clear the notebook's outputs before committing (Jupyter: Edit > Clear Outputs of All Cells)"


def _execute(notebook: Path, report_cell: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the notebook plus ``report_cell``: (executed notebook, its text output, the report, seconds)."""
    _kernel_env(tmp_path, monkeypatch)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(report_cell))

    start = time.perf_counter()
    NotebookClient(nb, kernel_name=KERNEL, timeout=300, allow_errors=False,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    elapsed = time.perf_counter() - start

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    report = json.loads(next(line for line in text.splitlines() if line.startswith(MARK))[len(MARK):])
    assert Path(report["executable"]).resolve() == Path(sys.executable).resolve()
    return nb, text, report, elapsed


def _pngs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]


@pytest.mark.timeout(300)
def test_notebook_runs(tmp_path, monkeypatch):
    nb, text, report, elapsed = _execute(NOTEBOOK, REPORT_CELL, tmp_path, monkeypatch)

    # bpp and PSNR of the default codec, printed and consistent with the file size.
    assert "bpp" in text and "PSNR" in text and "BD-rate" in text
    assert report["bpp"] == pytest.approx(8 * report["num_bytes"] / (report["height"] * report["width"]))
    assert report["bpp"] > 0 and math.isfinite(report["psnr"]) and report["psnr"] > 0
    # The RD plot's data: the codec and both baselines, one bpp and one PSNR per point.
    assert set(report["curves"]) == {f"ncodec {report['codec']}", "JPEG", "WebP"}
    for curve in report["curves"].values():
        assert len(curve["bpp"]) == len(curve["psnr"]) >= 2
    # Two figures (original vs reconstruction, RD plot) rendered as PNG.
    assert len(_pngs(nb)) >= 2
    assert elapsed < 300


@pytest.mark.timeout(300)
def test_audio_notebook_runs(tmp_path, monkeypatch):
    nb, text, report, elapsed = _execute(AUDIO_NOTEBOOK, AUDIO_REPORT_CELL, tmp_path, monkeypatch)

    assert report["codec"] == "speech-rvq-16k" and len(report["bitrates"]) >= 2
    assert report["out_sr"] == report["sr"]
    assert report["seconds"] == pytest.approx(report["samples"] / report["sr"])
    assert "PESQ-WB" in text and "STOI" in text and "SI-SDR" in text
    # One row per bitrate for the codec and Opus; the rate is the file's, the scores in range.
    # No quality is assumed: the shipped weights may be untrained.
    assert set(report["results"]) == {f"ncodec {report['codec']}", "Opus"}
    for rows in report["results"].values():
        assert [r["target"] for r in rows] == report["bitrates"]
        for r in rows:
            assert r["bytes"] > 0
            assert r["kbps"] == pytest.approx(8 * r["bytes"] / report["seconds"] / 1000)
            assert 1.0 <= r["pesq"] <= 4.7 and 0.0 <= r["stoi"] <= 1.0 + 1e-9
            assert not math.isnan(r["si_sdr"])
    # Streaming in 20 ms pieces gives compress's bytes, and decodes to the input's length.
    assert report["stream_equal"] is True
    assert report["stream_samples"] == report["samples"]
    # Tokens: [n_q, F] at the frame rate, detokenized to F * hop samples; one codebook for the tokenizer.
    n_q, frames = report["tokens"]
    assert n_q >= 1 and frames == math.ceil(report["seconds"] * report["frame_rate"])
    assert report["back"] == [1, frames * report["hop"]]
    assert report["single"][0] == 1
    assert report["single"][1] == math.ceil(report["seconds"] * report["single_frame_rate"])
    # One figure (waveform, spectrograms, PESQ vs kbps) rendered as PNG.
    assert len(_pngs(nb)) >= 1
    assert elapsed < 300
