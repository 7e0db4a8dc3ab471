#!/usr/bin/env python
"""Writes ``report.md`` for a run of ``tools/run_demo.py`` from what that run left on disk.

    python tools/demo_report.py [OUT]          (default: work_dirs/demo)

Reads ``OUT/summary.json`` (phases, commands, times), ``OUT/metrics/*.json`` (``tools/test.py
--metrics-out``), each training run's ``vis_data/scalars.json`` (MMEngine's LocalVisBackend) and the
held-out predictions ``tools/test.py --out`` dumped and the segmentations ``--show-dir`` drew. Writes ``OUT/report.md``, ``OUT/results.json``
(the headline numbers) and the figures under ``OUT/report/``. Every number comes from those files.
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import platform
import shutil
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES = 3  # held-out images shown per task
TOP_K = 5  # detections drawn per image
DRAW_SIDE = 640  # held-out detections are drawn at this long side (pixels)
TRAIN_RUNS = (("stage1", "pretraining stage 1"), ("stage2", "pretraining stage 2"),
              ("ovd", "open-vocabulary detector"), ("ovseg", "segmentation decoder"))


# ------------------------------------------------------------------------------------- reading
def load_metrics(out: Path, name: str) -> dict:
    path = out / "metrics" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def latest_run_dir(work_dir: Path, marker: str) -> Path | None:
    """Newest ``work_dir/<timestamp>`` that holds ``marker`` (MMEngine makes one per run)."""
    runs = sorted(p for p in work_dir.glob("[0-9]*_[0-9]*") if (p / marker).exists())
    return runs[-1] if runs else None


def load_scalars(work_dir: Path) -> list[dict]:
    """The training log's scalar records (one per logging interval)."""
    run = latest_run_dir(work_dir, "vis_data/scalars.json")
    if run is None:
        return []
    lines = (run / "vis_data" / "scalars.json").read_text(encoding="utf-8").splitlines()
    return [r for r in (json.loads(line) for line in lines if line.strip()) if "loss" in r]


def example_images(work_dir: Path, count: int = EXAMPLES) -> list[Path]:
    run = latest_run_dir(work_dir, "examples")
    return sorted((run / "examples").iterdir())[:count] if run is not None else []


