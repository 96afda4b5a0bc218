"""Accept or refuse the weights a GPU training call returned (run here, after the call).

Puts the shipped weights that ``pack.py`` moved aside back, joins the returned
``weights.partNN`` pieces, and evaluates the candidate beside the shipped weights of its model
on the job's validation data (first ``limit`` files):

- images: both codecs at every quality on the validation photos; the candidate wins if its
  BD-rate against the shipped weights on PSNR-RGB is below ``-margin`` % (fewer bits for the
  same quality, by more than re-exporting alone moves it: a 2-step dry run measured -0.36 %);
- speech: both codecs at every bitrate on the held-out utterances; the candidate wins if its
  mean PESQ-WB over the bitrates is higher by more than ``margin`` / 100;
- video: both codecs at every quality on the held-out clips (their first ``frames`` frames,
  the job's ``accept``); the candidate wins if its BD-rate against the shipped weights on
  PSNR-YUV is below ``-margin`` %.

A winner replaces ``ncodec/weights/<model>.safetensors``, its training record keeping the
shipped weights' record under ``history``; the replaced file moves to
``ncodec/weights/previous/<model>@<fingerprint>.safetensors``, where decoders find it for the
files it wrote (with its token context model beside it, for an audio codec that has one; the
new weights then get a context model of their own, retrained here). Either way a line goes to
``benchmarks/results/gpu_job_history.md``. ``--no-replace`` only reports (the dry run).

    .venv/bin/python benchmarks/gpu_job/accept.py --returned /work/.device/.../files
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "ncodec" / "weights"
HISTORY = ROOT / "benchmarks" / "results" / "gpu_job_history.md"


def restore(aside: Path) -> int:
    """Move every weights file waiting in ``aside`` back into the package; returns how many."""
    moved = 0
    for f in sorted(aside.rglob("*.safetensors")) if aside.is_dir() else []:
        target = WEIGHTS / f.relative_to(aside)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(f), target)
        moved += 1
    return moved


def join_parts(returned: Path, dst: Path) -> Path:
    parts = sorted(returned.glob("weights.part*"))
    if not parts:
        raise SystemExit(f"{returned}: no weights.partNN files (did the call finish? see its train.log)")
    with open(dst, "wb") as f:
        for part in parts:
            f.write(part.read_bytes())
    return dst


def validation_files(job: dict, val: str | None, limit: int) -> list[Path]:
    from ncodec.io import IMAGE_SUFFIXES
    from ncodec.train.audio_data import read_file_list

    source = Path(val) if val else ROOT / job["accept"]["val"]
    if job["data"]["kind"] == "video":
        from ncodec.train.video import read_clip_list

        return [p for p, _ in read_clip_list(source, ROOT / job["data"]["src"])][:limit]
    if job["data"]["kind"] == "images":
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        files = read_file_list(source)
    return files[:limit]


def compare(job: dict, shipped: Path, candidate: Path, files: list[Path], margin: float) -> dict:
    """The candidate against the shipped weights: ``better`` and the figures that decided."""
    from ncodec.eval import bdrate

    if job["data"]["kind"] == "images":
        from ncodec.eval.image import evaluate

        results = evaluate(files, [str(shipped), str(candidate)], baselines=[], progress=False)
        old, new = (c.summary() for c in results.codecs)
        bd = bdrate.bd_rate(old["bpp"], old["psnr-rgb"], new["bpp"], new["psnr-rgb"])
        return {"better": bd < -margin, "bd_rate_psnr_vs_shipped": round(bd, 2),
                "shipped": {"bpp": _r(old["bpp"]), "psnr": _r(old["psnr-rgb"])},
                "candidate": {"bpp": _r(new["bpp"]), "psnr": _r(new["psnr-rgb"])}}
    if job["data"]["kind"] == "video":
        from ncodec.eval.video import evaluate as evaluate_video

        results = evaluate_video(files, [str(shipped), str(candidate)], baselines=[], progress=False,
                                 frames=job["accept"].get("frames", 32))
        old, new = (c.summary() for c in results.codecs)
        bd = bdrate.bd_rate(old["kbps"], old["psnr_yuv"], new["kbps"], new["psnr_yuv"])
        return {"better": bd < -margin, "bd_rate_psnr_yuv_vs_shipped": round(bd, 2),
                "shipped": {"kbps": _r(old["kbps"]), "psnr_yuv": _r(old["psnr_yuv"])},
                "candidate": {"kbps": _r(new["kbps"]), "psnr_yuv": _r(new["psnr_yuv"])}}
    from ncodec.eval.audio import evaluate

    results = evaluate(files, [str(shipped), str(candidate)], baselines=[], progress=False)
    old, new = (c.summary() for c in results.codecs)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    return {"better": mean(new["pesq"]) > mean(old["pesq"]) + margin / 100,
            "shipped": {"kbps": _r(old["kbps"]), "pesq": _r(old["pesq"]), "stoi": _r(old["stoi"])},
            "candidate": {"kbps": _r(new["kbps"]), "pesq": _r(new["pesq"]), "stoi": _r(new["stoi"])}}


def _r(values: list[float]) -> list[float]:
    return [round(v, 4) if math.isfinite(v) else v for v in values]


def archive(shipped: Path) -> Path:
    """Copy the shipped weights to ``ncodec/weights/previous/<arch>@<fingerprint>.safetensors``,
    so that the files they wrote still decode once they are replaced."""
    import ncodec
    from ncodec.codecs.shipped import PREVIOUS_DIR

    codec = ncodec.load(str(shipped))
    PREVIOUS_DIR.mkdir(parents=True, exist_ok=True)
    dst = PREVIOUS_DIR / f"{codec.name}@{codec.fingerprint}.safetensors"
    shutil.copyfile(shipped, dst)
    context = context_file(shipped)
    if context.is_file():  # an audio codec's token context model goes with its weights
        shutil.copyfile(context, context_file(dst))
    return dst


def context_file(weights: Path) -> Path:
    """Where an audio codec's token context model lies beside its weights."""
    return weights.with_name(f"{weights.stem}-context.safetensors")


