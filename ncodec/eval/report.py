"""The report folder of an evaluation: its files, and the manifest that makes ``--force`` safe.

:func:`write_report` writes into one folder, for any modality:

- ``<key>.json`` per codec and baseline (:meth:`EvalPlugin.curve_json`: per-setting means,
  non-finite values as null; images use CompressAI's results schema);
- the per-record CSV (``per_image.csv``, ``per_file.csv``: one row per codec, setting and
  input, the record dataclass's fields as columns, floats in round-trip form);
- ``rd.png``: the plug-in's panels against the rate, one line per codec, baselines dashed;
- the plug-in's markdown files (``bdrate.md``, ``summary.md``);
- ``.ncodec-report``: the names of the files above (:data:`REPORT_MANIFEST`).

:func:`prepare_report_dir` runs before any work: a non-empty folder needs ``force``, which
removes what the previous report's manifest lists and nothing else.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Optional, Sequence

from ncodec.eval.core import summary_markdown
from ncodec.eval.results import Results
from ncodec.eval.plugin import EvalPlugin, get_eval_plugin

__all__ = ["REPORT_MANIFEST", "csv_text", "prepare_report_dir", "record_report", "report_dir", "write_report"]

REPORT_MANIFEST = ".ncodec-report"
"""File in a report folder listing the files the report wrote (JSON list of names)."""


def csv_text(records: Sequence[Any]) -> str:
    """Dataclass records as CSV (a header of their field names; floats in round-trip form)."""
    if not records:
        return ""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = [f.name for f in fields(records[0])]
    writer.writerow(names)
    for r in records:
        row = asdict(r)
        writer.writerow([repr(row[n]) if isinstance(row[n], float) else row[n] for n in names])
    return buf.getvalue()


def prepare_report_dir(out_dir: str | Path, *, force: bool = False) -> Path:
    """Make ``out_dir`` ready for a new report, before any work: a new or empty folder is
    used as it is; a folder with files in it needs ``force``, and then the files that the
    previous report wrote (its :data:`REPORT_MANIFEST`) are removed, so that no stale file is
    left beside the new report. Nothing else in the folder is touched.

    Raises:
        ValueError: ``out_dir`` is not a directory.
        FileExistsError: it holds files and ``force`` is not set.
    """
    out = Path(out_dir)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"{out}: the output must be a directory, this is a file or a link")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty (use --force to replace the report in it, or another --out)")
        manifest = out / REPORT_MANIFEST
        if manifest.is_file():
            try:
                names = json.loads(manifest.read_text())
            except ValueError:
                names = []
            for name in names if isinstance(names, list) else []:
                stale = out / str(name)
                if isinstance(name, str) and "/" not in name and stale.is_file() and not stale.is_symlink():
                    stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def report_dir(out_dir: str | Path) -> Path:
    """``out_dir`` created if needed (ValueError if it is a file): where a report goes."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the output must be a directory, this is a file")
    out.mkdir(parents=True, exist_ok=True)
    return out


def record_report(out: Path, paths: dict[str, Path]) -> None:
    """Write the report's manifest: the names of the files it wrote in ``out``."""
    from ncodec.io import write_atomic

    names = sorted({p.name for p in paths.values()})
    write_atomic(out / REPORT_MANIFEST, (json.dumps(names) + "\n").encode(), force=True)


def plot_title(results: Results, plugin: EvalPlugin) -> str:
    """``"<learned codecs> - <n> <inputs>"``, the plot's title."""
    learned = ", ".join(c.name for c in results.codecs) or "baselines"
    return f"{learned} - {len(results.inputs)} {plugin.input_noun}(s)"


def write_report(results: Results, out_dir: str | Path, plugin: Optional[EvalPlugin] = None) -> dict[str, Path]:
    """Write the report (see the module doc) into ``out_dir`` (created if needed; files of
    the same names are replaced). Returns ``{what: path}``: ``"json:<key>"`` per curve, then
    each other file by its stem (``"per_image"``, ``"rd"``, ``"bdrate"``, ...)."""
    from ncodec.eval.plots import plot_rd
    from ncodec.io import write_atomic

    plugin = plugin or get_eval_plugin(results.modality)
    out = report_dir(out_dir)
    paths: dict[str, Path] = {}

    def put(key: str, name: str, data: bytes) -> None:
        paths[key] = out / name
        write_atomic(paths[key], data, force=True)

    for curve in results.curves:
        put(f"json:{curve.key}", f"{curve.key}.json",
            (json.dumps(plugin.curve_json(curve), indent=2, allow_nan=False) + "\n").encode())
    put(Path(plugin.records_file).stem, plugin.records_file, csv_text(results.records).encode())
    if plugin.plot_panels:
        series = [{"name": c.name, "results": c.summary()} for c in results.curves]
        put("rd", "rd.png", plot_rd(series, plugin.plot_panels, rate_key=plugin.rate_key,
                                    rate_label=plugin.rate_label, title=plot_title(results, plugin),
                                    dashed={c.name for c in results.baselines}))
    pages = plugin.markdown(results)
    if pages is None:
        pages = {"summary.md": summary_markdown(results, plugin)}
    for name, text in pages.items():
        put(Path(name).stem, name, text.encode())
    record_report(out, paths)
    return paths