def draw_detections(out: Path, classes: list[str], count: int = EXAMPLES, top_k: int = TOP_K) -> list[Path]:
    """Ground truth (left) and the detector's ``top_k`` boxes with scores (right) on the first held-out
    images, from the predictions ``tools/test.py --out`` dumped during the evaluation. Top-k rather
    than a score threshold: a briefly trained detector's scores are low but still ranked."""
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmdet.visualization.palette import get_palette
    from mmengine.structures import InstanceData
    from PIL import Image

    dump = out / "ovd" / "predictions.pkl"
    if not dump.is_file():
        return []
    with open(dump, "rb") as f:
        predictions = sorted(pickle.load(f), key=lambda s: s["img_path"])[:count]
    coco = json.loads((out / "world" / "det" / "instances_val_all.json").read_text(encoding="utf-8"))
    label_of = {c["id"]: classes.index(c["name"]) for c in coco["categories"]}
    image_id = {im["file_name"]: im["id"] for im in coco["images"]}
    name = "demo_report"
    visualizer = (DetLocalVisualizer.get_instance(name) if DetLocalVisualizer.check_instance_created(name)
                  else DetLocalVisualizer.get_instance(name, line_width=2))
    visualizer.dataset_meta = {"classes": classes, "palette": get_palette("random", len(classes))}
    paths = []
    for pred in predictions:
        anns = [a for a in coco["annotations"] if a["image_id"] == image_id[Path(pred["img_path"]).name]]
        sample = DetDataSample()
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]).reshape(-1, 4),
            labels=torch.tensor([label_of[a["category_id"]] for a in anns], dtype=torch.long))
        inst = pred["pred_instances"]
        top = inst["scores"].argsort(descending=True)[:top_k]
        sample.pred_instances = InstanceData(bboxes=inst["bboxes"][top], labels=inst["labels"][top],
                                             scores=inst["scores"][top])
        path = out / "report" / f"ovd_{Path(pred['img_path']).stem}.png"
        image = Image.open(pred["img_path"]).convert("RGB")
        # World images are 160-512 px: drawn at that size, MMDetection's labels (13 px at most) blur
        # into the boxes; upscaled to DRAW_SIDE they stay readable.
        zoom = max(1.0, DRAW_SIDE / max(image.size))
        image = np.asarray(image.resize((round(image.width * zoom), round(image.height * zoom)), Image.BICUBIC))
        sample.gt_instances.bboxes = sample.gt_instances.bboxes * zoom
        sample.pred_instances.bboxes = sample.pred_instances.bboxes * zoom
        visualizer.add_datasample("ovd", image, sample, draw_gt=True, pred_score_thr=0.0, out_file=str(path))
        paths.append(path)
    return paths


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------- figures
def plot_losses(out: Path, runs: dict[str, list[dict]]) -> Path:
    fig, axes = plt.subplots(1, len(TRAIN_RUNS), figsize=(4.2 * len(TRAIN_RUNS), 3.4))
    for ax, (key, title) in zip(axes, TRAIN_RUNS):
        records = runs.get(key) or []
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        if not records:
            ax.text(0.5, 0.5, "no log", ha="center", va="center", transform=ax.transAxes)
            continue
        steps = [r.get("iter", r.get("step")) for r in records]
        ax.plot(steps, [r["loss"] for r in records], color="black", linewidth=2, label="loss")
        terms = sorted({k for r in records for k in r if k.startswith("loss_")})
        for term in terms:
            ax.plot(steps, [r.get(term, float("nan")) for r in records], linewidth=1, label=term[5:])
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    fig.tight_layout()
    path = out / "report" / "loss_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_per_class(out: Path, classes: list[str], novel: set[str], det: dict, box: dict) -> Path:
    """Per-kind detection AP and BoxClass top-1 (stage 2); novel kinds in orange."""
    panels = (("open-vocabulary detector: AP per kind", [det.get(f"coco/{c}_precision") for c in classes]),
              ("BoxClass top-1 per kind (stage 2)", [box.get(f"boxclass/{c}_top1") for c in classes]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.32 * len(classes) + 1.4), sharey=True)
    colours = ["tab:orange" if c in novel else "tab:blue" for c in classes]
    for ax, (title, values) in zip(axes, panels):
        heights = [0.0 if v is None or math.isnan(v) else max(v, 0.0) for v in values]
        ax.barh(range(len(classes)), heights, color=colours)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, max(1e-3, max(heights, default=0)) * 1.15)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(classes)), [f"{c} (novel)" if c in novel else c for c in classes], fontsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout()
    path = out / "report" / "per_class.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------- report
def headline(out: Path) -> dict:
    """The numbers of the results table, keyed by phase; None where a metric is missing."""
    m = {name: load_metrics(out, name) for name in
         ("fgovd_stage1", "fgovd_stage2", "boxclass_stage1", "boxclass_stage2", "boxclass_fine_stage1",
          "boxclass_fine_stage2", "ovd", "ovd_detector_only", "ovd_ensemble_gain", "ovseg")}
    gain = m["ovd_ensemble_gain"].get("novel", {})
    return {
        "fgovd_hard": {s: m[f"fgovd_stage{i}"].get("fgovd/hard") for i, s in ((1, "stage1"), (2, "stage2"))},
        "boxclass": {s: {k: m[f"boxclass_stage{i}"].get(f"boxclass/{k}") for k in ("top1", "base_top1", "novel_top1")}
                     for i, s in ((1, "stage1"), (2, "stage2"))},
        "boxclass_fine": {s: m[f"boxclass_fine_stage{i}"].get("boxclass/top1") for i, s in ((1, "stage1"), (2, "stage2"))},
        "ovd": {k: m["ovd"].get(f"coco/{k}") for k in ("base_ap50", "novel_ap50")},
        "ovd_detector_only": {k: m["ovd_detector_only"].get(f"coco/{k}") for k in ("base_ap50", "novel_ap50")},
        "ovd_ensemble_gain": {k: gain.get(k) for k in ("diff", "low", "high")},
        "ovseg": {k: m["ovseg"].get(k) for k in ("mIoU_seen", "mIoU_unseen", "hIoU", "mIoU", "aAcc")},
    }


