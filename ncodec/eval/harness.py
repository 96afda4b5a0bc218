"""Run a learned codec and the classical baselines over a set of images, and write the results.

:func:`evaluate` codes every image at every setting of every codec and measures, per image:
the size of the whole file (container and headers included: the honest number, what a user
stores), bpp, PSNR-RGB, MS-SSIM and the encode and decode wall-clock times.
:func:`write_report` writes, into one folder:

- ``<key>.json`` per codec (``bmshj2018-factorized.json``, ``jpeg.json``, ...), in
  CompressAI's results schema, so ``python -m compressai.utils.plot`` draws them beside
  CompressAI's published curves::

      {"name": str, "description": str,
       "results": {"psnr-rgb": [dB], "ms-ssim-rgb": [0..1], "bpp": [bits/pixel],
                   "encoding_time": [s], "decoding_time": [s]},
       "qualities": [setting per entry]}          # ncodec's addition, ignored by CompressAI

  Each list has one entry per setting (lowest quality first): the mean over the images, as
  CompressAI's ``eval_model`` and ``bench`` report. A value that is not finite is written as
  null: MS-SSIM when some image is under 161 px on its shorter side (its mean is only given
  when every image has one), PSNR when a setting is lossless on some image (inf).
- ``per_image.csv``: one row per (codec, setting, image).
- ``rd.png``: PSNR-RGB and MS-SSIM (dB) against bpp, one curve per codec.
- ``bdrate.md``: BD-rate of the learned codec against each baseline (PSNR and MS-SSIM).

Images are read as 8-bit RGB (grayscale repeated to three channels, so every codec sees and
is scored on the same RGB image) and held in memory for the run. Records come out in a fixed
order: the learned codec, then the baselines as given; settings ascending; images in the
order given.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch

from ncodec.eval import metrics
from ncodec.eval.baselines import DEFAULT_BASELINES, Baseline, get_baseline

__all__ = ["Curve", "EvalResults", "Record", "bd_rows", "evaluate", "load_rgb", "write_report"]

RESULT_KEYS = ("psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time")


@dataclass(frozen=True)
class Record:
    """One image coded at one setting. Times in seconds; ``ms_ssim_rgb`` is NaN for images
    under 161 px on their shorter side; ``psnr_rgb`` is inf when the image came back exact."""

    codec: str
    quality: float
    file: str
    height: int
    width: int
    bytes: int
    bpp: float
    psnr_rgb: float
    ms_ssim_rgb: float
    encoding_time: float
    decoding_time: float


@dataclass
class Curve:
    """The records of one codec over its settings.

    Attributes:
        key: output file stem: the ncodec codec name, or the baseline's name ("jpeg").
        name: display name, the JSON's "name" ("ncodec bmshj2018-factorized", "JPEG").
        description: library, version and settings, the JSON's "description".
        learned: True for the ncodec codec, False for a baseline.
        qualities: settings, lowest quality first.
        records: every (setting, image) record, settings ascending then images in order.
    """

    key: str
    name: str
    description: str
    learned: bool
    qualities: list[float]
    records: list[Record] = field(default_factory=list)

    def summary(self) -> dict[str, list[float]]:
        """Per-setting means over the images, in CompressAI's keys (see the module doc)."""
        out: dict[str, list[float]] = {k: [] for k in RESULT_KEYS}
        for q in self.qualities:
            rows = [r for r in self.records if r.quality == q]
            if not rows:
                raise ValueError(f"{self.key}: no records at setting {q}")
            ms = [r.ms_ssim_rgb for r in rows]
            out["psnr-rgb"].append(float(np.mean([r.psnr_rgb for r in rows])))
            # A mean over only the large images would pair with a bpp over all of them.
            out["ms-ssim-rgb"].append(float(np.mean(ms)) if all(math.isfinite(v) for v in ms) else math.nan)
            out["bpp"].append(float(np.mean([r.bpp for r in rows])))
            out["encoding_time"].append(float(np.mean([r.encoding_time for r in rows])))
            out["decoding_time"].append(float(np.mean([r.decoding_time for r in rows])))
        return out

    def to_compressai(self) -> dict[str, Any]:
        """The JSON document in CompressAI's results schema (non-finite values as None)."""
        results = {k: [v if math.isfinite(v) else None for v in vals] for k, vals in self.summary().items()}
        return {"name": self.name, "description": self.description, "results": results,
                "qualities": list(self.qualities)}