def retrain_context(model: str, shipped: Path) -> None:
    """Fit the token context model to the codebooks of newly installed audio weights (the old
    one was trained on the replaced codebooks: a codec ignores it). About 15 CPU minutes."""
    out = context_file(shipped)
    cmd = [sys.executable, "-m", "ncodec.train.token_context", "--codec", model, "--out", str(out)]
    print("retraining the token context model:", " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)


def accepted_record(record: dict, job: dict, verdict: dict, files: int) -> dict:
    """The candidate's training record completed with what the device run could not know: the
    data's source (the run saw only the packed copy) and, for images, the validation measured
    here (``val.q<k>_bpp`` / ``_psnr``: the rate ladder ``ncodec models`` shows)."""
    record = dict(record, data=f"{job['data']['src']} (packed subset)")
    if job["data"]["kind"] == "images" and not record.get("val"):
        new = verdict["candidate"]
        record["val"] = {f"q{q}_{key}": value for q, (bpp, psnr) in enumerate(zip(new["bpp"], new["psnr"]), 1)
                         for key, value in (("bpp", bpp), ("psnr", psnr), ("images", files))}
        record["val_by"] = "benchmarks/gpu_job/accept.py"
    return record


def install(candidate: Path, shipped: Path, dst: Path,
            complete: Callable[[dict], dict] = lambda record: record) -> None:
    """Write the candidate to ``dst`` with the shipped record appended to its ``history`` (and
    ``complete`` applied to its record), after keeping the shipped file among the earlier
    weights (:func:`archive`)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ncodec.io import atomic_output
    from ncodec.models.weights import read_any_metadata

    archive(shipped)
    old = json.loads(read_any_metadata(shipped).get("training", "{}"))
    meta = read_any_metadata(candidate)
    record = complete(json.loads(meta.get("training", "{}")))
    record["history"] = old.pop("history", []) + [old]
    meta["training"] = json.dumps(record, sort_keys=True)
    with safe_open(str(candidate), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    with atomic_output(dst, force=True) as tmp:
        save_file(state, str(tmp), metadata=meta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--returned", type=Path, required=True, help="the folder the call's files came back in")
    p.add_argument("--bundle", type=Path, default=ROOT / ".gpujob")
    p.add_argument("--aside", type=Path, default=ROOT / ".gpujob-aside")
    p.add_argument("--val", help="validation folder or list (default: the job's)")
    p.add_argument("--limit", type=int, help="validation files (default: the job's)")
    p.add_argument("--margin", type=float, default=1.0,
                   help="how much better the candidate must be: BD-rate %% (images, video), PESQ-WB / 100 (speech)")
    p.add_argument("--no-replace", action="store_true", help="report only (a dry run)")
    args = p.parse_args()

    print(f"{restore(args.aside)} shipped weights put back")
    job = json.loads((args.returned / "job.json").read_text())
    candidate = join_parts(args.returned, args.bundle / "candidate.safetensors")
    shipped = WEIGHTS / f"{job['model']}.safetensors"
    files = validation_files(job, args.val, args.limit or job["accept"]["limit"])
    verdict = compare(job, shipped, candidate, files, args.margin)
    metrics = [json.loads(line) for line in (args.returned / "metrics.jsonl").read_text().splitlines() if line]
    last = metrics[-1] if metrics else {}
    # The time actually trained (the call may have given less than the packed budget).
    seconds = max((m["seconds"] for m in metrics if "seconds" in m), default=None)
    trained = f"{seconds / 60:.1f} min" if seconds is not None else f"{job.get('minutes')} min budget"
    replaced = verdict["better"] and not args.no_replace
    if replaced:
        had_context = context_file(shipped).is_file()
        install(candidate, shipped, shipped, lambda record: accepted_record(record, job, verdict, len(files)))
        if had_context:
            retrain_context(job["model"], shipped)
    line = (f"| {datetime.date.today()} | {job['model']} | {trained}, {last.get('step', '?')} steps "
            f"| {len(files)} files | {json.dumps({k: v for k, v in verdict.items() if k != 'better'})} | "
            f"{'replaced the shipped weights' if replaced else 'kept the shipped weights'} |")
    if not args.no_replace:
        if not HISTORY.exists():
            HISTORY.write_text("# GPU training job: what each call gave\n\n"
                               "| date | model | training | validation | figures | decision |\n|---|---|---|---|---|---|\n")
        with open(HISTORY, "a") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
