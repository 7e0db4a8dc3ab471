#!/usr/bin/env python
"""The main job on the embedded default: the whole toolkit, end to end, on a synthetic world.

    python tools/run_demo.py [--out work_dirs/demo] [--quick]

Phases, each a user-facing tool in its own process (a progress bar per phase, its log under
``OUT/logs/``), each config written to ``OUT/configs/`` as a small file that inherits (``_base_``)
from the repository's config and only moves paths and run lengths:

 1. ``tools/make_synthetic_world.py``     a synthetic world (``six_kinds``: train / val splits, 2 novel kinds)
 2. ``tools/make_tiny_checkpoint.py``     a tiny FG-CLIP 2 with random weights, official layout
 3. ``tools/train.py`` + ``tools/export_checkpoint.py``   pretraining stage 1, then stage 2
 4. ``tools/test.py``                     FG-OVD hard and BoxClass for both stages
 5. ``tools/train.py`` + ``tools/test.py`` the open-vocabulary detector (base kinds boxed only)
 6. ``tools/train.py`` + ``tools/test.py`` the segmentation decoder (unseen kinds ignored), then
                                           ``tools/test.py --show-dir`` on 3 held-out images
 7. ``tools/demo_report.py``              ``OUT/report.md``: results table, loss curves, per-class
                                           bars, held-out detections and segmentations

A phase starts once the phases whose outputs it reads are done (``Phase.after``), two at a time
(``Scale.jobs``); a training phase keeps every core and nothing new starts beside it. Each runs in
a process forked from one that imported torch, MMEngine, MMDetection and the toolkit once (a
``multiprocessing`` forkserver), exactly as ``python TOOL ARGS`` would, without the 6 s of
imports. The default trains stage 2 for 1,600 it x 16 on 3,000 images and takes 17 to 18 minutes
on 2 CPU cores. ``--quick`` runs a 1,000-image world with stage 2 at 300 it x 16, enough to learn
the kind, in about 2.5 minutes; its detector and segmentor take a few iterations and only check
the plumbing.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.forkserver
import os
import re
import runpy
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from fgclip2_det.datasets.synthetic.vocab import world_profile  # noqa: E402

CONFIGS = REPO / "configs"
EXAMPLES = 3  # held-out segmentations drawn for the report

# Progress lines: MMEngine's "Iter(train) [ 40/300]" / "Epoch(test) [ 10/50]" for runner phases (the
# text-embedding bars inside them are ignored), tqdm's " 40/300 [" for the others.
RUNNER_PROGRESS = re.compile(r"(?:Iter\(train\)|\(test\))\s*\[\s*(\d+)/(\d+)\]")
TQDM_PROGRESS = re.compile(r"\b(\d+)/(\d+) \[")


@dataclass(frozen=True)
class Scale:
    """Sizes of one demo run: world, iterations, batches, and how often the logs report."""

    images: int
    stage1_iters: int
    stage2_iters: int
    det_iters: int
    seg_iters: int
    stage1_batch: int = 32
    stage2_batch: int = 16
    det_batch: int = 4
    seg_batch: int = 8
    log_interval: int = 10
    det_score_thr: float = 0.05  # the RoI head's test threshold (MMDetection's default)
    det_test_proposals: int | None = None  # RPN proposals per image at test; None: the config's (300)
    profile: str = "six_kinds"  # the world (fgclip2_det/datasets/synthetic/vocab.py PROFILES; docs/demo_world.md)
    init: str = "test"  # the random weights (tools/make_tiny_checkpoint.py --init)
    bootstrap_samples: int = 1000  # ensemble vs detector-only, paired bootstrap over images
    seed: int = 0  # of the world and of the random weights (the runners' own seed is the configs')
    jobs: int = 1  # phases at once, each when its inputs are ready; a non-training one gets cpu_count // jobs threads


# Stage 2 long enough for BoxClass over the kinds to pass 0.60 (0.469 at 400 x 16, 0.523 at 800, 0.584 at
# 1,200, 0.659 at 1,600; docs/demo_world.md); stage 1 short, as it barely moves stage 2's result. Two
# phases at once, as in QUICK: nothing starts beside a training phase, the evaluations pair up.
FULL = Scale(images=3000, stage1_iters=100, stage2_iters=1600, det_iters=300, seg_iters=250, jobs=2)
# Long enough a stage 2 that the kind is learnt on every seed measured (0.46-0.53 on seeds 0, 1 and 2 at
# 300 x 16; at 200 two seeds stay at chance; docs/demo_world.md), and a stage 1 that long (at 25 one seed
# stays at chance); short everywhere else: the detector and segmentor only check the plumbing.
QUICK = Scale(images=1000, stage1_iters=50, stage2_iters=300, det_iters=6, seg_iters=6, det_batch=2, seg_batch=2,
              det_score_thr=0.0,  # a few iterations score below 0.05: keep every box so AP50 exists
              det_test_proposals=100,  # a third of the RoI head's test work: 14 s less per detector test
              bootstrap_samples=50,
              jobs=2)  # the evaluations run on one thread each: two at a time


@dataclass
class Phase:
    name: str
    argv: list[str]            # arguments of the tool, run with this interpreter from the repository root
    metrics: str | None = None  # metrics JSON this phase writes (tools/test.py --metrics-out)
    runner: bool = True         # an MMEngine runner: progress from its log lines
    work_dir: str | None = None
    after: tuple[str, ...] = ()  # the phases whose outputs it reads (by name): it starts once they are done
    all_cores: bool = False      # trains: keeps every core, and nothing new starts beside it
    seconds: float = 0.0

    @property
    def command(self) -> str:
        return " ".join(["python", *(_short(a) for a in self.argv)])


class PhaseFailed(RuntimeError):
    pass


def _short(arg: str) -> str:
    """Paths inside the repository written relative to it, so the listed commands read like the README's."""
    try:
        return str(Path(arg).resolve().relative_to(REPO)) if arg.startswith("/") else arg
    except ValueError:
        return arg