@dataclass
class EvalResults:
    """Everything :func:`evaluate` measured: the learned codec's curve first, then the baselines'."""

    images: list[Path]
    curves: list[Curve]

    @property
    def codec(self) -> Optional[Curve]:
        """The (first) learned codec's curve (None if the run had none)."""
        return next((c for c in self.curves if c.learned), None)

    @property
    def codecs(self) -> list[Curve]:
        """Every learned codec's curve, in the order given."""
        return [c for c in self.curves if c.learned]

    @property
    def baselines(self) -> list[Curve]:
        return [c for c in self.curves if not c.learned]

    @property
    def records(self) -> list[Record]:
        return [r for c in self.curves for r in c.records]


def load_rgb(path: str | Path) -> torch.Tensor:
    """An image file as uint8 RGB ``[3, H, W]`` (grayscale repeated to 3 channels)."""
    from ncodec.io import read_image

    x = read_image(path)
    return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def _record(key: str, quality: float, path: Path, x: torch.Tensor, data: bytes, recon: Any,
            enc: float, dec: float) -> Record:
    _, h, w = x.shape
    return Record(codec=key, quality=quality, file=str(path), height=h, width=w, bytes=len(data),
                  bpp=metrics.bpp(len(data), h, w), psnr_rgb=metrics.psnr_rgb(x, recon),
                  ms_ssim_rgb=metrics.ms_ssim_rgb(x, recon), encoding_time=enc, decoding_time=dec)


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously: wait for them so the timer measures the work.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _codec_curve(name: str, qualities: Sequence[int], device: str) -> Curve:
    import ncodec
    from ncodec.codecs import registry

    info = registry.describe(name)
    if info.modality != "image":
        raise ValueError(f"codec {name!r} is an {info.modality} codec; eval takes image codecs")
    qs = sorted(dict.fromkeys(int(q) for q in (qualities or info.qualities)))
    bad = [q for q in qs if q not in info.qualities]
    if bad:
        raise ValueError(f"{name} has qualities {list(info.qualities)}, not {bad}")
    desc = (f"ncodec {ncodec.__version__} {name}, weights: {info.weights}; device {device}; "
            "bpp from whole .ncb files (container included)")
    return Curve(key=name, name=f"ncodec {name}", description=desc, learned=True, qualities=list(qs))


def _run_codec(curve: Curve, images: list[tuple[Path, torch.Tensor]], device: str, bar: Any) -> None:
    import ncodec

    dev = torch.device(device)
    for q in curve.qualities:
        codec = ncodec.load(curve.key, quality=q, device=device)
        # One small image first, so lazy set-up (kernels, tables) is not timed on image 1.
        codec.decompress(codec.compress(torch.full((3, 64, 64), 128, dtype=torch.uint8)))
        for path, x in images:
            bar.set_postfix_str(f"{curve.key} q={q}", refresh=False)
            _sync(dev)
            start = time.perf_counter()
            data = codec.compress(x)
            enc = time.perf_counter() - start
            start = time.perf_counter()
            x_hat = codec.decompress(data)
            _sync(dev)
            dec = time.perf_counter() - start
            if tuple(x_hat.shape) != tuple(x.shape):
                raise RuntimeError(f"{curve.key} decoded {tuple(x_hat.shape)} from {path}, expected {tuple(x.shape)}")
            curve.records.append(_record(curve.key, q, path, x, data, metrics.to_uint8(x_hat), enc, dec))
            bar.update(1)
        del codec