def loss_span(records: list[dict]) -> str:
    return f"{records[0]['loss']:.2f} → {records[-1]['loss']:.2f}" if records else "—"


def write_report(out: Path) -> Path:
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    world = json.loads((out / "world" / "world.json").read_text(encoding="utf-8"))
    classes, novel = world["classes"], set(world["novel_classes"])
    (out / "report").mkdir(parents=True, exist_ok=True)

    runs = {key: load_scalars(out / key) for key, _ in TRAIN_RUNS}
    results = headline(out)
    results["losses"] = {key: [runs[key][0]["loss"], runs[key][-1]["loss"]] if runs[key] else None
                         for key, _ in TRAIN_RUNS}
    loss_png = plot_losses(out, runs)
    class_png = plot_per_class(out, classes, novel, load_metrics(out, "ovd"), load_metrics(out, "boxclass_stage2"))
    shown = {"ovd": draw_detections(out, classes), "ovseg": []}
    for image in example_images(out / "ovseg"):
        target = out / "report" / f"ovseg_{image.name}"
        shutil.copyfile(image, target)
        shown["ovseg"].append(target)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    r, scale = results, summary["scale"]
    splits = world["splits"]
    chance_box = 1 / len(classes)
    lines = [
        "# fgclip2_det demo report", "",
        f"`tools/run_demo.py`{' --quick' if summary['mode'] == 'quick' else ''}: {summary['mode']} run, "
        f"{summary['seconds'] / 60:.1f} min on {platform.machine()} with {_cores()} CPU cores "
        f"(Python {platform.python_version()}, torch {_version('torch')}, mmdet {_version('mmdet')}).", "",
        f"A tiny FG-CLIP 2 (2 blocks, 64 wide) built from random weights, pretrained and then used for box "
        f"classification, FG-OVD, detection and segmentation on a synthetic world of {world['num_images']} "
        f"images ({splits['train']} train, {splits['val']} held-out val; {len(classes)} kinds, of which "
        f"{', '.join(sorted(novel))} are novel: never boxed for the detector, ignored for the segmentor). "
        "The numbers show that every stage runs and learns on this machine, not what FG-CLIP 2 can do: for "
        "that, use the released weights and real data (README, quick start).", "",
        "## Results (held-out val split)", "",
        "| phase | metric | value |", "|---|---|---|",
        f"| pretraining stage 1 ({scale['stage1_iters']} it × {scale['stage1_batch']}) | loss first → last | "
        f"{loss_span(runs['stage1'])} |",
        f"| pretraining stage 2 ({scale['stage2_iters']} it × {scale['stage2_batch']}) | loss first → last | "
        f"{loss_span(runs['stage2'])} |",
        f"| FG-OVD hard (1 attribute changed; chance {1 / 11:.3f}) | accuracy, stage 1 → stage 2 | "
        f"{fmt(r['fgovd_hard']['stage1'])} → **{fmt(r['fgovd_hard']['stage2'])}** |",
        f"| BoxClass ({len(classes)} kinds; chance {chance_box:.3f}) | top-1, stage 1 → stage 2 | "
        f"{fmt(r['boxclass']['stage1']['top1'])} → **{fmt(r['boxclass']['stage2']['top1'])}** |",
        f"| BoxClass | base / novel top-1, stage 2 | {fmt(r['boxclass']['stage2']['base_top1'])} / "
        f"{fmt(r['boxclass']['stage2']['novel_top1'])} |",
        f"| BoxClass ({len(classes) * len(world['attributes']['colour'])} colour × kind classes; chance "
        f"{chance_box / len(world['attributes']['colour']):.3f}) | top-1, stage 1 → stage 2 | "
        f"{fmt(r['boxclass_fine']['stage1'])} → **{fmt(r['boxclass_fine']['stage2'])}** |",
        f"| open-vocabulary detector ({scale['det_iters']} it × {scale['det_batch']}, base kinds boxed) | "
        f"AP50 base / novel | {fmt(r['ovd']['base_ap50'])} / **{fmt(r['ovd']['novel_ap50'])}** |",
        f"| detector alone (no FG-CLIP 2 ensemble) | AP50 base / novel | {fmt(r['ovd_detector_only']['base_ap50'])} "
        f"/ {fmt(r['ovd_detector_only']['novel_ap50'])} |",
        f"| ensemble − detector alone | novel AP50, 95% paired-bootstrap interval | "
        f"{fmt(r['ovd_ensemble_gain']['diff'])} [{fmt(r['ovd_ensemble_gain']['low'])}, "
        f"{fmt(r['ovd_ensemble_gain']['high'])}] |",
        f"| segmentation decoder ({scale['seg_iters']} it × {scale['seg_batch']}, unseen kinds ignored) | "
        f"mIoU seen / unseen / hIoU (%) | {fmt(r['ovseg']['mIoU_seen'], 1)} / **{fmt(r['ovseg']['mIoU_unseen'], 1)}** "
        f"/ {fmt(r['ovseg']['hIoU'], 1)} |",
        f"| segmentation decoder | mIoU / pixel accuracy (%) | {fmt(r['ovseg']['mIoU'], 1)} / "
        f"{fmt(r['ovseg']['aAcc'], 1)} |", "",
        "## Loss curves", "", f"![loss curves]({loss_png.relative_to(out)})", "",
        "## Per kind", "",
        "Detection AP (COCO AP@[.5:.95] of `OVCocoMetric(classwise=True)`) and BoxClass top-1 of the stage-2 "
        "model; novel kinds in orange.", "", f"![per-class results]({class_png.relative_to(out)})", "",
        "## Held-out detections", "",
        f"Ground truth on the left; on the right the detector's {TOP_K} highest-scoring boxes with their scores, "
        "from the predictions its evaluation above dumped (`tools/test.py --out`), drawn with MMDetection's "
        "`DetLocalVisualizer`.", "",
        *[f"![{p.stem}]({p.relative_to(out)})" for p in shown["ovd"]], "",
        "## Held-out segmentations", "",
        "Drawn by `tools/test.py --show-dir` (MMDetection's `DetVisualizationHook`) with the evaluated "
        "checkpoint: ground-truth label map on the left, the decoder's prediction on the right, each region "
        "named on the image.", "",
        *[f"![{p.stem}]({p.relative_to(out)})" for p in shown["ovseg"]], "",
        "## Phases", "", "Each phase is a user-facing tool; its full log is under `logs/`, its config under "
        "`configs/` (a few lines inheriting from the repository's config).", "",
        "| # | phase | seconds | command |", "|---|---|---|---|",
        *[f"| {i} | {p['name']} | {p['seconds']:.0f} | `{p['command']}` |"
          for i, p in enumerate(summary["phases"], 1)], "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="work_dirs/demo", help="the run's output folder")
    args = parser.parse_args(argv)
    if not (Path(args.out) / "summary.json").is_file():
        raise SystemExit(f"demo_report.py: error: {args.out}/summary.json not found: run tools/run_demo.py first")
    print(write_report(Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