# ------------------------------------------------------------------------------------- configs
def write_config(path: Path, base: Path, **overrides) -> str:
    """A config that inherits ``base`` and overrides top-level keys (merged as MMEngine merges)."""
    lines = [f"# Written by tools/run_demo.py: {base.relative_to(REPO)} with the demo's paths and lengths.",
             f"_base_ = [{str(base)!r}]", ""]
    lines += [f"{key} = {value!r}" for key, value in overrides.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def schedule(iters: int, warmup: int, final: dict) -> list[dict]:
    """Linear warm-up then ``final`` (cosine or poly) to the end of the run."""
    warmup = max(1, min(warmup, iters // 3))
    return [dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=warmup),
            dict(final, by_epoch=False, begin=warmup, end=iters)]


def log_interval(scale: Scale, iters: int) -> int:
    """The runner's logging interval: ``scale.log_interval``, or shorter in a run of a few
    iterations, so that its loss curve still has a first and a last point."""
    return max(1, min(scale.log_interval, iters // 3))


def pretrain_config(out: Path, stage: int, init: Path, scale: Scale) -> str:
    iters = scale.stage1_iters if stage == 1 else scale.stage2_iters
    batch = scale.stage1_batch if stage == 1 else scale.stage2_batch
    return write_config(
        out / "configs" / f"stage{stage}.py", CONFIGS / "pretrain" / f"fgclip2-stage{stage}_fgclip2-tiny_synthetic.py",
        model=dict(checkpoint=str(init)),
        train_dataloader=dict(batch_size=batch, collate_fn=dict(tokenizer=str(init)),
                              dataset=dict(data_root=f"{out / 'world'}/")),
        train_cfg=dict(max_iters=iters),
        param_scheduler=schedule(iters, 30, dict(type="CosineAnnealingLR", T_max=iters, eta_min=1e-5)),
        default_hooks=dict(logger=dict(interval=log_interval(scale, iters)),
                           checkpoint=dict(interval=iters, max_keep_ckpts=1)))


# The text classifiers' prompts in every demo phase: the region form the world's captions teach ("a
# circle"), encoded as in training (no attention mask). The 80 photo templates with the mask leave the
# tiny model at chance: BoxClass 0.128 against 0.423 with these (docs/demo_world.md, row S).
DEMO_PROMPTS = dict(templates_en=["a {}"], attention_mask=False)


def world_metainfo(scale: Scale, segmentation: bool = False) -> dict:
    """The classes of the profile's world (its drawn kinds), for the dataset configs; the tiny configs
    name all 14 kinds, a profile may draw fewer (vocab.py ``WorldProfile.kinds``)."""
    meta = world_profile(scale.profile).metainfo()
    if segmentation:
        return dict(classes=("background",) + meta["classes"], novel_classes=meta["novel_classes"])
    return meta


def eval_config(out: Path, name: str, base: Path, checkpoint: Path, scale: Scale, metainfo: dict | None = None,
                prompts: dict | None = None, **evaluator) -> str:
    dataset = dict(data_root=f"{out / 'world'}/") | ({"metainfo": metainfo} if metainfo else {})
    model = dict(backbone=dict(checkpoint=str(checkpoint))) | ({"text_classifier": prompts} if prompts else {})
    overrides = dict(model=model, test_dataloader=dict(dataset=dataset),
                     default_hooks=dict(logger=dict(interval=scale.log_interval)))
    if evaluator:
        overrides["test_evaluator"] = evaluator
    return write_config(out / "configs" / f"{name}.py", base, **overrides)


def det_test_cfg(scale: Scale) -> dict:
    rpn = {} if scale.det_test_proposals is None else dict(rpn=dict(max_per_img=scale.det_test_proposals))
    return dict(rcnn=dict(score_thr=scale.det_score_thr), **rpn)


def detector_config(out: Path, backbone: Path, scale: Scale) -> str:
    world, iters, meta = f"{out / 'world'}/", scale.det_iters, world_metainfo(scale)
    return write_config(
        out / "configs" / "ovd.py", CONFIGS / "ovd" / "fvit_fgclip2-tiny_ov-synthetic.py",
        model=dict(backbone=dict(checkpoint=str(backbone)), test_cfg=det_test_cfg(scale),
                   text_classifier=DEMO_PROMPTS,
                   roi_head=dict(bbox_head=dict(num_classes=len(meta["classes"])))),
        train_dataloader=dict(batch_size=scale.det_batch, dataset=dict(data_root=world, metainfo=meta)),
        test_dataloader=dict(dataset=dict(data_root=world, metainfo=meta)),
        test_evaluator=dict(ann_file=world + "det/instances_val_all.json", classwise=True),
        val_dataloader=None, val_evaluator=None, val_cfg=None,   # evaluated once, by tools/test.py
        train_cfg=dict(max_iters=iters, val_interval=iters),
        param_scheduler=schedule(iters, 50, dict(type="CosineAnnealingLR", T_max=iters, eta_min=1e-5)),
        default_hooks=dict(logger=dict(interval=log_interval(scale, iters)),
                           checkpoint=dict(interval=iters, save_best=None),
                           visualization=dict(score_thr=0.3)))


def segmentor_config(out: Path, backbone: Path, scale: Scale) -> str:
    world, iters, meta = f"{out / 'world'}/", scale.seg_iters, world_metainfo(scale, segmentation=True)
    return write_config(
        out / "configs" / "ovseg.py", CONFIGS / "ovseg" / "cost-decoder_fgclip2-tiny_synthetic.py",
        model=dict(backbone=dict(checkpoint=str(backbone)), text_classifier=DEMO_PROMPTS),
        train_dataloader=dict(batch_size=scale.seg_batch, dataset=dict(data_root=world, metainfo=meta)),
        test_dataloader=dict(dataset=dict(data_root=world, metainfo=meta)),
        val_dataloader=None, val_evaluator=None, val_cfg=None,
        train_cfg=dict(max_iters=iters, val_interval=iters),
        param_scheduler=schedule(iters, 50, dict(type="PolyLR", eta_min=0.0, power=0.9)),
        default_hooks=dict(logger=dict(interval=log_interval(scale, iters)), checkpoint=dict(interval=iters)))


# ------------------------------------------------------------------------------------- phases
EVAL_LABELS = {"fgovd": "FG-OVD hard", "boxclass": "BoxClass", "boxclass_fine": "BoxClass colour x kind"}


def plan(out: Path, scale: Scale) -> list[Phase]:
    """Every phase of the run, in order, with the exact command a user would type and the phases whose
    outputs it reads. Phases that share a work dir follow one another (MMEngine names its log folder
    by the second it starts). The detector and segmentor train first, each with the cores to itself;
    their tests and the short evaluations of the exported models then run ``jobs`` at a time."""
    ckpt = out / "checkpoints"
    world = "synthetic world"
    phases = [
        Phase(world, ["tools/make_synthetic_world.py", str(out / "world"), "--images", str(scale.images),
                      "--seed", str(scale.seed), "--profile", scale.profile], runner=False),
        Phase("tiny FG-CLIP 2 (random init)", ["tools/make_tiny_checkpoint.py", str(ckpt / "init"),
                                               "--seed", str(scale.seed), "--init", scale.init], runner=False),
    ]
    init, exported = ckpt / "init", {}
    for stage in (1, 2):
        iters = scale.stage1_iters if stage == 1 else scale.stage2_iters
        work = out / f"stage{stage}"
        phases.append(Phase(f"pretrain stage {stage}", ["tools/train.py", pretrain_config(out, stage, init, scale),
                                                        "--work-dir", str(work)], work_dir=str(work),
                            after=(world, phases[-1].name), all_cores=True))
        export = ["tools/export_checkpoint.py", str(work / f"iter_{iters}.pth"), str(ckpt / f"stage{stage}")]
        phases.append(Phase(f"export stage {stage}", export + (["--copy-region-heads"] if stage == 1 else []),
                            runner=False, after=(phases[-1].name,)))
        init, exported[stage] = ckpt / f"stage{stage}", phases[-1].name
    tasks = (("ovd", "open-vocabulary detector", detector_config(out, ckpt / "stage2", scale), scale.det_iters),
             ("ovseg", "segmentation decoder", segmentor_config(out, ckpt / "stage2", scale), scale.seg_iters))
    for task, label, cfg, _ in tasks:  # both trainings first: each has the cores to itself, then the tests pair up
        phases.append(Phase(f"train {label}", ["tools/train.py", cfg, "--work-dir", str(out / task)],
                            work_dir=str(out / task), after=(exported[2],), all_cores=True))
    for task, label, cfg, iters in tasks:
        work, trained = out / task, f"train {label}"
        test_base = ["tools/test.py", cfg, str(work / f"iter_{iters}.pth")]
        test = [*test_base, "--work-dir", str(work)]
        metrics = str(out / "metrics" / f"{task}.json")
        if task == "ovd":  # the report draws the top boxes of these dumped predictions
            phases.append(Phase(f"test {label}", [*test, "--out", str(work / "predictions.pkl"),
                                                  "--metrics-out", metrics], metrics=metrics, work_dir=str(work),
                                after=(trained,)))
            # its own work dir, so that it runs beside the ensemble's test
            alone, alone_dir = str(out / "metrics" / "ovd_detector_only.json"), work / "detector_only"
            phases.append(Phase("test detector alone (no FG-CLIP 2 ensemble)",
                                [*test_base, "--work-dir", str(alone_dir), "--out",
                                 str(work / "predictions_detector_only.pkl"), "--metrics-out", alone,
                                 "--cfg-options", "model.roi_head.ensemble=None"], metrics=alone,
                                work_dir=str(alone_dir), after=(trained,)))
            gain = str(out / "metrics" / "ovd_ensemble_gain.json")
            phases.append(Phase("ensemble vs detector alone (paired bootstrap)",
                                ["tools/compare_ap50.py", cfg, f"{out / 'world'}/det/instances_val_all.json",
                                 str(work / "predictions_detector_only.pkl"), str(work / "predictions.pkl"),
                                 "--samples", str(scale.bootstrap_samples), "--json-out", gain],
                                metrics=gain, runner=False, after=(f"test {label}", phases[-1].name)))
        else:  # label maps draw slowly (~1 s each): evaluate, then draw the first few held-out images
            phases.append(Phase(f"test {label}", [*test, "--metrics-out", metrics], metrics=metrics, work_dir=str(work),
                                after=(trained,)))
            phases.append(Phase("draw held-out segmentations", [*test, "--show-dir", "examples", "--cfg-options",
                                                                  f"test_dataloader.dataset.indices={EXAMPLES}"],
                                work_dir=str(work), after=(phases[-1].name,)))
    for stage in (1, 2):
        model = ckpt / f"stage{stage}"
        for task, base, settings in (
                ("fgovd", CONFIGS / "fgovd" / "caption-rank_fgclip2-tiny_synthetic-hard.py", {}),
                ("boxclass", CONFIGS / "boxclass" / "boxclass_fgclip2-tiny_synthetic.py",
                 dict(metainfo=world_metainfo(scale), prompts=DEMO_PROMPTS, type="BoxClassMetric", classwise=True)),
                ("boxclass_fine", CONFIGS / "boxclass" / "boxclass_fgclip2-tiny_synthetic-fine.py",
                 dict(prompts=DEMO_PROMPTS))):
            name = f"{task}_stage{stage}"
            cfg = eval_config(out, name, base, model, scale, **settings)
            phases.append(Phase(f"{EVAL_LABELS[task]}, stage {stage}",
                                ["tools/test.py", cfg, "--work-dir", str(out / "eval" / name),
                                 "--metrics-out", str(out / "metrics" / f"{name}.json")],
                                metrics=str(out / "metrics" / f"{name}.json"), after=(exported[stage],)))
    return phases


def run_phases(phases: list[Phase], jobs: int, log_dir: Path) -> None:
    """Runs ``phases`` in plan order, up to ``jobs`` at once, each as soon as the phases it reads are
    done; while a training phase (``all_cores``) runs, no other phase starts. On a failure the phases
    still running are stopped and the first failure is raised."""
    count, done, running = len(phases) + 1, set(), {}
    pending = list(enumerate(phases, 1))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None  # None: the tools' own default
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for item in [item for item in pending if set(item[1].after) <= done]:
                if len(running) >= jobs or any(p.all_cores for _, p in running.values()):
                    break  # a training phase has the cores to itself once it runs: nothing new starts beside it
                pending.remove(item)
                slot = min(set(range(jobs)) - {s for s, _ in running.values()})
                running[pool.submit(run_phase, item[1], item[0], count, log_dir, slot if jobs > 1 else None,
                                    None if item[1].all_cores else threads)] = (slot, item[1])
            if not running:
                raise PhaseFailed(f"phases waiting on phases that never run: {[p.name for _, p in pending]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                _, phase = running.pop(future)
                if future.exception() is not None:
                    for proc in list(_LIVE):
                        proc.terminate()
                    raise future.exception()
                done.add(phase.name)


# Each phase's tool runs in a child forked from one server process that imported these once: the same
# `python TOOL ARGS`, without the ~6 s every fresh interpreter spends importing torch, MMEngine and
# MMDetection (a 2-second evaluation otherwise takes 8 s; docs/demo_world.md, "The quick run in 3 minutes").
PRELOAD = ["torch", "mmengine.runner", "mmdet.models", "mmdet.datasets", "fgclip2_det", "fgclip2_det.apis.launch"]
TOOLS = multiprocessing.get_context("forkserver")
_LIVE: set = set()  # the tools running now (multiprocessing processes), stopped when another phase fails


def _run_tool(argv: list[str], out, threads: int | None) -> None:
    """In the forked child: ``python argv[0] argv[1:]`` from the repository root, as the interpreter
    would run it (``__main__``, the tool's folder first on ``sys.path``), its stdout and stderr into
    ``out``; ``threads``, if given, as its OMP_NUM_THREADS."""
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    out.close()
    sys.stdout.reconfigure(line_buffering=True)
    os.chdir(REPO)
    os.environ.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))  # for any process the tool starts
    if threads:
        import torch

        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)  # the server read OMP_NUM_THREADS once, when it imported torch
    tool = str(Path(argv[0]).resolve())
    sys.argv = [tool, *argv[1:]]
    sys.path[0] = str(Path(tool).parent)
    runpy.run_path(tool, run_name="__main__")


def run_phase(phase: Phase, index: int, count: int, log_dir: Path, slot: int | None = None,
              threads: int | None = None) -> None:
    """Runs one tool, its output to ``log_dir``; the bar follows the progress lines of its log. Beside
    other phases: its bar on line ``slot``, a line when it ends, ``threads`` as its OMP_NUM_THREADS."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{index:02d}_{re.sub(r'[^a-z0-9]+', '_', phase.name.lower()).strip('_')}.log"
    pattern = RUNNER_PROGRESS if phase.runner else TQDM_PROGRESS
    start = time.perf_counter()
    with tqdm(total=1, desc=f"[{index}/{count}] {phase.name}", unit="it", dynamic_ncols=True,
              file=sys.stdout, leave=slot is None, position=slot) as bar, open(log, "w", encoding="utf-8") as sink:
        reader, writer = TOOLS.Pipe(duplex=False)
        proc = TOOLS.Process(target=_run_tool, args=(phase.argv, writer, threads), name=phase.name)
        proc.start()
        writer.close()  # the child holds the only write end: the pipe ends when the tool does
        _LIVE.add(proc)
        pending = ""
        for chunk in iter(lambda: os.read(reader.fileno(), 65536), b""):
            text = chunk.decode("utf-8", errors="replace")
            sink.write(text)
            *lines, pending = re.split(r"[\r\n]", pending + text)
            for line in lines:
                _advance(bar, line, pattern)
        reader.close()
        proc.join()
        code = proc.exitcode
        _LIVE.discard(proc)
        _advance(bar, pending, pattern)
        if code == 0:
            bar.n = bar.total
            bar.refresh()
    phase.seconds = time.perf_counter() - start
    if slot is not None:  # bars beside others are cleared when done: say so on a line of its own
        tqdm.write(f"[{index}/{count}] {phase.name}: {'done' if code == 0 else 'failed'} in {phase.seconds:.0f} s",
                   file=sys.stdout)
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-25:])
        raise PhaseFailed(f"phase '{phase.name}' failed (exit {code}); command: {phase.command}\n"
                          f"full log: {log}\n--- last lines ---\n{tail}")


def _advance(bar: tqdm, line: str, pattern: re.Pattern) -> None:
    match = pattern.search(line)
    if match:
        done, total = int(match.group(1)), int(match.group(2))
        bar.total = max(total, 1)
        bar.n = min(done, bar.total)
        bar.refresh()


# ------------------------------------------------------------------------------------- web demo
SERVE_EXAMPLES = 4  # held-out images the web demo offers


def write_serve_manifest(out: Path, scale: Scale, mode: str) -> Path:
    """``OUT/serve.json``: what ``tools/serve_demo.py`` (``make serve``) loads by default: the trained
    FG-CLIP 2, detector and segmentor, the world's vocabulary and a few held-out images (val split,
    never in the pretraining files) with two or more objects."""
    from fgclip2_det.datasets.synthetic import SyntheticWorld

    world = SyntheticWorld(out / "world")
    val = json.loads(world.path("det_val").read_text(encoding="utf-8"))
    objects = {}
    for ann in val["annotations"]:
        objects[ann["image_id"]] = objects.get(ann["image_id"], 0) + 1
    examples = [str(world.path("images") / im["file_name"]) for im in val["images"] if objects.get(im["id"], 0) >= 2]
    manifest = {
        "mode": mode, "out": str(out),
        "checkpoint": str(out / "checkpoints" / "stage2"),
        "detector": [str(out / "configs" / "ovd.py"), str(out / "ovd" / f"iter_{scale.det_iters}.pth")],
        "segmentor": [str(out / "configs" / "ovseg.py"), str(out / "ovseg" / f"iter_{scale.seg_iters}.pth")],
        "max_num_patches": 256,  # the budget every demo model was trained with
        "vocabulary": ", ".join(world.classes),
        "examples": examples[:SERVE_EXAMPLES],
    }
    path = out / "serve.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="work_dirs/demo", help="where everything goes (default: work_dirs/demo)")
    parser.add_argument("--quick", action="store_true", help="a few images and iterations: checks the plumbing")
    args = parser.parse_args(argv)

    from tools.demo_report import write_report

    out = Path(args.out).resolve()
    scale = QUICK if args.quick else FULL
    phases = plan(out, scale)
    for stale in ("metrics", "report", "results.json", "report.md", "summary.json", "serve.json"):  # earlier run
        path = out / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    started = time.perf_counter()
    TOOLS.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()  # starts importing PRELOAD now, on one core ...
    import mmdet.visualization  # noqa: F401  ... and the report's drawing modules on the other, not at the end
    print(f"run_demo: {'quick' if args.quick else 'full'} run into {out} ({len(phases) + 1} phases)", flush=True)
    try:
        run_phases(phases, scale.jobs, out / "logs")
    except PhaseFailed as err:
        raise SystemExit(f"run_demo: error: {err}") from None
    summary = dict(mode="quick" if args.quick else "full", scale=asdict(scale), out=str(out),
                   seconds=time.perf_counter() - started, phases=[asdict(p) | {"command": p.command} for p in phases])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_serve_manifest(out, scale, summary["mode"])
    with tqdm(total=1, desc=f"[{len(phases) + 1}/{len(phases) + 1}] report", file=sys.stdout) as bar:
        report = write_report(out)
        bar.update(1)
    print(f"run_demo: done in {time.perf_counter() - started:.0f} s; report: {report}; "
          f"`make serve` now serves these models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