def _run_baseline(curve: Curve, baseline: Baseline, images: list[tuple[Path, torch.Tensor]], bar: Any) -> None:
    arrays = [(path, x, x.permute(1, 2, 0).contiguous().numpy()) for path, x in images]
    baseline.run(np.full((64, 64, 3), 128, dtype=np.uint8), curve.qualities[0])  # untimed warm-up
    for q in curve.qualities:
        for path, x, hwc in arrays:
            bar.set_postfix_str(f"{curve.key} q={q:g}", refresh=False)
            coded = baseline.run(hwc, q)
            recon = torch.from_numpy(np.array(coded.decoded)).permute(2, 0, 1)
            curve.records.append(_record(curve.key, q, path, x, coded.data, recon,
                                         coded.encoding_time, coded.decoding_time))
            bar.update(1)


def evaluate(images: Sequence[str | Path], codec_name: Optional[str | Sequence[str]], qualities: Optional[Sequence[int]] = None,
             baselines: Iterable[str] = DEFAULT_BASELINES, device: str = "cpu",
             progress: Optional[bool] = None) -> EvalResults:
    """Code every image with the ncodec codec at each quality and with each baseline at each
    of its default settings, and measure each result.

    Args:
        images: image files (PNG, JPEG, WebP; 8-bit RGB or grayscale), coded in this order.
        codec_name: ncodec image codec (registry name), or several; None to run only the
            baselines.
        qualities: the codec's qualities to run; None or empty for all of them.
        baselines: baseline names (see :data:`ncodec.eval.baselines.BASELINES`).
        device: where the learned codec runs ("cpu", "cuda"); baselines run on the CPU.
        progress: a progress bar on stderr; None shows it only on a terminal.

    Raises:
        ValueError: no images, an unreadable image, an unknown codec, quality or baseline, or
            a baseline whose library is missing (checked before any coding).
    """
    paths = [Path(p) for p in images]
    if not paths:
        raise ValueError("no images to evaluate")
    coders = [get_baseline(name) for name in dict.fromkeys(baselines)]
    curves: list[Curve] = []
    names = [codec_name] if isinstance(codec_name, str) else list(codec_name or ())
    for name in dict.fromkeys(names):
        curves.append(_codec_curve(name, qualities or (), device))
    curves += [Curve(key=b.name, name=b.label, description=b.describe(), learned=False,
                     qualities=list(b.qualities)) for b in coders]
    if not curves:
        raise ValueError("nothing to evaluate: no codec and no baselines")
    loaded = [(p, load_rgb(p)) for p in paths]  # all read first: a bad file fails before any work

    from tqdm import tqdm

    total = len(loaded) * sum(len(c.qualities) for c in curves)
    with tqdm(total=total, desc="eval", unit="run", file=sys.stderr,
              disable=None if progress is None else not progress) as bar:
        for curve in curves:
            if curve.learned:
                _run_codec(curve, loaded, device, bar)
            else:
                _run_baseline(curve, next(b for b in coders if b.name == curve.key), loaded, bar)
    return EvalResults(images=paths, curves=curves)


# --------------------------------------------------------------------------- BD-rate table

def _bd(fn: Any, anchor: dict, test: dict, key: str, to_db: bool) -> float | str:
    """One BD figure, or the reason (a short string) it cannot be computed."""
    def quality(res: dict) -> list[float]:
        vals = res[key]
        return [metrics.ms_ssim_db(v) for v in vals] if to_db else vals

    if any(math.isnan(v) for v in anchor[key] + test[key]):
        return "n/a: no MS-SSIM (images under 161 px)" if to_db else "n/a: missing values"
    try:
        return fn(anchor["bpp"], quality(anchor), test["bpp"], quality(test))
    except ValueError as exc:
        return f"n/a: {exc}"


def bd_rows(results: EvalResults) -> list[dict[str, Any]]:
    """Per learned codec and baseline: BD-rate (%) of the codec against the baseline on
    PSNR-RGB and on MS-SSIM in dB, and BD-PSNR (dB). Each value is a float, or a string
    saying why it is missing."""
    from ncodec.eval.bdrate import bd_psnr, bd_rate

    rows = []
    for codec in results.codecs:
        test = codec.summary()
        for base in results.baselines:
            anchor = base.summary()
            rows.append({"codec": codec.key, "codec_name": codec.name, "baseline": base.key, "name": base.name,
                         "bd_rate_psnr": _bd(bd_rate, anchor, test, "psnr-rgb", False),
                         "bd_rate_ms_ssim": _bd(bd_rate, anchor, test, "ms-ssim-rgb", True),
                         "bd_psnr": _bd(bd_psnr, anchor, test, "psnr-rgb", False)})
    return rows


