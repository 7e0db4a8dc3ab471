"""Peak memory of one CAT-Seg crop, each case in a fresh interpreter (for ``tools/benchmark.py``).

    from fgclip2_det.seg.cat_seg.memory import cat_seg_memory, random_checkpoint
    ckpt = random_checkpoint("base", "work_dirs/bench/base-random")   # random weights, written once
    cat_seg_memory(ckpt, num_classes=847, crop=384, class_chunk=64)                # inference
    cat_seg_memory(ckpt, num_classes=171, train=True, with_cp=True, device="cuda")  # one training step

Each case runs in a new Python process, so one case's allocations (and the allocator's cached pages)
cannot leak into another's figure. The child resets the kernel's peak-RSS counter (``VmHWM``, via
``/proc/self/clear_refs``) after building the model, so ``step_peak_gib`` is the peak of the step
alone over what the built model holds (``baseline_gib``); ``peak_rss_gib`` is the process' total
peak during the step. On CUDA, ``cuda_peak_gib`` is ``torch.cuda.max_memory_allocated``. With
``steps`` > 1 the case repeats the step; ``seconds`` is then the mean of every step after the first
(which pays one-off costs), so ``1 / seconds`` is the iteration rate.

The child runs with glibc's ``MALLOC_MMAP_THRESHOLD_=65536`` / ``MALLOC_TRIM_THRESHOLD_=0``
(``malloc_mmap=True``): every tensor buffer is then its own mapping, returned to the system when
freed, so the RSS peak follows the live tensors instead of the heap glibc keeps after a free (without
it a training step's RSS peak here read ~4x the live peak per class).

With ``memory_limit_gib`` the child's address space is capped (``RLIMIT_AS``): a case that does not
fit then reports ``fits=False`` instead of pushing the machine into swap or the OOM killer.

Inference = ``model.logits`` of one ``crop`` x ``crop`` image in eval mode (``whole``: one view at
the CLIP resolution, pooling (1, 1) as CAT-Seg evaluates) under ``torch.no_grad``. A training step =
``loss`` + ``backward`` + an AdamW step with ``finetune`` ('attention': q/v of both towers; the
text tower then runs in the forward over the ``num_classes`` class texts).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_CHILD = r'''
import json, resource, sys, time
args = json.loads(sys.argv[1])
if args.get("memory_limit_gib"):
    limit = int(args["memory_limit_gib"] * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from fgclip2_det.seg.cat_seg.memory import _measure
print("CATSEG_MEMORY " + json.dumps(_measure(**args)), flush=True)
'''


def random_checkpoint(preset: str, out_dir: str | Path, seed: int = 0) -> Path:
    """A random-weight FG-CLIP 2 checkpoint of ``preset`` with the small test tokenizer (the text
    tower's token table is then small; it does not change the vision side or the aggregator)."""
    from ...model.tiny import make_tiny_checkpoint

    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file() and (out_dir / "tokenizer.json").is_file():
        return out_dir
    return make_tiny_checkpoint(out_dir, seed=seed, preset=preset)


def cat_seg_memory(checkpoint: str | Path, num_classes: int = 847, crop: int = 384, class_chunk: int | None = None,
                   train: bool = False, finetune: str = "attention", with_cp: bool = False, device: str = "cpu",
                   threads: int | None = None, memory_limit_gib: float | None = None, timeout: float | None = None,
                   aggregator: dict | None = None, malloc_mmap: bool = True, steps: int = 1) -> dict:
    """Measures one case in a fresh interpreter (module doc); returns its figures as a dict."""
    import os

    if memory_limit_gib and not device.startswith("cpu"):
        raise ValueError("memory_limit_gib caps the address space (CPU runs only); CUDA reserves far more")

    args = dict(checkpoint=str(checkpoint), num_classes=num_classes, crop=crop, class_chunk=class_chunk, train=train,
                finetune=finetune, with_cp=with_cp, device=device, threads=threads, aggregator=aggregator or {},
                memory_limit_gib=memory_limit_gib, steps=steps)
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ)
    if malloc_mmap:
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=root, capture_output=True, text=True,
                          timeout=timeout, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("CATSEG_MEMORY "):
            return json.loads(line[len("CATSEG_MEMORY "):])
    tail = (proc.stderr or proc.stdout)[-2000:]
    out = {**{k: v for k, v in args.items() if k != "checkpoint"}, "fits": False, "returncode": proc.returncode,
           "error": tail}
    if memory_limit_gib and ("can't allocate memory" in tail or "MemoryError" in tail or proc.returncode < 0):
        out["error"] = f"did not fit under memory_limit_gib={memory_limit_gib}: " + tail[-300:]
    return out


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _measure(checkpoint: str, num_classes: int, crop: int, class_chunk, train: bool, finetune: str, with_cp: bool,
             device: str, threads, aggregator: dict, memory_limit_gib=None, steps: int = 1) -> dict:
    import time

    import torch
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.structures import PixelData

    from fgclip2_det import register_all_modules

    register_all_modules()  # a fresh process: the backbone (fgclip2_det.det) and FGCLIP2CATSeg

    if threads:
        torch.set_num_threads(int(threads))
    cfg = dict(type="FGCLIP2CATSeg", backbone=dict(type="FGCLIP2ViT", checkpoint=checkpoint), finetune=finetune,
               aggregator=dict(aggregator, class_chunk=class_chunk), clip_resolution=(crop, crop), with_cp=with_cp,
               text_classifier=dict(progress=False), test_cfg=dict(mode="whole", pooling_size=(1, 1)))
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(cfg).to(device)
    gen = torch.Generator().manual_seed(0)
    names = [f"class {i}" for i in range(num_classes)]
    shape = model.class_embeds.shape[1:]
    embeds = torch.nn.functional.normalize(torch.randn(num_classes, *shape, generator=gen), dim=-1)
    if model.text_tower is not None:
        model.install_tokens(names)  # the training forward encodes these texts
    model.apply_vocabulary(embeds, torch.zeros(num_classes, dtype=torch.bool))
    model.classes = names
    image = (torch.rand(1, 3, crop, crop, generator=gen) * 2 - 1).to(device)
    sample = DetDataSample(metainfo=dict(img_shape=(crop, crop), ori_shape=(crop, crop), img_path="random"))
    sample.gt_sem_seg = PixelData(sem_seg=torch.randint(0, num_classes, (1, crop, crop), generator=gen).to(device))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4) if train else None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = _rss_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # VmHWM := current RSS
        f.write("5")
    error = None
    times = []
    try:
        for _ in range(max(1, int(steps))):
            t0 = time.perf_counter()
            if train:
                model.train()
                optim.zero_grad(set_to_none=True)
                loss = model.loss(image, [sample])["loss_seg"]
                loss.backward()
                optim.step()
            else:
                model.eval()
                with torch.no_grad():
                    model.logits(image, [(crop, crop)]).sigmoid_()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    except (RuntimeError, MemoryError) as e:  # the address-space cap: reported, not raised
        error = f"{type(e).__name__}: {str(e)[:300]}"
    # the first step pays one-off costs (allocator growth, lazy inits): the rate is over the others
    timed = times[1:] or times
    seconds = sum(timed) / len(timed) if timed else float("nan")
    peak = _rss_bytes("VmHWM")
    gib = 2 ** 30
    import os

    out = dict(num_classes=num_classes, crop=crop, class_chunk=class_chunk, train=train, finetune=finetune,
               malloc_mmap=os.environ.get("MALLOC_MMAP_THRESHOLD_") is not None,
               with_cp=with_cp, device=device, threads=torch.get_num_threads(), fits=error is None, error=error,
               seconds=seconds, steps=len(times), baseline_gib=baseline / gib, peak_rss_gib=peak / gib,
               step_peak_gib=(peak - baseline) / gib,
               trainable_params_m=sum(p.numel() for p in params) / 1e6, memory_limit_gib=memory_limit_gib)
    if device.startswith("cuda"):
        out["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / gib
    return out


#: What ``bench_cat_seg_memory`` measures by default: A-847 inference of one 384 crop, unchunked and
#: in chunks of 64 classes; a training step on COCO-Stuff's 171 classes, plain and with gradient
#: checkpointing (chunks of 32).
DEFAULT_CASES = (dict(num_classes=847, class_chunk=None), dict(num_classes=847, class_chunk=64),
                 dict(num_classes=171, train=True), dict(num_classes=171, train=True, with_cp=True, class_chunk=32))


def bench_cat_seg_memory(preset: str = "base", out_dir: str | Path = "work_dirs/bench/cat-seg",
                         cases=DEFAULT_CASES, **common) -> dict:
    """``tools/benchmark.py``-style entry: every case of ``cases`` (``cat_seg_memory`` arguments,
    ``common`` added to each) on a random ``preset`` checkpoint written under ``out_dir``."""
    checkpoint = random_checkpoint(preset, Path(out_dir) / f"{preset}-random")
    rows = []
    for case in cases:
        rows.append(cat_seg_memory(checkpoint, **{**common, **case}))
        r = rows[-1]
        print(f"[cat-seg memory] {preset} {'train' if r.get('train') else 'infer'} K={r.get('num_classes')} "
              f"chunk={r.get('class_chunk')} cp={r.get('with_cp')}: "
              + (f"step peak {r['step_peak_gib']:.2f} GiB, {r['seconds']:.0f} s" if r.get("fits") else "did not run"),
              flush=True)
    return {"preset": preset, "cases": rows}


def cat_seg_memory_markdown(res: dict) -> str:
    lines = [f"### CAT-Seg memory ({res['preset']} preset, random weights, one crop per case)", "",
             "| step | classes | crop | class_chunk | grad. checkpointing | step peak GiB | process peak GiB | s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["cases"]:
        if not r.get("fits"):
            lines.append(f"| {'train' if r.get('train') else 'inference'} | {r.get('num_classes')} | {r.get('crop')} | "
                         f"{r.get('class_chunk')} | {r.get('with_cp')} | did not fit / failed | | |")
            continue
        lines.append(f"| {'train' if r['train'] else 'inference'} | {r['num_classes']} | {r['crop']} | "
                     f"{r['class_chunk'] or 'all'} | {'yes' if r['with_cp'] else 'no'} | {r['step_peak_gib']:.2f} | "
                     f"{r['peak_rss_gib']:.2f} | {r['seconds']:.0f} |")
    return "\n".join(lines)
