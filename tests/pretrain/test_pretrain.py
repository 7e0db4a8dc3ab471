"""Pretraining pipeline: annotations, dataset, collate, sampler, the training model, runner runs
(kill-and-resume, NaN stop) and export to the official layout."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from fgclip2_det.datasets.synthetic import generate_world
from fgclip2_det.model import FGCLIP2
from fgclip2_det.pretrain import FGCLIP2Pretrainer, FineHARDDataset, naflex_pretrain_collate
from fgclip2_det.pretrain.annotations import AnnotationError, load_samples
from fgclip2_det.pretrain.export import export_runner_checkpoint

ROOT = Path(__file__).resolve().parents[2]
STAGE2_CONFIG = ROOT / "configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("pretrain-world"), 20, seed=1, workers=1)


def dataset(world, **kw):
    return FineHARDDataset("pretrain/en.json", data_root=str(world), zh_ann_file="pretrain/zh.json", **kw)


# ------------------------------------------------------------------------------ annotations
def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"f_path": "x.jpg", "caption": "a cat"}\n{"f_path": "y.jpg", "caption": \n')
    with pytest.raises(AnnotationError, match=r"a\.jsonl:line 2: not valid JSON"):
        load_samples(f)


@pytest.mark.parametrize("region, match", [
    ({"bbox": [0.1, 0.1, float("nan"), 0.5], "short_expr": "a", "long_expr": "b"}, "not finite"),
    ({"bbox": [0.5, 0.1, 0.2, 0.5], "short_expr": "a", "long_expr": "b"}, "x1 <= x2"),
    ({"bbox": [0.1, 0.1, 0.2], "short_expr": "a", "long_expr": "b"}, r"\[x1, y1, x2, y2"),
    ({"bbox": [0.1, 0.1, 0.2, 0.3], "short_expr": "", "long_expr": "b"}, "'short_expr' must be"),
    ({"bbox": [0.1, 0.1, 0.2, 0.3], "short_expr": "a", "long_expr": "b", "flag_short_neg": 1,
      "short_expr_negs": ["x"]}, "short_expr_negs"),
])
def test_bad_regions_name_item_and_region(tmp_path, region, match):
    f = tmp_path / "a.json"
    good = {"bbox": [0, 0, 1, 1], "short_expr": "a", "long_expr": "b"}
    f.write_text(json.dumps([{"f_path": "x.jpg", "caption": "c", "bbox_info": [good, region]}]))
    with pytest.raises(AnnotationError, match=rf"a\.json item 0 region 1: .*{match}"):
        load_samples(f)


def test_missing_caption_and_file(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps([{"f_path": "x.jpg"}]))
    with pytest.raises(AnnotationError, match="item 0: 'caption'"):
        load_samples(f)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_samples(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------- dataset
def test_official_text_rules_and_cn_switch(world):
    ds = dataset(world, region_caption="short")
    en, zh = ds[0], ds[len(ds) - 1]
    assert ds.languages[0] == "en" and ds.languages[-1] == "zh"
    assert en["short"].startswith("a photo of ") and en["short"] == en["short"].lower()
    assert not zh["short"].startswith("a photo of ")
    assert en["regions"] and zh["regions"], "Chinese regions supervised by default"
    assert all(len(texts) == 11 for _, texts in en["hard"] + zh["hard"])
    assert dataset(world, cn_regions=False)[len(ds) - 1]["regions"] == []
    assert dataset(world, with_regions=False)[0]["regions"] == []


def test_corrupt_image_is_replaced_and_counted_or_raises(world, tmp_path, tiny_dir):
    copy = Path(shutil.copytree(world, tmp_path / "w"))
    ds = dataset(copy)
    bad = copy / ds.samples[1].image
    bad.write_bytes(b"not a jpeg")
    assert ds[1]["replaced"] == 1 and ds.languages[2] == ds.languages[1]
    assert np.array_equal(ds[1]["image"], ds[2]["image"]), "the next sample of the same language stands in"
    batch = naflex_pretrain_collate([ds[0], ds[1], ds[2]], tokenizer=str(tiny_dir))
    assert batch["stats"]["replaced_samples"] == 1 and len(batch["images"]) == 3, "the batch keeps its size"
    with pytest.raises(ValueError, match="one item per sample"):
        naflex_pretrain_collate([ds[0], None], tokenizer=str(tiny_dir))
    with pytest.raises(ValueError, match=str(bad)):
        dataset(copy, on_bad_sample="raise")[1]


def test_collate_budget_boxes_and_texts(world, tiny_dir):
    ds = dataset(world, region_caption="short")
    items = [ds[i] for i in range(4)]
    batch = naflex_pretrain_collate(items, tokenizer=str(tiny_dir), max_num_patches=256)
    assert batch["stats"]["token_budget"] <= 256
    for img in batch["images"]:
        assert (img.shape[1] // 16) * (img.shape[2] // 16) <= batch["stats"]["token_budget"]
    for item, img, boxes in zip(items, batch["images"], batch["region_boxes"]):
        h, w = img.shape[1:]
        expected = torch.tensor([b for b, _ in item["regions"]]) * torch.tensor([w, h, w, h])
        assert torch.allclose(boxes, expected.float())
    n_regions = sum(len(it["regions"]) for it in items)
    assert batch["region_texts"].shape == (n_regions, 64) and batch["text_long"].shape == (4, 196)
    assert batch["hard_texts"].shape[1:] == (11, 64)


# ------------------------------------------------------------------------------------ model
def test_stage_semantics(world, tiny_dir):
    batch = naflex_pretrain_collate([dataset(world)[i] for i in range(3)], tokenizer=str(tiny_dir))
    s1 = FGCLIP2Pretrainer(checkpoint=str(tiny_dir), stage=1)
    assert not any(p.requires_grad for p in s1.fgclip.dense_feature_head.parameters())
    assert {k for k in s1(**batch) if k.startswith("loss")} == {"loss_global_long", "loss_global_short"}
    s2 = FGCLIP2Pretrainer(checkpoint=str(tiny_dir), stage=2)
    out = s2(**batch)
    assert {k for k in out if k.startswith("loss")} == {f"loss_{n}" for n in
                                                        ("global_long", "global_short", "fgv", "tic", "fgt", "hc", "cmr")}
    assert out["cmr_threshold"] == 0, "the loss uses the previous step's tau"
    with torch.no_grad():  # the stored tau = clamp(mean positive logit - mean non-zero negative logit)
        fg = s2.fgclip
        dense = fg.vision_features(batch["images"], with_global=False).dense_maps
        v = torch.cat(fg.pool_regions(dense, batch["hard_boxes"]))
        t = fg.encode_text(batch["hard_texts"].reshape(-1, 64), "box").reshape(v.shape[0], 11, -1)
        logits = s2.logit_scale_hardneg.exp() * (v[:, None] * t).sum(-1)
        neg = logits[:, 1:]
        expected = min(10.0, max(0.0, float(logits[:, 0].mean() - neg[neg != 0].mean())))
    assert float(s2.cmr_loss.threshold) == pytest.approx(expected, abs=1e-5)
    sum(v for k, v in out.items() if k.startswith("loss")).backward()
    assert s2.fgclip.dense_feature_head.probe.grad is None, "the probe is unused by the dense head"
    assert s2.fgclip.dense_feature_head.mlp.fc1.weight.grad.abs().sum() > 0


def test_init_from_siglip2_checkpoint(tmp_path, tiny_model):
    from fgclip2_det.model.checkpoint import write_state_dict

    cfg = tiny_model.config.to_dict()
    cfg["model_type"] = "siglip2"
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "config.json").write_text(json.dumps(cfg))
    state = {k: v for k, v in tiny_model.state_dict().items()
             if k.startswith(("text_model.", "vision_model.", "logit_")) and "position_embedding_" not in k}
    write_state_dict(tmp_path / "s", state)
    m = FGCLIP2Pretrainer(checkpoint=str(tmp_path / "s"))
    assert torch.equal(m.fgclip.boxtext_head.weight, tiny_model.text_model.head.weight)


def test_bad_model_arguments(tiny_dir):
    with pytest.raises(ValueError, match="exactly one"):
        FGCLIP2Pretrainer()
    with pytest.raises(ValueError, match="unknown loss weight"):
        FGCLIP2Pretrainer(checkpoint=str(tiny_dir), loss_weights={"fvg": 1.0})
    with pytest.raises(ValueError, match="only computes losses"):
        FGCLIP2Pretrainer(checkpoint=str(tiny_dir))(images=None, text_long=None, text_short=None, mode="predict")


# ------------------------------------------------------------------------------ runner runs
def runner_cfg(world, tiny_dir, work_dir, max_iters=6, interval=3) -> Config:
    cfg = Config.fromfile(str(STAGE2_CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.model.checkpoint = str(tiny_dir)
    cfg.train_dataloader.update(batch_size=4, num_workers=0)
    cfg.train_dataloader.collate_fn.tokenizer = str(tiny_dir)
    cfg.train_dataloader.dataset.data_root = str(world)
    cfg.train_cfg.max_iters = max_iters
    cfg.param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, T_max=max_iters)]
    cfg.default_hooks.checkpoint.update(interval=interval, max_keep_ckpts=5)
    cfg.default_hooks.logger.interval = 1
    cfg.launcher = "none"
    return cfg


class StopAt(Hook):
    """Raises after iteration ``n`` (after its checkpoint is written): a killed run."""
    priority = "LOWEST"

    def __init__(self, n):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.n:
            raise KeyboardInterrupt(f"killed after iteration {self.n}")


def train(cfg, hooks=()):
    runner = Runner.from_cfg(cfg)
    for h in hooks:
        runner.register_hook(h)
    runner.train()
    return runner


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(world, tiny_dir, tmp_path):
    def cfg_for(work_dir):
        cfg = runner_cfg(world, tiny_dir, work_dir, max_iters=4, interval=2)
        cfg.randomness = dict(seed=6)  # a data order whose 4 steps end with tau > 0 (seeds 0-5 clamp it to 0)
        return cfg

    full = train(cfg_for(tmp_path / "full"))
    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tmp_path / "killed"), [StopAt(2)])
    cfg = cfg_for(tmp_path / "killed")
    cfg.resume = True
    resumed = train(cfg)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert float(a["cmr_loss.threshold"]) > 0, "tau must be non-trivial for this test to show it resumes"
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    oa, ob = full.optim_wrapper.state_dict()["state"], resumed.optim_wrapper.state_dict()["state"]
    assert oa.keys() == ob.keys()
    for k in oa:
        assert torch.allclose(oa[k]["exp_avg"], ob[k]["exp_avg"], atol=1e-7, rtol=0)

    out = export_runner_checkpoint(tmp_path / "full" / "iter_4.pth", tmp_path / "export")
    exported = FGCLIP2.from_pretrained(out)
    for k, v in exported.state_dict().items():
        assert torch.equal(v, a["fgclip." + k]), k
    assert (out / "tokenizer.json").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no tokenizer files .* in --tokenizer .*empty"):
        export_runner_checkpoint(tmp_path / "full" / "iter_4.pth", tmp_path / "export2", tmp_path / "empty")
    assert not (tmp_path / "export2").exists(), "nothing is written when the export cannot be loaded"


class PoisonAt(Hook):
    def __init__(self, n):
        self.n = n

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.n:
            with torch.no_grad():
                runner.model.fgclip.logit_scale.fill_(float("nan"))


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_last_checkpoint(world, tiny_dir, tmp_path):
    with pytest.raises(FloatingPointError, match=r"non-finite pretraining loss term\(s\) \['global_long'"):
        train(runner_cfg(world, tiny_dir, tmp_path / "nan", max_iters=6, interval=2), [PoisonAt(3)])
    ckpts = sorted(p.name for p in (tmp_path / "nan").glob("iter_*.pth"))
    assert ckpts == ["iter_2.pth"]
    state = torch.load(tmp_path / "nan" / "iter_2.pth", map_location="cpu")["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if isinstance(v, torch.Tensor))


def test_export_rejects_other_checkpoints(tmp_path):
    from fgclip2_det.model import CheckpointError

    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="not an FGCLIP2Pretrainer checkpoint"):
        export_runner_checkpoint(tmp_path / "x.pth", tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        export_runner_checkpoint(tmp_path / "missing.pth", tmp_path / "out")


@pytest.mark.slow
def test_torchrun_two_cpu_processes_gloo(world, tiny_dir, tmp_path):
    """tools/dist_train.sh on CPU: gloo initialised by fgclip2_det/apis/launch.py, DDP with device_ids=None."""
    import os
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = [f"model.checkpoint={tiny_dir}", f"train_dataloader.collate_fn.tokenizer={tiny_dir}",
            f"train_dataloader.dataset.data_root={world}", "train_dataloader.batch_size=3",
            "train_dataloader.num_workers=0", "train_cfg.max_iters=3", "default_hooks.checkpoint.interval=3"]
    proc = subprocess.run(["bash", "tools/dist_train.sh", str(STAGE2_CONFIG), "2", "--work-dir", str(tmp_path),
                           "--cfg-options", *opts], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PORT": str(port)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next(tmp_path.glob("*/*.log")).read_text()
    assert "Distributed training: True" in log and "launcher = 'pytorch'" in log
    assert "device_ids=None" in log and "backend='gloo'" in log
    state = torch.load(tmp_path / "iter_3.pth", map_location="cpu")["state_dict"]
    assert "cmr_loss.threshold" in state and "_extra_state" in state


def test_grad_checkpointing_gives_the_same_loss_and_gradients(world, tiny_dir):
    batch = naflex_pretrain_collate([dataset(world, region_caption="short")[i] for i in range(3)],
                                    tokenizer=str(tiny_dir))
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        m = FGCLIP2Pretrainer(checkpoint=str(tiny_dir), grad_checkpointing=flag)
        total = sum(v for k, v in m(**batch).items() if k.startswith("loss"))
        total.backward()
        grads.append((float(total), m.fgclip.vision_model.encoder.layers[0].mlp.fc1.weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


def test_unique_texts_encodes_each_text_once_with_the_same_losses_and_gradients(world, tiny_dir):
    ds = dataset(world)
    batch = naflex_pretrain_collate([ds[0], ds[0], ds[1]], tokenizer=str(tiny_dir))  # repeats every text of item 0
    rows, results = [], []
    for flag in (False, True):
        m = FGCLIP2Pretrainer(checkpoint=str(tiny_dir), unique_texts=flag)
        seen = []
        m.fgclip.text_model.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
        out = m(**batch)
        total = sum(v for k, v in out.items() if k.startswith("loss"))
        total.backward()
        rows.append(sum(seen))
        results.append(({k: float(v) for k, v in out.items() if k.startswith("loss")},
                         m.fgclip.text_model.embeddings.token_embedding.weight.grad.clone(),
                         m.fgclip.boxtext_head.weight.grad.clone()))
    box_rows = torch.cat([batch["region_texts"], batch["hard_texts"].reshape(-1, 64)])
    distinct = sum(torch.unique(t, dim=0).shape[0] for t in (batch["text_long"], batch["text_short"], box_rows))
    assert rows == [batch["text_long"].shape[0] + batch["text_short"].shape[0] + box_rows.shape[0], distinct]
    assert rows[1] < rows[0]
    (plain, tok_plain, head_plain), (unique, tok_unique, head_unique) = results
    assert unique == pytest.approx(plain, abs=1e-5)
    # float rounding only: the gradients of repeated rows are summed in another order
    assert torch.allclose(tok_unique, tok_plain, atol=1e-5) and torch.allclose(head_unique, head_plain, atol=1e-5)


def test_bf16_autocast_option(world, tiny_dir):
    batch = naflex_pretrain_collate([dataset(world, region_caption="short")[i] for i in range(3)],
                                    tokenizer=str(tiny_dir))
    fp32 = FGCLIP2Pretrainer(checkpoint=str(tiny_dir))(**batch)
    bf16 = FGCLIP2Pretrainer(checkpoint=str(tiny_dir), amp_dtype="bfloat16")(**batch)
    for k in ("loss_global_long", "loss_fgv", "loss_fgt"):
        assert bf16[k].dtype == torch.float32 and torch.isfinite(bf16[k])
        assert float(bf16[k]) == pytest.approx(float(fp32[k]), rel=0.05), k  # bf16 rounding, same losses