def _fmt(value: float | str, unit: str) -> str:
    return value.replace("|", "/") if isinstance(value, str) else f"{value:+.2f}{unit}"


def bdrate_markdown(results: EvalResults) -> str:
    """The ``bdrate.md`` text: one row per baseline."""
    if not results.codecs:
        return "# BD-rate\n\nNo learned codec in this run: nothing to compare.\n"
    lines = [
        f"# BD-rate of {', '.join(c.name for c in results.codecs)} against each baseline",
        "",
        f"{len(results.images)} image(s). Bjøntegaard deltas with PCHIP interpolation over log-rate, on the "
        "quality interval both curves cover (per-setting means of bpp from whole files). "
        "BD-rate < 0: the learned codec needs fewer bits for the same quality. "
        "BD-PSNR > 0: it is better at the same rate.",
        "",
        "| codec | baseline | BD-rate (PSNR-RGB) | BD-rate (MS-SSIM dB) | BD-PSNR |",
        "|---|---|---|---|---|",
    ]
    for row in bd_rows(results):
        lines.append(f"| {row['codec_name']} | {row['name']} | {_fmt(row['bd_rate_psnr'], ' %')} | "
                     f"{_fmt(row['bd_rate_ms_ssim'], ' %')} | {_fmt(row['bd_psnr'], ' dB')} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- writing

def csv_text(records: Sequence[Any]) -> str:
    """Dataclass records as CSV (a header of their field names; floats in round-trip form)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not records:
        return ""
    names = [f.name for f in fields(records[0])]
    writer.writerow(names)
    for r in records:
        row = asdict(r)
        writer.writerow([repr(row[n]) if isinstance(row[n], float) else row[n] for n in names])
    return buf.getvalue()


REPORT_MANIFEST = ".ncodec-report"
"""File in a report folder listing the files the report wrote (JSON list of names)."""


def prepare_report_dir(out_dir: str | Path, *, force: bool = False) -> Path:
    """Make ``out_dir`` ready for a new report, before any work: a new or empty folder is
    used as it is; a folder with files in it needs ``force``, and then the files that the
    previous report wrote (its :data:`REPORT_MANIFEST`) are removed, so that no stale
    file is left beside the new report. Nothing else in the folder is touched.

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


def write_report(results: EvalResults, out_dir: str | Path) -> dict[str, Path]:
    """Write the JSON files, ``per_image.csv``, ``rd.png`` and ``bdrate.md`` into ``out_dir``
    (created if needed; files of the same names are replaced). Returns {what: path}, with
    one "json:<key>" entry per codec."""
    from ncodec.eval.plots import plot_rd
    from ncodec.io import write_atomic

    out = report_dir(out_dir)
    paths: dict[str, Path] = {}
    docs = []
    for curve in results.curves:
        doc = curve.to_compressai()
        docs.append(doc)
        path = out / f"{curve.key}.json"
        write_atomic(path, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode(), force=True)
        paths[f"json:{curve.key}"] = path
    paths["per_image"] = out / "per_image.csv"
    write_atomic(paths["per_image"], csv_text(results.records).encode(), force=True)
    learned = ", ".join(c.name for c in results.codecs) or "baselines"
    title = f"{learned} - {len(results.images)} image(s)"
    paths["rd"] = out / "rd.png"
    write_atomic(paths["rd"], plot_rd(docs, title=title, dashed={c.name for c in results.baselines}), force=True)
    paths["bdrate"] = out / "bdrate.md"
    write_atomic(paths["bdrate"], bdrate_markdown(results).encode(), force=True)
    record_report(out, paths)
    return paths
