#!/usr/bin/env python
"""Timed targets of the toolkit, each measured against a reference in the same run.

    python tools/benchmark.py [encoder] [synthetic] [pretrain] [boxclass] [text_cache] [ovd] [ovseg] [cat_seg]
                              [pretrain_memory] [pretrain_dist] [onnx] [--out work_dirs/bench]
                              [--repeats 3]

Writes ``results.json`` and ``results.md`` under ``--out`` (ratios, peak memory, max abs difference,
environment). Timings alternate ours / reference so machine noise hits both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# --------------------------------------------------------------------------------- measuring
class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms in a thread."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2 ** 20


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(ours, reference, repeats: int) -> dict:
    """Runs both once to warm up, then ``repeats`` alternating timed runs; medians and peak memory."""
    with torch.inference_mode():
        out_ours, out_ref = ours(), reference()
        t_ours, t_ref = [], []
        for _ in range(repeats):
            t_ours.append(timed(ours)[0])
            t_ref.append(timed(reference)[0])
        with PeakRSS() as m_ours:
            ours()
        with PeakRSS() as m_ref:
            reference()
    med_ours, med_ref = statistics.median(t_ours), statistics.median(t_ref)
    return {"ours_s": med_ours, "reference_s": med_ref, "speedup": med_ref / med_ours,
            "ours_times": t_ours, "reference_times": t_ref,
            "ours_peak_mib": m_ours.mib, "reference_peak_mib": m_ref.mib,
            "outputs": (out_ours, out_ref)}


def gemm_gflops(n: int = 2048, repeats: int = 3) -> float:
    """fp32 GEMM throughput of this machine (the roofline the encoder is compared with)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def environment() -> dict:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


# ---------------------------------------------------------------------------------- encoder
UNIFORM = [(32, 32)] * 4  # 4 x 512x512
MIXED = [(16, 16), (32, 32), (24, 32), (32, 18), (20, 20), (16, 24), (28, 28), (12, 32)]


def encoder_flops(cfg, grids) -> float:
    """Forward FLOPs of blocks + MAP head + dense head (multiply-add = 2)."""
    d, i, depth = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    total = 0.0
    for h, w in grids:
        n = h * w
        block = 2 * n * (4 * d * d + 2 * d * i) + 4 * n * n * d
        dense_head = 2 * n * (4 * d * d + 2 * d * i) + 4 * n * n * d
        total += depth * block + dense_head + 2 * n * cfg.patch_size ** 2 * 3 * d
    return total


def bench_encoder(args) -> dict:
    from fgclip2_det.model import FGCLIP2, FGCLIP2Config
    from fgclip2_det.utils.hf_reference import build_siglip2, padded_naflex_inputs, reference_dense_head

    torch.manual_seed(0)
    model = FGCLIP2(FGCLIP2Config.preset(args.preset)).eval()
    ref = build_siglip2(model, attn_implementation="sdpa").vision_model
    roofline = gemm_gflops()
    results = {"preset": args.preset, "gemm_gflops": roofline, "cases": {}}
    for name, grids, target in (("uniform_4x512", UNIFORM, 1.0), ("mixed_naflex_8", MIXED, 1.3)):
        gen = torch.Generator().manual_seed(1)
        images = [torch.rand(3, 16 * h, 16 * w, generator=gen) * 2 - 1 for h, w in grids]
        pv, mask, shapes = padded_naflex_inputs(images)

        def ours():
            f = model.vision_features(images)
            return f.image_embeds, f.dense_maps

        def reference():
            out = ref(pixel_values=pv, pixel_attention_mask=mask, spatial_shapes=shapes)
            return out.pooler_output, reference_dense_head(model.dense_feature_head, out.last_hidden_state,
                                                           mask == 0)

        r = compare(ours, reference, args.repeats)
        (g_ours, d_ours), (g_ref, d_ref) = r.pop("outputs")
        diff = (g_ours - g_ref).abs().max().item()
        for k, (h, w) in enumerate(grids):
            dense_ref = d_ref[k, : h * w].t().reshape(-1, h, w)
            diff = max(diff, (d_ours[k] - dense_ref).abs().max().item())
        real = sum(h * w for h, w in grids)
        flops = encoder_flops(model.config.vision, grids)
        r.update(grids=grids, real_token_fraction=real / (len(grids) * max(h * w for h, w in grids)),
                 max_abs_diff=diff, gflop=flops / 1e9,
                 ours_roofline_fraction=flops / r["ours_s"] / 1e9 / roofline,
                 reference_roofline_fraction=flops / r["reference_s"] / 1e9 / roofline,
                 target_speedup=target, passed=bool(r["speedup"] >= target and diff <= 1e-4))
        results["cases"][name] = r
        print(f"[encoder] {name}: ours {r['ours_s']:.2f}s, transformers {r['reference_s']:.2f}s, "
              f"speedup {r['speedup']:.2f}x (target {target}x), max|diff| {diff:.1e}, "
              f"roofline {r['ours_roofline_fraction']:.2f} vs {r['reference_roofline_fraction']:.2f}",
              flush=True)
    return results


def encoder_markdown(res: dict) -> str:
    lines = [f"### encoder ({res['preset']} preset, fp32, CPU; GEMM roofline {res['gemm_gflops']:.0f} GFLOP/s)",
             "", "| case | real tokens | ours (s) | transformers (s) | speedup | target | roofline ours / ref "
             "| peak MiB ours / ref | max abs diff | pass |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["cases"].items():
        lines.append(f"| {name} | {r['real_token_fraction']:.0%} | {r['ours_s']:.2f} | {r['reference_s']:.2f} "
                     f"| {r['speedup']:.2f}x | ≥{r['target_speedup']}x | {r['ours_roofline_fraction']:.2f} / "
                     f"{r['reference_roofline_fraction']:.2f} | {r['ours_peak_mib']:.0f} / "
                     f"{r['reference_peak_mib']:.0f} | {r['max_abs_diff']:.1e} | {'yes' if r['passed'] else 'NO'} |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- synthetic
def bench_synthetic(args) -> dict:
    """Generation time of a synthetic world against the issue's budget (10,000 images in 180 s)."""
    import tempfile

    from fgclip2_det.datasets.synthetic import generate_world

    n, budget = args.world_images, 180.0 * args.world_images / 10_000
    with tempfile.TemporaryDirectory() as tmp:
        seconds = timed(lambda: generate_world(tmp, n, seed=0, workers=os.cpu_count()))[0]
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    res = {"images": n, "workers": os.cpu_count(), "seconds": seconds, "images_per_s": n / seconds,
           "budget_s": budget, "disk_mib": size / 2 ** 20, "passed": seconds <= budget}
    print(f"[synthetic] {n} images in {seconds:.1f}s ({n / seconds:.0f} img/s; budget {budget:.0f}s)", flush=True)
    return res


def synthetic_markdown(res: dict) -> str:
    return "\n".join([
        "### synthetic world generation", "",
        "| images | workers | seconds | images/s | budget (s) | disk MiB | pass |", "|---|---|---|---|---|---|---|",
        f"| {res['images']} | {res['workers']} | {res['seconds']:.1f} | {res['images_per_s']:.0f} | "
        f"{res['budget_s']:.0f} | {res['disk_mib']:.0f} | {'yes' if res['passed'] else 'NO'} |"])


# --------------------------------------------------------------------------------- pretrain
def _pretrain_steps(world, tiny, stage: int, batch_size: int, steps: int, unique_texts: bool = True) -> dict:
    """Median time of full training steps (forward, backward, AdamW) on one batch, and the memory the
    first step adds (later steps reuse it, so measuring them would show ~0)."""
    from fgclip2_det.pretrain import FGCLIP2Pretrainer, FineHARDDataset, naflex_pretrain_collate

    ds = FineHARDDataset("pretrain/en.json", data_root=str(world), zh_ann_file="pretrain/zh.json",
                         with_regions=stage == 2)
    batch = naflex_pretrain_collate([ds[i] for i in range(batch_size)], tokenizer=str(tiny), max_num_patches=256)
    model = FGCLIP2Pretrainer(checkpoint=str(tiny), stage=stage, unique_texts=unique_texts)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        optim.zero_grad()
        sum(v for k, v in model(**batch).items() if k.startswith("loss")).backward()
        optim.step()

    with PeakRSS() as mem:  # the first step allocates activations, gradients and AdamW state
        step()
    times = [timed(step)[0] for _ in range(steps)]
    return {"batch_size": batch_size, "step_s": statistics.median(times), "it_per_s": 1 / statistics.median(times),
            "peak_mib": mem.mib}


def bench_pretrain(args) -> dict:
    """Tiny stage-1/stage-2 step cost, and stage 1 + stage 2 on a synthetic world end to end
    (tools/train.py + export, the configs' iteration budgets) against the 10-minute budget."""
    import subprocess
    import tempfile

    from fgclip2_det.datasets.synthetic import generate_world
    from fgclip2_det.model.tiny import make_tiny_checkpoint

    root = Path(__file__).resolve().parents[1]
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = generate_world(tmp / "world", args.pretrain_images, seed=0, workers=os.cpu_count())
        tiny = make_tiny_checkpoint(tmp / "tiny", seed=0)
        res["stage1_step"] = _pretrain_steps(world, tiny, 1, 32, args.repeats)
        res["stage2_step"] = _pretrain_steps(world, tiny, 2, 16, args.repeats)
        res["stage2_vs_stage1_step_ratio"] = res["stage2_step"]["step_s"] / res["stage1_step"]["step_s"]
        # the demo's world names a few kinds: most box texts of a batch repeat (docs/demo_world.md)
        demo = generate_world(tmp / "demo_world", args.pretrain_images, seed=0, workers=os.cpu_count(),
                              profile="six_kinds")
        unique, every = (_pretrain_steps(demo, tiny, 2, 16, args.repeats, unique_texts=flag) for flag in (True, False))
        res["stage2_unique_texts"] = {"ours_s": unique["step_s"], "reference_s": every["step_s"],
                                      "speedup": every["step_s"] / unique["step_s"]}
        if args.pretrain_end_to_end:
            py = sys.executable
            runs = [("stage1", "configs/pretrain/fgclip2-stage1_fgclip2-tiny_synthetic.py", tiny, tmp / "stage1",
                     True),
                    ("stage2", "configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic.py", tmp / "stage1",
                     tmp / "stage2", False)]
            start = time.perf_counter()
            for name, config, init, out, copy_heads in runs:
                t0 = time.perf_counter()
                opts = [f"model.checkpoint={init}", f"train_dataloader.collate_fn.tokenizer={init}",
                        f"train_dataloader.dataset.data_root={world}"]
                subprocess.run([py, "tools/train.py", config, "--work-dir", str(tmp / f"run_{name}"),
                                "--cfg-options", *opts], cwd=root, check=True, capture_output=True)
                last = max((tmp / f"run_{name}").glob("iter_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
                subprocess.run([py, "tools/export_checkpoint.py", str(last), str(out)]
                               + (["--copy-region-heads"] if copy_heads else []), cwd=root, check=True,
                               capture_output=True)
                res[f"{name}_wall_s"] = time.perf_counter() - t0
            res["end_to_end_s"] = time.perf_counter() - start
            res["budget_s"] = 600.0
            res["passed"] = res["end_to_end_s"] <= res["budget_s"]
    res["images"] = args.pretrain_images
    print(f"[pretrain] stage-1 step {res['stage1_step']['step_s']:.2f}s (b=32), stage-2 step "
          f"{res['stage2_step']['step_s']:.2f}s (b=16)" + (f", stage 1 + 2 end to end {res['end_to_end_s']:.0f}s "
                                                          f"(budget 600s)" if "end_to_end_s" in res else ""), flush=True)
    return res


def pretrain_markdown(res: dict) -> str:
    s1, s2 = res["stage1_step"], res["stage2_step"]
    lines = ["### pretraining (tiny preset, CPU)", "",
             "| step | batch | s/step | it/s | peak MiB |", "|---|---|---|---|---|",
             f"| stage 1 | {s1['batch_size']} | {s1['step_s']:.2f} | {s1['it_per_s']:.2f} | {s1['peak_mib']:.0f} |",
             f"| stage 2 | {s2['batch_size']} | {s2['step_s']:.2f} | {s2['it_per_s']:.2f} | {s2['peak_mib']:.0f} |"]
    if "stage2_unique_texts" in res:
        u = res["stage2_unique_texts"]
        lines += ["", f"Stage-2 step on the demo's `six_kinds` world, each distinct text encoded once: {u['ours_s']:.2f} s "
                      f"against {u['reference_s']:.2f} s encoding every text (**{u['speedup']:.1f}x**)."]
    if "end_to_end_s" in res:
        lines += ["", f"Stage 1 + stage 2 on {res['images']} synthetic images (tools/train.py + export): "
                      f"{res['stage1_wall_s']:.0f} s + {res['stage2_wall_s']:.0f} s = **{res['end_to_end_s']:.0f} s** "
                      f"(budget {res['budget_s']:.0f} s): {'pass' if res['passed'] else 'FAIL'}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------- boxclass
BOXCLASS_SIZES = [(480, 640), (375, 500), (600, 400), (300, 300), (384, 512), (256, 512)]  # (H, W)


def _boxclass_inputs(boxes_per_image: int, budget: int | None, seed: int = 0):
    """Random-pixel images of varied sizes with random boxes (original pixels), processed as in the
    box evaluation (NaFlex resize; boxes mapped alongside)."""
    import numpy as np

    from fgclip2_det.model import FGCLIP2ImageProcessor

    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for h, w in BOXCLASS_SIZES:
        images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        xy = rng.uniform(0, 0.75, (boxes_per_image, 2)) * [w, h]
        wh = rng.uniform(0.05, 0.25, (boxes_per_image, 2)) * [w, h]
        boxes.append(np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1).astype(np.float32))
    return FGCLIP2ImageProcessor(budget)(images, boxes=boxes)


def per_box_reference(model, image: torch.Tensor, boxes: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The official box evaluation (fgclip2/eval/coco_box_ddp.py), box by box: the whole encoder on
    the whole processed image (global head included, as the official forward computes it), RoIAlign
    1x1 (aligned, adaptive sampling) of the box mapped to the grid by x / W * w, L2, softmax(100 cos)."""
    import torch.nn.functional as F
    from mmcv.ops import roi_align

    H, W = image.shape[1:]
    rows = []
    for box in boxes:
        feats = model.vision_features([image])
        fmap = feats.dense_maps[0]
        h, w = fmap.shape[1:]
        grid_box = box.float() * box.new_tensor([w / W, h / H, w / W, h / H]).float()
        roi = torch.cat([grid_box.new_zeros(1), grid_box])[None]
        region = F.normalize(roi_align(fmap[None].float().contiguous(), roi.contiguous(), (1, 1), 1.0, 0, "avg",
                                       True).flatten(1), dim=-1)
        rows.append((100 * region @ text.t()).softmax(dim=-1)[0])
    return torch.stack(rows)


def bench_boxclass(args) -> dict:
    """Box classification: encoder once per image + RoIAlign of all its boxes on the dense map (the
    ``FGCLIP2BoxClassifier`` path: ``vision_features`` + ``pool_regions``) against the official
    per-box procedure (one full encoder pass per box), same random-weight model and text embeddings.
    Images run one at a time on both sides, so the ratio measures the algorithm, not batching."""
    from fgclip2_det.model import FGCLIP2, FGCLIP2Config

    torch.manual_seed(0)
    model = FGCLIP2(FGCLIP2Config.preset(args.boxclass_preset)).eval()
    processed = _boxclass_inputs(args.boxclass_boxes, args.boxclass_patches or None)
    text = torch.nn.functional.normalize(torch.randn(args.boxclass_classes, model.config.embed_dim,
                                                     generator=torch.Generator().manual_seed(1)), dim=-1)

    def ours():
        out = []
        for image, boxes in zip(processed.images, processed.boxes):
            dense = model.vision_features([image], with_global=False).dense_maps
            region = model.pool_regions(dense, [boxes])[0]
            out.append((100 * region @ text.t()).softmax(dim=-1))
        return out

    def reference():
        return [per_box_reference(model, image, boxes, text) for image, boxes in zip(processed.images, processed.boxes)]

    with torch.inference_mode():
        model.vision_features(processed.images[:1])  # warm-up (allocator, kernels)
        t_ours, t_ref, m_ours, m_ref = [], [], 0.0, 0.0
        for _ in range(args.boxclass_repeats):  # alternating: background load hits both alike
            with PeakRSS() as mem:
                t, out_ours = timed(ours)
            t_ours.append(t)
            m_ours = max(m_ours, mem.mib)
            with PeakRSS() as mem:
                t, out_ref = timed(reference)
            t_ref.append(t)
            m_ref = max(m_ref, mem.mib)
    ours_probs, ref_probs = torch.cat(out_ours), torch.cat(out_ref)
    same_top1 = bool(torch.equal(ours_probs.argmax(-1), ref_probs.argmax(-1)))
    diff = (ours_probs - ref_probs).abs().max().item()
    med_ours, med_ref = statistics.median(t_ours), statistics.median(t_ref)
    res = {"preset": args.boxclass_preset, "images": len(processed.images), "boxes": len(ours_probs),
           "classes": args.boxclass_classes, "token_budget": args.boxclass_patches or None,
           "input_sizes": [list(s) for s in processed.sizes], "ours_s": med_ours, "reference_s": med_ref,
           "ours_times": t_ours, "reference_times": t_ref, "speedup": med_ref / med_ours,
           "ours_peak_mib": m_ours, "reference_peak_mib": m_ref, "top1_identical": same_top1,
           "max_abs_score_diff": diff, "target_speedup": 5.0}
    res["passed"] = bool(res["speedup"] >= 5.0 and same_top1 and diff <= 1e-5)
    print(f"[boxclass] {res['boxes']} boxes on {res['images']} images ({args.boxclass_preset}): ours "
          f"{med_ours:.1f}s, per-box reference {med_ref:.1f}s, speedup {res['speedup']:.2f}x (target 5x), "
          f"top-1 identical {same_top1}, max|diff| {diff:.1e}", flush=True)
    return res


def boxclass_markdown(res: dict) -> str:
    return "\n".join([
        f"### boxclass ({res['preset']} preset, random weights, fp32, CPU; {res['images']} images x "
        f"{res['boxes'] // res['images']} boxes, {res['classes']} classes, token budget "
        f"{res['token_budget'] or 'dynamic'})", "",
        "| ours: encoder once per image (s) | official: encoder once per box (s) | speedup | target | "
        "peak MiB ours / ref | top-1 identical | max abs score diff | pass |", "|---|---|---|---|---|---|---|---|",
        f"| {res['ours_s']:.1f} | {res['reference_s']:.1f} | {res['speedup']:.2f}x | ≥{res['target_speedup']:.0f}x | "
        f"{res['ours_peak_mib']:.0f} / {res['reference_peak_mib']:.0f} | {'yes' if res['top1_identical'] else 'NO'} "
        f"| {res['max_abs_score_diff']:.1e} | {'yes' if res['passed'] else 'NO'} |"])


# ------------------------------------------------------------------------------- text_cache
def bench_text_cache(args) -> dict:
    """LVIS v1 (1203 names) x 80 templates with the text classifier on a tiny checkpoint: a cache
    miss (96,240 texts encoded, measured once: it takes minutes) then cache hits (median of
    ``--repeats``, right after, same process), and whether the tensors are bit-identical."""
    import tempfile

    from mmdet.datasets import LVISV1Dataset

    from fgclip2_det.openvocab.text_classifier import TextClassifier
    from fgclip2_det.model.tiny import make_tiny_checkpoint

    classes = [name.replace("_", " ") for name in LVISV1Dataset.METAINFO["classes"]]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = make_tiny_checkpoint(Path(tmp) / "tiny", seed=0)
        cache = Path(tmp) / "cache"
        classifier = TextClassifier(tiny, cache_dir=cache, progress=False)
        texts = sum(len(t) for per_class in classifier.class_texts(classes) for t in per_class)
        t_miss, miss = timed(lambda: classifier(classes))
        hits = [timed(lambda: TextClassifier(tiny, cache_dir=cache, progress=False)(classes))
                for _ in range(max(1, args.repeats))]
        files = list(cache.glob("*.pt"))
        cache_mib = sum(f.stat().st_size for f in files) / 2 ** 20
    t_hit = statistics.median(t for t, _ in hits)
    identical = all(torch.equal(miss, out) for _, out in hits)
    res = {"classes": len(classes), "texts": texts, "miss_s": t_miss, "hit_s": t_hit,
           "hit_times": [t for t, _ in hits], "speedup": t_miss / t_hit, "identical": identical,
           "shape": list(miss.shape), "cache_files": len(files), "cache_mib": cache_mib, "target_speedup": 50.0}
    res["passed"] = bool(res["speedup"] >= 50.0 and identical)
    print(f"[text_cache] {len(classes)} classes, {texts} texts: miss {t_miss:.1f}s, hit {t_hit * 1e3:.0f}ms, "
          f"speedup {res['speedup']:.0f}x (target 50x), identical {identical}", flush=True)
    return res


def text_cache_markdown(res: dict) -> str:
    return "\n".join([
        "### text_cache (LVIS v1 x 80 templates, tiny checkpoint, CPU)", "",
        "| classes | texts | miss (s) | hit (ms) | speedup | target | identical | cache MiB | pass |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {res['classes']} | {res['texts']} | {res['miss_s']:.1f} | {res['hit_s'] * 1e3:.0f} | "
        f"{res['speedup']:.0f}x | ≥{res['target_speedup']:.0f}x | {'yes' if res['identical'] else 'NO'} | "
        f"{res['cache_mib']:.1f} | {'yes' if res['passed'] else 'NO'} |"])


# ---------------------------------------------------------------------------------- ovd
OVD_CONFIGS = {"tiny": "configs/ovd/fvit_fgclip2-tiny_ov-synthetic.py", "base": "configs/ovd/fvit_fgclip2-base_ov-coco.py"}


def _ovd_detector(preset: str, checkpoint: Path):
    """The preset's detector config with a random-weight checkpoint; random unit class embeddings
    stand in for the text side (the benchmark times the detector, not the one-off text encoding)."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS

    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / OVD_CONFIGS[preset]))
    cfg.model.backbone.checkpoint = str(checkpoint)
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel("WARNING")  # init_weights logs every parameter at INFO
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    head = model.roi_head.bbox_head
    embeds = torch.nn.functional.normalize(torch.randn(head.num_classes, head.embed_dim,
                                                       generator=torch.Generator().manual_seed(0)), dim=-1)
    head.set_class_embeddings(embeds, torch.arange(head.num_classes) % 4 == 3)
    return model


def _ovd_batch(model, batch_size: int, size: int, seed: int = 0):
    """Random size x size images with 6 base-class boxes each, as the data preprocessor's output."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch_size):
        xy = torch.rand(6, 2, generator=gen) * size * 0.7
        wh = 16 + torch.rand(6, 2, generator=gen) * size * 0.3
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0), batch_input_shape=(size, size)))
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1).clamp(max=size - 1),
                                           labels=torch.tensor([0, 1, 2, 0, 1, 2]))
        samples.append(sample)
    return torch.rand(batch_size, 3, size, size, generator=gen) * 2 - 1, samples


def bench_ovd(args) -> dict:
    """OV detector on CPU at 640 x 640: inference images/s (batch 1) with the FG-CLIP 2 ensemble
    against detector-only scores (the ensemble's cost), and training iterations/s + peak memory
    (batch 2, frozen backbone, AdamW on the rest), for the tiny and base presets."""
    import tempfile

    from fgclip2_det.model.tiny import make_tiny_checkpoint

    res = {"image_size": args.ovd_size, "presets": {}}
    for preset in args.ovd_presets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            model = _ovd_detector(preset, make_tiny_checkpoint(Path(tmp) / preset, seed=0, preset=preset))
        model.eval()
        inputs, samples = _ovd_batch(model, 1, args.ovd_size)
        ensemble = model.roi_head.ensemble

        def with_ensemble():
            model.roi_head.ensemble = ensemble
            return model.predict(inputs, samples)

        def detector_only():
            model.roi_head.ensemble = None
            return model.predict(inputs, samples)

        infer = compare(with_ensemble, detector_only, args.repeats)
        model.roi_head.ensemble = ensemble
        infer.pop("outputs")
        model.train()
        train_inputs, train_samples = _ovd_batch(model, 2, args.ovd_size, seed=1)
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step():
            optim.zero_grad()
            loss, _ = model.parse_losses(model.loss(train_inputs, train_samples))
            loss.backward()
            optim.step()

        with PeakRSS() as mem:  # the first step allocates activations, gradients and AdamW state
            step()
        times = [timed(step)[0] for _ in range(args.repeats)]
        res["presets"][preset] = {
            "infer_s": infer["ours_s"], "infer_img_per_s": 1 / infer["ours_s"],
            "detector_only_s": infer["reference_s"], "ensemble_overhead": infer["ours_s"] / infer["reference_s"],
            "infer_peak_mib": infer["ours_peak_mib"], "train_batch": 2, "train_step_s": statistics.median(times),
            "train_it_per_s": 1 / statistics.median(times), "train_peak_mib": mem.mib,
            "trainable_params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6}
        r = res["presets"][preset]
        print(f"[ovd] {preset}: {r['infer_img_per_s']:.2f} img/s inference (ensemble x{r['ensemble_overhead']:.2f}), "
              f"{r['train_it_per_s']:.2f} it/s training (batch 2), peak {r['train_peak_mib']:.0f} MiB", flush=True)
    return res


def ovd_markdown(res: dict) -> str:
    lines = [f"### open-vocabulary detector (CPU, {res['image_size']} x {res['image_size']})", "",
             "| preset | inference img/s | ensemble cost (vs detector only) | inference peak MiB | "
             "train it/s (batch 2) | train peak MiB | trainable params (M) |", "|---|---|---|---|---|---|---|"]
    for preset, r in res["presets"].items():
        lines.append(f"| {preset} | {r['infer_img_per_s']:.2f} | x{r['ensemble_overhead']:.2f} | "
                     f"{r['infer_peak_mib']:.0f} | {r['train_it_per_s']:.2f} | {r['train_peak_mib']:.0f} | "
                     f"{r['trainable_params_m']:.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- ovseg
def bench_ovseg(args) -> dict:
    """Segmentation inference on CPU (one image, whole mode) against vocabulary size (20 -> 847)
    and image size, cost-aggregation decoder vs the training-free cosine map (the reference: the
    decoder's extra cost); random-weight base or tiny preset, random unit text embeddings."""
    import tempfile

    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS

    from fgclip2_det.model.tiny import make_tiny_checkpoint

    root = Path(__file__).resolve().parents[1]
    config = ("configs/ovseg/cost-decoder_fgclip2-tiny_synthetic.py" if args.ovseg_preset == "tiny"
              else "configs/ovseg/cost-decoder_fgclip2-base_coco-stuff-171.py")
    cfg = Config.fromfile(str(root / config))
    res = {"preset": args.ovseg_preset, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        cfg.model.backbone.checkpoint = str(make_tiny_checkpoint(Path(tmp) / "m", seed=0, preset=args.ovseg_preset))
        with DefaultScope.overwrite_default_scope("mmdet"):
            model = MODELS.build(cfg.model).eval()
    dim = model.backbone.embed_dim
    for size in (int(s) for s in args.ovseg_sizes.split(",")):
        image = torch.rand(1, 3, size, size) * 2 - 1
        for k in (int(c) for c in args.ovseg_classes.split(",")):
            model.class_embeds = torch.nn.functional.normalize(torch.randn(k, dim), dim=-1)
            decoder = model.decoder

            def with_decoder():
                model.decoder = decoder
                return model.logits(image, [(size, size)])

            def training_free():
                model.decoder = None
                return model.logits(image, [(size, size)])

            r = compare(with_decoder, training_free, args.repeats)
            model.decoder = decoder
            r.pop("outputs")
            case = {"size": size, "classes": k, "decoder_s": r["ours_s"], "decoder_peak_mib": r["ours_peak_mib"],
                    "training_free_s": r["reference_s"], "training_free_peak_mib": r["reference_peak_mib"],
                    "decoder_vs_training_free": r["ours_s"] / r["reference_s"]}
            res["cases"].append(case)
            print(f"[ovseg] {size}px, {k} classes: decoder {case['decoder_s']:.2f}s / "
                  f"{case['decoder_peak_mib']:.0f} MiB, training-free {case['training_free_s']:.2f}s", flush=True)
    return res


def ovseg_markdown(res: dict) -> str:
    lines = [f"### open-vocabulary segmentation ({res['preset']} preset, CPU, one image, whole mode)", "",
             "| image | classes | decoder s | decoder peak MiB | training-free s | training-free peak MiB | "
             "decoder / training-free |", "|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        lines.append(f"| {c['size']}² | {c['classes']} | {c['decoder_s']:.2f} | {c['decoder_peak_mib']:.0f} | "
                     f"{c['training_free_s']:.2f} | {c['training_free_peak_mib']:.0f} | "
                     f"{c['decoder_vs_training_free']:.1f}x |")
    return "\n".join(lines)


def bench_cat_seg(args) -> dict:
    """CAT-Seg (FGCLIP2CATSeg) on CPU, one 384 x 384 crop per step (``--cat-seg-crop``), random weights, each case in a fresh
    interpreter (``fgclip2_det/seg/cat_seg/memory.py``): training iterations/s and peak memory on
    COCO-Stuff's 171 classes with CAT-Seg's q/v fine-tuning against the frozen towers (the reference),
    per preset; A-847 inference memory (base preset by default), unchunked (the reference) and in chunks of 64."""
    from fgclip2_det.seg.cat_seg.memory import cat_seg_memory, random_checkpoint

    out = Path(args.out) / "cat-seg"
    crop = args.cat_seg_crop
    res = {"crop": crop, "train": [], "inference": []}
    for preset in args.cat_seg_presets.split(","):
        ckpt = random_checkpoint(preset, out / f"{preset}-random")
        for finetune in ("none", "attention"):
            r = cat_seg_memory(ckpt, num_classes=171, crop=crop, train=True, finetune=finetune,
                               steps=args.cat_seg_steps)
            r["preset"] = preset
            res["train"].append(r)
            print(f"[cat_seg] {preset} train finetune={finetune}: "
                  + (f"{1 / r['seconds']:.2f} it/s, step peak {r['step_peak_gib']:.2f} GiB" if r.get("fits")
                     else f"failed: {r.get('error', '')[-200:]}"), flush=True)
    preset = args.cat_seg_inference_preset
    ckpt = random_checkpoint(preset, out / f"{preset}-random")
    for chunk in (None, 64):
        r = cat_seg_memory(ckpt, num_classes=847, crop=crop, class_chunk=chunk)
        r["preset"] = preset
        res["inference"].append(r)
        print(f"[cat_seg] {preset} A-847 inference chunk={chunk}: "
              + (f"step peak {r['step_peak_gib']:.2f} GiB, {r['seconds']:.1f} s" if r.get("fits")
                 else f"failed: {r.get('error', '')[-200:]}"), flush=True)
    return res


def cat_seg_markdown(res: dict) -> str:
    def figures(r, rate: bool) -> str:
        if not r.get("fits"):
            return "failed | | | |" if rate else "failed | | |"
        cells = [f"{1 / r['seconds']:.3f}"] if rate else []
        cells += [f"{r['seconds']:.2f}", f"{r['step_peak_gib']:.2f}", f"{r['peak_rss_gib']:.2f}"]
        return " | ".join(cells) + " |"

    lines = [f"### CAT-Seg on CPU ({res['crop']}² crop, batch 1, random weights)", "",
             "| preset | step | classes | fine-tuning | it/s | s/it | step peak GiB | process peak GiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["train"]:
        lines.append(f"| {r['preset']} | train | {r['num_classes']} | {r['finetune']} | {figures(r, True)}")
    for r in res["inference"]:
        lines.append(f"| {r['preset']} | inference | {r['num_classes']} (chunk {r['class_chunk'] or 'all'}) | — | "
                     f"| {figures(r, False)}")
    by = {(r["preset"], r["finetune"]): r for r in res["train"] if r.get("fits")}
    for preset in dict.fromkeys(r["preset"] for r in res["train"]):
        if (preset, "none") in by and (preset, "attention") in by:
            a, n = by[(preset, "attention")], by[(preset, "none")]
            lines.append(f"\n{preset}: q/v fine-tuning takes {a['seconds'] / n['seconds']:.2f}x the frozen step time "
                         f"and {a['step_peak_gib'] / max(n['step_peak_gib'], 1e-9):.2f}x its step peak memory.")
    inf = [r for r in res["inference"] if r.get("fits")]
    if len(inf) == 2:
        lines.append(f"\nA-847 inference: chunks of 64 need {inf[1]['step_peak_gib'] / inf[0]['step_peak_gib']:.2f}x "
                     "the unchunked step peak memory.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- pretrain memory
# Runs in a fresh interpreter per layout, so one layout's memory cannot leak into the other's figure.
_MEMORY_PROBE = r'''
import hashlib, json, random, resource, sys, time
root, layout, spec, n_reads = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, root)
import psutil
proc = psutil.Process()

def mem():
    out = {"rss": proc.memory_info().rss}
    try:
        full = proc.memory_full_info()
        out.update(uss=full.uss, pss=getattr(full, "pss", None))
    except (psutil.AccessDenied, AttributeError, NotImplementedError):
        pass
    return out

def peak_rss():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over the exec
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

from fgclip2_det.pretrain import FineHARDDataset, FineHARDShardDataset
imported = mem()
t0 = time.perf_counter()
ds = FineHARDDataset(**spec) if layout == "json" else FineHARDShardDataset(**spec)
build_s = time.perf_counter() - t0
built = mem()
rng = random.Random(0)
indices = [rng.randrange(len(ds)) for _ in range(n_reads)]
digest = hashlib.sha256()
t0 = time.perf_counter()
for i in indices:
    item = ds[i]
    digest.update(json.dumps([item["long"], item["short"], item["regions"], item["hard"]],
                             ensure_ascii=False).encode())
    digest.update(item["image"].tobytes())
read_s = time.perf_counter() - t0
print(json.dumps({"samples": len(ds), "build_s": build_s, "read_s": read_s, "imported": imported, "built": built,
                  "after_reads": mem(), "peak_rss": peak_rss(),
                  "items_sha256": digest.hexdigest()}))
'''

_EN_WORDS = ("red", "small", "wooden", "chair", "next", "to", "a", "window", "with", "light", "falling", "on", "the",
             "floor", "and", "old", "brown", "dog", "sleeping", "under", "table", "near", "green", "plant")
_ZH_WORDS = ("红色", "小", "木制", "椅子", "旁边", "一扇", "窗户", "光线", "照在", "地板", "上", "和", "一只", "老",
             "棕色", "狗", "睡在", "桌子", "下面", "绿色", "植物")


def _memory_records(folder: Path, n: int, num_images: int = 8, per_file: int = 100_000) -> dict:
    """``n`` small FineHARD records (half English, half Chinese) in JSONL parts over a few 32x32 PNGs:
    ~400-character long caption, a short caption, 2 regions (short/long expressions), 10 hard
    negatives on the first. Every text carries the record number, so no two records share strings."""
    import numpy as np
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    yy, xx = np.mgrid[0:32, 0:32]
    for k in range(num_images):  # smooth gradients: a few hundred bytes as PNG, and every record embeds one
        pixels = np.stack([xx * 8, yy * 8, np.full_like(xx, 30 * k)], -1).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"im{k}.png")
    bodies = {}
    for lang, words, sep, size in (("en", _EN_WORDS, " ", 70), ("zh", _ZH_WORDS, "", 130)):
        bodies[lang] = [sep.join(words[(b * 7 + k * 3 + k * k) % len(words)] for k in range(size)) for b in range(97)]
    sizes = {"en": n - n // 2, "zh": n // 2}
    for lang, count in sizes.items():
        out = folder / "ann" / lang
        out.mkdir(parents=True)
        body = bodies[lang]
        for part, start in enumerate(range(0, count, per_file)):
            lines = []
            for i in range(start, min(start + per_file, count)):
                b = body[i % 97]
                x = (i % 40) / 100
                negs = {str(k): f"{b[k * 3:k * 3 + 20]} #{i}.{k}" for k in range(10)}
                item = {"f_path": f"images/im{i % num_images}.png", "caption": f"{b} #{i}",
                        "short_caption": f"{b[:50]} #{i}",
                        "bbox_info": [{"bbox": [x, 0.1, x + 0.5, 0.8], "short_expr": f"{b[:24]} #{i}",
                                       "long_expr": f"{b[:100]} #{i}", "flag_short_neg": 1, "short_expr_negs": negs},
                                      {"bbox": [0.05, x, 0.4, x + 0.5], "short_expr": f"{b[30:54]} #{i}",
                                       "long_expr": f"{b[30:130]} #{i}", "flag_short_neg": 0}]}
                if lang == "zh":
                    item["is_cn"] = True
                lines.append(json.dumps(item, ensure_ascii=False))
            (out / f"part-{part:04d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sizes


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_pretrain_memory(args) -> dict:
    """Resident memory of one dataloader worker's dataset at ``--memory-records`` FineHARD records:
    the JSON layout (every annotation parsed into Python objects, which each forked worker ends up
    copying) against the indexed tar shards (memory-mapped index, shards read by seeking). Each
    layout is built in a fresh interpreter that then reads the same 1,000 random items."""
    import subprocess
    import tempfile

    from fgclip2_det.pretrain.shards import write_shards

    root = Path(__file__).resolve().parents[1]
    n, n_reads = args.memory_records, 1000
    res = {"records": n, "reads": n_reads}
    with tempfile.TemporaryDirectory(prefix="pretrain-memory-") as tmp:
        tmp = Path(tmp)
        print(f"[pretrain_memory] writing {n:,} FineHARD records ...", flush=True)
        res["write_s"], res["counts"] = timed(lambda: _memory_records(tmp, n))
        res["annotation_mib"] = _folder_bytes(tmp / "ann") / 2 ** 20
        print(f"[pretrain_memory] {res['annotation_mib']:.0f} MiB of JSONL in {res['write_s']:.0f}s; converting to "
              "shards ...", flush=True)
        res["convert_s"], summary = timed(lambda: write_shards("ann/en", "", tmp / "shards", zh_ann_file="ann/zh",
                                                               data_root=str(tmp), samples_per_shard=10000))
        res["shard_files"], res["shard_mib"] = summary["shards"], _folder_bytes(tmp / "shards") / 2 ** 20
        print(f"[pretrain_memory] {summary['shards']} shards, {res['shard_mib']:.0f} MiB in {res['convert_s']:.0f}s",
              flush=True)
        specs = {"json": dict(ann_file="ann/en", zh_ann_file="ann/zh", image_root="", data_root=str(tmp),
                              region_caption="short"),
                 "shards": dict(shard_root=str(tmp / "shards"), region_caption="short")}
        for layout, spec in specs.items():
            print(f"[pretrain_memory] {layout}: building + reading {n_reads} items in a fresh process ...", flush=True)
            proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(root), layout, json.dumps(spec),
                                   str(n_reads)], capture_output=True, text=True, timeout=3600)
            if proc.returncode:
                raise RuntimeError(f"{layout} memory probe failed:\n{proc.stderr[-3000:]}")
            probe = json.loads(proc.stdout.strip().splitlines()[-1])
            mib = {k: (v / 2 ** 20 if v is not None else None) for k, v in probe["after_reads"].items()}
            res[layout] = {"build_s": probe["build_s"], "read_s": probe["read_s"], "samples": probe["samples"],
                           "rss_mib": mib["rss"], "uss_mib": mib.get("uss"), "pss_mib": mib.get("pss"),
                           "imports_rss_mib": probe["imported"]["rss"] / 2 ** 20,
                           "dataset_mib": (probe["after_reads"]["rss"] - probe["imported"]["rss"]) / 2 ** 20,
                           "peak_rss_mib": probe["peak_rss"] / 2 ** 20, "items_sha256": probe["items_sha256"]}
            print(f"[pretrain_memory] {layout}: RSS {mib['rss']:.0f} MiB ({res[layout]['dataset_mib']:.0f} MiB over "
                  f"imports), built in {probe['build_s']:.1f}s", flush=True)
    js, sh = res["json"], res["shards"]
    res["same_items"] = js["items_sha256"] == sh["items_sha256"] and js["samples"] == sh["samples"]
    res["rss_ratio"] = js["rss_mib"] / sh["rss_mib"]
    res["dataset_ratio"] = js["dataset_mib"] / max(sh["dataset_mib"], 1.0)
    print(f"[pretrain_memory] per worker: JSON {js['rss_mib']:.0f} MiB vs shards {sh['rss_mib']:.0f} MiB RSS "
          f"({res['rss_ratio']:.1f}x); dataset alone {js['dataset_mib']:.0f} vs {sh['dataset_mib']:.0f} MiB; "
          f"same items: {res['same_items']}", flush=True)
    return res


def pretrain_memory_markdown(res: dict) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:.0f}"

    lines = [f"### pretraining data memory per worker ({res['records']:,} FineHARD records, "
             f"{res['reads']} random items read)", "",
             "| layout | build s | read s | RSS MiB | USS MiB | PSS MiB | RSS over imports MiB | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for layout, name in (("json", "JSON (FineHARDDataset)"), ("shards", "tar shards (FineHARDShardDataset)")):
        r = res[layout]
        lines.append(f"| {name} | {r['build_s']:.1f} | {r['read_s']:.1f} | {f(r['rss_mib'])} | {f(r['uss_mib'])} | "
                     f"{f(r['pss_mib'])} | {f(r['dataset_mib'])} | {f(r['peak_rss_mib'])} |")
    lines += ["", f"JSON / shards: {res['rss_ratio']:.1f}x RSS, {res['dataset_ratio']:.0f}x the dataset's own memory; "
                  f"same items from both: {'yes' if res['same_items'] else 'NO'}. On disk: {res['annotation_mib']:.0f} "
                  f"MiB JSONL -> {res['shard_mib']:.0f} MiB in {res['shard_files']} shards (images embedded), "
                  f"converted in {res['convert_s']:.0f} s."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- pretrain_dist
def _dist_pretrain_worker(rank: int, world: int, port: int, mode: str, checkpoint: str, data_root: str,
                          batch: int, steps: int, out: str) -> None:
    """One rank of the distributed stage-2 benchmark: ``batch`` samples of its own, ``steps`` timed
    training steps (forward, backward, AdamW) after one warm-up step."""
    import datetime

    import psutil
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # the same cores in every mode
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=600))
    from fgclip2_det.pretrain import FGCLIP2Pretrainer, FineHARDDataset, naflex_pretrain_collate
    from fgclip2_det.pretrain.fsdp2 import shard_fgclip2, sync_replicated_grads

    ds = FineHARDDataset("pretrain/en.json", data_root=data_root, region_caption="short")
    data = naflex_pretrain_collate([ds[rank * batch + i] for i in range(batch)], tokenizer=checkpoint,
                                   max_num_patches=256)
    proc = psutil.Process()
    baseline = proc.memory_info().rss  # imports and data: the same in every mode
    with PeakRSS() as mem:
        model = FGCLIP2Pretrainer(checkpoint=checkpoint, stage=2)
        if mode == "ddp":
            forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=None, find_unused_parameters=True)
        elif mode == "fsdp2":
            forward = shard_fgclip2(model)
        else:
            forward = model
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(params, lr=1e-5)

        def step():
            optim.zero_grad()
            sum(v for k, v in forward(**data).items() if k.startswith("loss")).backward()
            if mode == "fsdp2":
                sync_replicated_grads(params)
            optim.step()

        step()
        times = [timed(step)[0] for _ in range(steps)]
    def local_bytes(t):
        return (t.to_local() if hasattr(t, "to_local") else t).nbytes if t is not None else 0

    # what sharding divides: the parameters, gradients and AdamW moments this rank keeps between steps
    state_bytes = sum(local_bytes(p) + local_bytes(p.grad) for p in model.parameters())
    state_bytes += sum(local_bytes(v) for st in optim.state.values() for v in st.values() if torch.is_tensor(v))
    local_params = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
    result = {"step_s": statistics.median(times), "peak_mib": (mem.peak - baseline) / 2 ** 20,
              "params_held": local_params, "state_mib": state_bytes / 2 ** 20}
    Path(out, f"{mode}_rank{rank}.json").write_text(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


def _run_dist_mode(mode: str, world: int, checkpoint, data_root, batch: int, steps: int, out: Path) -> dict:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_dist_pretrain_worker,
                         args=(r, world, port, mode, str(checkpoint), str(data_root), batch, steps, str(out)))
             for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=1800)
    if any(p.is_alive() or p.exitcode != 0 for p in procs):
        for p in procs:
            p.kill()
        raise RuntimeError(f"pretrain_dist: mode {mode} failed or hung (exit codes {[p.exitcode for p in procs]})")
    ranks = [json.loads((out / f"{mode}_rank{r}.json").read_text()) for r in range(world)]
    step_s = max(r["step_s"] for r in ranks)  # a step ends when the slowest rank ends it
    return {"mode": mode, "processes": world, "batch_per_rank": batch, "step_s": step_s,
            "samples_per_s": world * batch / step_s, "peak_mib_per_rank": max(r["peak_mib"] for r in ranks),
            "params_held_per_rank": max(r["params_held"] for r in ranks),
            "state_mib_per_rank": max(r["state_mib"] for r in ranks)}


def bench_pretrain_dist(args) -> dict:
    """Stage-2 steps on one process against two (DDP and FSDP2, gloo) on the same CPU cores: samples/s,
    peak resident memory per rank (above the level after imports and data; the allocator reuses freed
    memory, so activations dominate it) and the bytes of weights, gradients and AdamW moments each rank
    keeps (what FSDP2 divides by the world size), per model preset."""
    import tempfile

    from fgclip2_det.datasets.synthetic import generate_world
    from fgclip2_det.model.tiny import make_tiny_checkpoint

    res = {"presets": {}, "gpu": "not measured: no GPU in this session"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        batch = args.dist_batch
        world_dir = generate_world(tmp / "world", max(40, 4 * batch), seed=0, workers=os.cpu_count())
        for preset in args.dist_presets.split(","):
            checkpoint = make_tiny_checkpoint(tmp / preset, seed=0, preset=preset)
            rows = [_run_dist_mode(mode, world, checkpoint, world_dir, batch, args.repeats, tmp)
                    for mode, world in (("single", 1), ("ddp", 2), ("fsdp2", 2))]
            res["presets"][preset] = rows
            for r in rows:
                print(f"[pretrain_dist] {preset} {r['mode']}: {r['samples_per_s']:.2f} samples/s, "
                      f"{r['peak_mib_per_rank']:.0f} MiB per rank", flush=True)
    res["threads_total"] = os.cpu_count()
    return res


def pretrain_dist_markdown(res: dict) -> str:
    lines = [f"### distributed stage 2 on CPU ({res['threads_total']} cores shared by all ranks, gloo)", "",
             "| preset | mode | processes | batch per rank | s/step | samples/s | vs 1 process | peak MiB per rank | "
             "parameters held per rank | weights + grads + AdamW MiB per rank |", "|---|---|---|---|---|---|---|---|---|---|"]
    for preset, rows in res["presets"].items():
        single = rows[0]["samples_per_s"]
        for r in rows:
            lines.append(f"| {preset} | {r['mode']} | {r['processes']} | {r['batch_per_rank']} | {r['step_s']:.2f} | "
                         f"{r['samples_per_s']:.2f} | {r['samples_per_s'] / single:.2f}x | "
                         f"{r['peak_mib_per_rank']:.0f} | {r['params_held_per_rank']:,} | {r['state_mib_per_rank']:.0f} |")
    lines += ["", f"GPU (base preset, bf16, images/s per GPU): {res['gpu']}."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- onnx
ONNX_MIXED = [(16, 16), (24, 32), (32, 18), (20, 20)]  # grids of the mixed case (a subset of MIXED)


def bench_onnx(args) -> dict:
    """FG-CLIP 2 image embeddings on CPU: the exported vision graph in onnxruntime (one call per image)
    against the PyTorch model (one packed call), random weights of ``--onnx-preset``; images/s at
    512 x 512 and on mixed NaFlex sizes, the speed ratio and the largest output difference."""
    import tempfile

    import numpy as np

    from fgclip2_det.deploy.onnx_export import export_vision
    from fgclip2_det.deploy.runtime import OnnxFGCLIP2
    from fgclip2_det.model import FGCLIP2, FGCLIP2Config

    torch.manual_seed(0)
    # The text tower is not timed: a small vocabulary keeps its (unused) embedding table small.
    model = FGCLIP2(FGCLIP2Config.preset(args.onnx_preset, text={"vocab_size": 1024})).eval()
    threads = torch.get_num_threads()
    res = {"preset": args.onnx_preset, "threads": threads, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        t_export = timed(lambda: export_vision(model, Path(tmp) / "vision.onnx"))[0]
        res["export_s"] = t_export
        runtime = OnnxFGCLIP2(tmp, threads=threads)
        for name, grids in ((f"uniform_{args.onnx_images}x512", [(32, 32)] * args.onnx_images),
                            ("mixed_naflex_4", ONNX_MIXED)):
            gen = torch.Generator().manual_seed(1)
            images = [torch.rand(3, 16 * h, 16 * w, generator=gen) * 2 - 1 for h, w in grids]
            arrays = [img.numpy() for img in images]
            r = compare(lambda: runtime.encode_image(arrays), lambda: model.encode_image(images).numpy(),
                        args.repeats)
            out_ort, out_torch = r.pop("outputs")
            r.update(grids=grids, images=len(grids), max_abs_diff=float(np.abs(out_ort - out_torch).max()),
                     ort_img_per_s=len(grids) / r["ours_s"], torch_img_per_s=len(grids) / r["reference_s"])
            res["cases"][name] = r
            print(f"[onnx] {name}: onnxruntime {r['ort_img_per_s']:.2f} img/s, PyTorch {r['torch_img_per_s']:.2f} "
                  f"img/s, ratio {r['speedup']:.2f}x, max|diff| {r['max_abs_diff']:.1e}", flush=True)
    return res


def onnx_markdown(res: dict) -> str:
    header = ["case", "images", "onnxruntime img/s", "PyTorch img/s", "ratio (ort / torch)", "peak MiB ort / torch",
              "max abs diff"]
    rows = [[name, str(r["images"]), f"{r['ort_img_per_s']:.2f}", f"{r['torch_img_per_s']:.2f}", f"{r['speedup']:.2f}x",
             f"{r['ours_peak_mib']:.0f} / {r['reference_peak_mib']:.0f}", f"{r['max_abs_diff']:.1e}"]
            for name, r in res["cases"].items()]
    title = (f"### ONNX vision graph vs PyTorch ({res['preset']} preset, fp32, CPU, {res['threads']} threads; "
             f"export {res['export_s']:.0f} s)")
    table = ["| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *rows]]
    return "\n".join([title, "", *table])


BENCHMARKS = {"encoder": (bench_encoder, encoder_markdown), "synthetic": (bench_synthetic, synthetic_markdown),
              "pretrain": (bench_pretrain, pretrain_markdown), "boxclass": (bench_boxclass, boxclass_markdown),
              "text_cache": (bench_text_cache, text_cache_markdown), "ovd": (bench_ovd, ovd_markdown),
              "ovseg": (bench_ovseg, ovseg_markdown), "cat_seg": (bench_cat_seg, cat_seg_markdown),
              "pretrain_memory": (bench_pretrain_memory, pretrain_memory_markdown),
              "pretrain_dist": (bench_pretrain_dist, pretrain_dist_markdown),
              "onnx": (bench_onnx, onnx_markdown)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help=f"any of {list(BENCHMARKS)}")
    parser.add_argument("--out", default="work_dirs/bench")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="base", help="model preset for the encoder benchmark")
    parser.add_argument("--world-images", type=int, default=10_000, help="images for the synthetic benchmark")
    parser.add_argument("--pretrain-images", type=int, default=2_000, help="world size for the pretrain benchmark")
    parser.add_argument("--no-pretrain-end-to-end", dest="pretrain_end_to_end", action="store_false",
                        help="pretrain benchmark: step timings only, skip the ~10 min stage 1 + 2 run")
    parser.add_argument("--boxclass-preset", default="base", help="model preset for the boxclass benchmark")
    parser.add_argument("--boxclass-patches", type=int, default=256,
                        help="boxclass: token budget per image (0 = the official dynamic budget, up to 1024)")
    parser.add_argument("--boxclass-boxes", type=int, default=8, help="boxclass: boxes per image")
    parser.add_argument("--boxclass-classes", type=int, default=80, help="boxclass: vocabulary size")
    parser.add_argument("--boxclass-repeats", type=int, default=1,
                        help="boxclass: timed rounds (the per-box reference takes ~2 min a round on 2 cores)")
    parser.add_argument("--ovd-presets", default="tiny,base", help="ovd: comma-separated model presets")
    parser.add_argument("--ovd-size", type=int, default=640, help="ovd: image side in pixels")
    parser.add_argument("--ovseg-preset", default="base", help="ovseg: model preset")
    parser.add_argument("--ovseg-sizes", default="320,640", help="ovseg: image sides in pixels")
    parser.add_argument("--ovseg-classes", default="20,59,150,847", help="ovseg: vocabulary sizes")
    parser.add_argument("--cat-seg-presets", default="tiny,base", help="cat_seg: model presets (comma-separated)")
    parser.add_argument("--cat-seg-inference-preset", default="base", help="cat_seg: preset of the A-847 inference rows")
    parser.add_argument("--cat-seg-crop", type=int, default=384, help="cat_seg: crop side (CAT-Seg's 384)")
    parser.add_argument("--cat-seg-steps", type=int, default=3, help="cat_seg: training steps timed (first excluded)")
    parser.add_argument("--dist-presets", default="tiny,base",
                        help="pretrain_dist: model presets (comma-separated; 'base' uses a small tokenizer)")
    parser.add_argument("--dist-batch", type=int, default=2, help="pretrain_dist: samples per rank")
    parser.add_argument("--memory-records", type=int, default=1_000_000,
                        help="pretrain_memory: FineHARD records written, converted to shards and loaded")
    parser.add_argument("--onnx-preset", default="base", help="onnx: model preset (random weights)")
    parser.add_argument("--onnx-images", type=int, default=2, help="onnx: 512 x 512 images in the uniform case")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {list(BENCHMARKS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"environment": environment(), "benchmarks": {}}
    md = ["# fgclip2_det benchmarks", "", f"Environment: `{json.dumps(results['environment'])}`", ""]
    for name in args.names:
        run, to_md = BENCHMARKS[name]
        results["benchmarks"][name] = res = run(args)
        md += [to_md(res), ""]
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text("\n".join(md))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
