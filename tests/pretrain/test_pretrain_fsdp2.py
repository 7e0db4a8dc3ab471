"""FSDP2 (fgclip2_det.pretrain.fsdp2): one sharded step equals one DDP step and the single-process
reference, the strategy under MMEngine's FlexibleRunner (checkpoints, export, resume), and its options."""
from __future__ import annotations

import datetime
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from mmengine.optim import OptimWrapper
from torch import nn

from dist_helpers import free_port, run_ranks
from fgclip2_det.datasets.synthetic import generate_world
from fgclip2_det.model import FGCLIP2
from fgclip2_det.pretrain import FGCLIP2Pretrainer, FineHARDDataset, naflex_pretrain_collate
from fgclip2_det.pretrain.export import export_runner_checkpoint
from fgclip2_det.pretrain.fsdp2 import (FSDP2OptimWrapper, FSDP2Strategy, clip_grad_norm_, clip_grad_value_,
                                        encoder_blocks, resolve_mixed_precision, shard_fgclip2,
                                        sync_replicated_grads)
from fgclip2_det.pretrain.losses import SigmoidContrastiveLoss

ROOT = Path(__file__).resolve().parents[2]
FSDP2_CONFIG = ROOT / "configs/pretrain/fgclip2-stage2_fgclip2-tiny_fsdp2_synthetic.py"
WORLD = 2
HALVES = ([0, 1], [2, 3])  # the global batch of the equivalence test, split over the ranks
GLOBAL_TERMS = ("loss_global_long", "loss_global_short")
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.98), 1e-6, 1e-4
MAX_NORM = 1e-3  # small enough that clipping acts (checks the DTensor-aware clip)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("fsdp2-world"), 20, seed=1, workers=1)


def _half_batch(world, tiny_dir, half: int) -> dict:
    ds = FineHARDDataset("pretrain/en.json", data_root=str(world), zh_ann_file="pretrain/zh.json",
                         region_caption="short")
    return naflex_pretrain_collate([ds[i] for i in HALVES[half]], tokenizer=str(tiny_dir))


def _wrapper(params, cls) -> OptimWrapper:
    optimizer = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    return cls(optimizer, clip_grad=dict(max_norm=MAX_NORM))


def _grad_norm(wrapper) -> float:
    return float(wrapper.message_hub.get_scalar("train/grad_norm").current())


def _losses(out: dict) -> dict[str, float]:
    return {k: v.item() for k, v in out.items() if k.startswith("loss_")}


def _step(net, batch, wrapper) -> dict[str, float]:
    out = net(**batch)
    wrapper.update_params(sum(v for k, v in out.items() if k.startswith("loss_")))
    return _losses(out)


# -------------------------------------------------------------------------- equivalence, 2 ranks
def _equivalence_worker(rank, port, tiny_dir, world, out_dir):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.tensor import DTensor
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=120))
    try:
        batch = _half_batch(world, tiny_dir, rank)
        res = {}
        model = FGCLIP2Pretrainer(checkpoint=tiny_dir)
        ddp = DistributedDataParallel(model, device_ids=None, find_unused_parameters=True)
        wrapper = _wrapper(ddp.parameters(), OptimWrapper)
        losses = _step(ddp, batch, wrapper)
        res["ddp"] = dict(losses=losses, grad_norm=_grad_norm(wrapper),
                          state={k: v.detach().clone() for k, v in model.state_dict().items()})

        model = shard_fgclip2(FGCLIP2Pretrainer(checkpoint=tiny_dir))
        wrapper = _wrapper(model.parameters(), FSDP2OptimWrapper)
        losses = _step(model, batch, wrapper)
        params = list(model.parameters())
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        res["fsdp2"] = dict(
            losses=losses, grad_norm=_grad_norm(wrapper),
            state={k: v.clone() for k, v in full.items()},  # on CPU, buffers come back as the live tensors
            n_params=len(params), dtensor_params=sum(isinstance(p, DTensor) for p in params),
            plain_params=[n for n, p in model.named_parameters() if not isinstance(p, DTensor)],
            local_numel=sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in params),
            full_numel=sum(p.numel() for p in params))
        res["clip"] = _clip_checks(model, batch)
        res["bf16"] = _bf16_step(tiny_dir, batch)
        res["sync"] = _sync_checks(rank)
        torch.save(res, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _full_grads(model) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    return {n: (p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad.clone())
            for n, p in model.named_parameters() if p.grad is not None}


def _backward(model, batch, checkpointing: bool, tau: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of the total loss as full tensors, replicated ones averaged; the CMR margin reset
    to ``tau`` first (every training forward updates it)."""
    for tower in (model.fgclip.vision_model, model.fgclip.text_model):
        tower.encoder.grad_checkpointing = checkpointing
    model.cmr_loss.threshold.copy_(tau)
    model.zero_grad(set_to_none=True)
    out = model(**batch)
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    sync_replicated_grads(model.parameters())
    return _full_grads(model)


def _max_abs(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in b)


def _clip_checks(model, batch) -> dict:
    """On the sharded model: activation checkpointing gives the same gradients, and both clips act
    on DTensor gradients as PyTorch's clips on the full ones."""
    tau = model.cmr_loss.threshold.clone()
    plain = _backward(model, batch, checkpointing=False, tau=tau)
    ckpt = _backward(model, batch, checkpointing=True, tau=tau)
    params = list(model.parameters())
    norm = clip_grad_norm_(params, MAX_NORM)
    expected = torch.linalg.vector_norm(torch.stack([g.norm() for g in ckpt.values()]))
    scaled = {k: g * (MAX_NORM / (float(expected) + 1e-6)) for k, g in ckpt.items()}
    after_norm = _full_grads(model)
    value = float(torch.cat([g.flatten() for g in after_norm.values()]).abs().median())
    clip_grad_value_(params, value)
    after_value = _full_grads(model)
    return dict(checkpointing=_max_abs(ckpt, plain), norm=float(norm), expected_norm=float(expected),
                norm_clip=_max_abs(after_norm, scaled), value=value,
                value_clip=_max_abs(after_value, {k: g.clamp(-value, value) for k, g in after_norm.items()}),
                scalar_grad=float(ckpt["logit_scale_hardneg"]))


def _sync_checks(rank: int) -> list:
    """A gradient on rank 0 only is averaged with rank 1's zeros; one on no rank stays None."""
    both, one, none = (nn.Parameter(torch.zeros(2)) for _ in range(3))
    both.grad = torch.full((2,), float(rank + 1))
    if rank == 0:
        one.grad = torch.tensor([4.0, -2.0])
    sync_replicated_grads([both, one, none])
    return [both.grad.tolist(), one.grad.tolist(), none.grad]


def _bf16_step(tiny_dir, batch) -> dict:
    """The 'bf16' policy (what 'auto' picks on GPUs) on CPU: finite losses near fp32, fp32 shards."""
    model = shard_fgclip2(FGCLIP2Pretrainer(checkpoint=tiny_dir), resolve_mixed_precision("bf16"))
    wrapper = _wrapper(model.parameters(), FSDP2OptimWrapper)
    losses = _step(model, batch, wrapper)
    dtypes = {str(p.dtype) for p in model.parameters()}
    return dict(losses=losses, dtypes=dtypes)


def _run_workers(target, args, timeout: float) -> None:
    run_ranks(target, args, WORLD, timeout)


class _RecordSigmoid(nn.Module):
    """Stands in for the sigmoid loss: keeps the embeddings, returns a graph-connected zero."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, image_emb, text_emb, logit_scale, logit_bias):
        self.calls.append((image_emb, text_emb, logit_scale, logit_bias))
        return image_emb.sum() * 0


def _reference_step(world, tiny_dir) -> dict:
    """One process, the official semantics: the global sigmoid terms on the concatenated batch (each
    half through its own collate, as on the ranks), the region terms local per half and averaged; the
    CMR threshold = clamp(mean of the halves' local τ̂); then the same optimizer step."""
    model = FGCLIP2Pretrainer(checkpoint=str(tiny_dir))
    cmr = model.cmr_loss
    lo, hi = cmr.min_threshold, cmr.max_threshold
    cmr.min_threshold, cmr.max_threshold = -math.inf, math.inf  # local τ̂ unclamped, clamp after the mean
    tau0 = cmr.threshold.clone()
    record = model.sigmoid_loss = _RecordSigmoid()
    halves, local_tau = [], []
    for half in range(WORLD):
        cmr.threshold.copy_(tau0)
        halves.append(model(**_half_batch(world, tiny_dir, half)))
        local_tau.append(float(cmr.threshold))
    cmr.min_threshold, cmr.max_threshold = lo, hi
    cmr.threshold.fill_(min(max(sum(local_tau) / WORLD, lo), hi))
    sigmoid = SigmoidContrastiveLoss()
    global_terms = {}
    for i, name in enumerate(GLOBAL_TERMS):  # calls: half 0 long, half 0 short, half 1 long, half 1 short
        calls = record.calls[i::2]
        img, txt = torch.cat([c[0] for c in calls]), torch.cat([c[1] for c in calls])
        global_terms[name] = model.loss_weights[name[len("loss_"):]] * sigmoid(img, txt, *calls[0][2:])
    local = [{k: v for k, v in out.items() if k.startswith("loss_") and k not in GLOBAL_TERMS} for out in halves]
    total = sum(global_terms.values()) + sum(sum(terms.values()) for terms in local) / WORLD
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    wrapper = _wrapper(model.parameters(), OptimWrapper)
    wrapper.update_params(total)
    return dict(global_terms={k: v.item() for k, v in global_terms.items()},
                local=[{k: v.item() for k, v in terms.items()} for terms in local], local_tau=local_tau,
                grad_norm=_grad_norm(wrapper), before=before, state=model.state_dict())


@pytest.fixture(scope="module")
def equivalence(world, tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp2-equivalence")
    _run_workers(_equivalence_worker, (str(tiny_dir), str(world), str(out)), timeout=240)
    ranks = [torch.load(out / f"rank{r}.pt", map_location="cpu") for r in range(WORLD)]
    return ranks, _reference_step(world, tiny_dir)


def _max_diff(a: dict, b: dict) -> tuple[float, str]:
    diffs = {k: float((a[k].double() - b[k].double()).abs().max()) for k in b}
    worst = max(diffs, key=diffs.get)
    return diffs[worst], worst


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
def test_one_step_equals_the_single_process_reference(equivalence, kind):
    ranks, ref = equivalence
    for rank, res in enumerate(ranks):
        for name, value in ref["local"][rank].items():  # region terms are local to each rank
            assert res[kind]["losses"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (kind, rank, name)
    for name, value in ref["global_terms"].items():  # global terms: the mean over ranks
        mean = sum(r[kind]["losses"][name] for r in ranks) / WORLD
        assert mean == pytest.approx(value, rel=1e-5, abs=1e-6), (kind, name)
    assert set(ranks[0][kind]["losses"]) == set(GLOBAL_TERMS) | set(ref["local"][0])
    for res in ranks:
        assert res[kind]["grad_norm"] == pytest.approx(ref["grad_norm"], rel=1e-4), kind
    assert ref["grad_norm"] > 10 * MAX_NORM, "clipping must act for this test to check it"
    state = ranks[0][kind]["state"]
    assert list(state) == list(ref["state"]), "same keys, same order as the unsharded model"
    assert all(type(v) is torch.Tensor for v in state.values())
    assert torch.equal(state["_extra_state"], ref["state"]["_extra_state"])
    diff, worst = _max_diff(state, ref["state"])
    print(f"{kind}: max |w - w_ref| after one step = {diff:.3g} ({worst}); grad norm "
          f"{ranks[0][kind]['grad_norm']:.6g} vs {ref['grad_norm']:.6g}; τ {float(state['cmr_loss.threshold']):.6g} "
          f"vs {float(ref['state']['cmr_loss.threshold']):.6g} (local τ̂ {ref['local_tau']})")
    assert diff <= 1e-5, f"{kind}: {worst} differs by {diff}"
    moved, _ = _max_diff(ref["state"], ref["before"])
    assert moved > 50 * 1e-5, "the step must move the weights for the comparison to mean something"
    assert float(state["cmr_loss.threshold"]) == pytest.approx(float(ref["state"]["cmr_loss.threshold"]), abs=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fsdp2_shards_blocks_and_keeps_scalars_replicated(equivalence):
    fsdp = [r["fsdp2"] for r in equivalence[0]]
    assert fsdp[1]["state"] == {}, "full state dicts are gathered on rank 0 only"
    assert fsdp[0]["plain_params"] == ["logit_scale_finegrained", "logit_scale_hardneg"]
    assert fsdp[0]["dtensor_params"] == fsdp[0]["n_params"] - 2, "every other parameter is a sharded DTensor"
    for r in fsdp:  # each rank holds about half of the weights
        assert r["local_numel"] < 0.6 * r["full_numel"]
    # the shards partition the weights; the two replicated scalars are on both ranks
    assert fsdp[0]["local_numel"] + fsdp[1]["local_numel"] == fsdp[0]["full_numel"] + 2


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fsdp2_grad_checkpointing_and_clipping_on_dtensor_grads(equivalence):
    clips = [r["clip"] for r in equivalence[0]]
    for c in clips:
        assert c["checkpointing"] <= 1e-6, "activation checkpointing must not change the gradients"
        assert c["norm"] == pytest.approx(c["expected_norm"], rel=1e-5) and c["norm"] > 10 * MAX_NORM
        assert c["norm_clip"] <= 1e-9 and c["value_clip"] == 0.0
    assert clips[0]["norm"] == clips[1]["norm"], "the total norm is global: equal on every rank"
    assert clips[0]["scalar_grad"] == clips[1]["scalar_grad"], "replicated gradients are averaged"
    print("clip checks:", clips)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_replicated_gradients_are_averaged_like_ddp(equivalence):
    for r in equivalence[0]:
        assert r["sync"] == [[1.5, 1.5], [2.0, -1.0], None]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fsdp2_bf16_policy_runs_on_cpu(equivalence):
    for r in equivalence[0]:
        assert r["bf16"]["dtypes"] == {"torch.float32"}, "sharded parameters stay fp32 (bf16 only when gathered)"
        for name, value in r["fsdp2"]["losses"].items():
            assert math.isfinite(r["bf16"]["losses"][name])
            assert r["bf16"]["losses"][name] == pytest.approx(value, rel=0.05, abs=0.02), name
    print("bf16 vs fp32 losses (rank 0):", {k: (round(v, 4), round(equivalence[0][0]["fsdp2"]["losses"][k], 4))
                                            for k, v in equivalence[0][0]["bf16"]["losses"].items()})


# ---------------------------------------------------------------------------------- the runner
def _dist_train(config, work_dir, world, tiny_dir, *extra):
    opts = [f"model.checkpoint={tiny_dir}", f"train_dataloader.collate_fn.tokenizer={tiny_dir}",
            f"train_dataloader.dataset.data_root={world}", "train_dataloader.dataset.region_caption=short",
            "train_dataloader.batch_size=3", "train_dataloader.num_workers=0", "train_cfg.max_iters=4",
            "default_hooks.checkpoint.interval=2", "default_hooks.logger.interval=1",
            "optim_wrapper.clip_grad.max_norm=1.0"]
    proc = subprocess.run(["bash", "tools/dist_train.sh", str(config), str(WORLD), "--work-dir", str(work_dir),
                           *extra, "--cfg-options", *opts], cwd=ROOT, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "PORT": str(free_port())})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_flexible_runner_fsdp2_checkpoint_export_and_resume(world, tiny_dir, tmp_path):
    run = tmp_path / "run"
    _dist_train(FSDP2_CONFIG, run, world, tiny_dir)
    log = next(run.glob("*/*.log")).read_text()
    assert "FSDP2Strategy" in log and "Distributed training: True" in log
    assert "grad_norm" in log, "clip_grad is on: the DTensor-aware clip logs the norm"
    assert "model_wrapper_cfg = None" in (run / FSDP2_CONFIG.name).read_text(), "no DDP wrapper config"
    ckpt = torch.load(run / "iter_4.pth", map_location="cpu")
    state = ckpt["state_dict"]
    single = FGCLIP2Pretrainer(checkpoint=str(tiny_dir)).state_dict()
    assert list(state) == list(single), "keys of a single-process checkpoint"
    assert all(type(v) is torch.Tensor and v.shape == single[k].shape for k, v in state.items())
    assert set(ckpt["optimizer"]["state"]) <= set(dict(FGCLIP2Pretrainer(checkpoint=str(tiny_dir))
                                                       .named_parameters()))
    assert {"param_schedulers", "meta", "message_hub"} <= set(ckpt)
    assert ckpt["meta"]["iter"] == 4
    moved = max(float((state[k] - single[k]).abs().max()) for k in single if k.startswith("fgclip."))
    assert moved > 1e-4, "four steps must change the weights"

    exported = export_runner_checkpoint(run / "iter_4.pth", tmp_path / "export")
    model = FGCLIP2.from_pretrained(exported)
    assert torch.equal(model.logit_bias, state["fgclip.logit_bias"])
    assert torch.equal(model.text_model.encoder.layers[0].mlp.fc1.weight,
                       state["fgclip.text_model.encoder.layers.0.mlp.fc1.weight"])

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy2(run / "iter_2.pth", resumed / "iter_2.pth")
    _dist_train(FSDP2_CONFIG, resumed, world, tiny_dir, "--resume", str(resumed / "iter_2.pth"))
    log = next(resumed.glob("*/*.log")).read_text()
    assert "resumed epoch: 0, iter: 2" in log
    final = torch.load(resumed / "iter_4.pth", map_location="cpu")
    diff = _max_diff(final["state_dict"], state)[0]
    optim, expected = final["optimizer"], ckpt["optimizer"]
    assert set(optim["state"]) == set(expected["state"])
    optim_diff = max(float((torch.as_tensor(optim["state"][k][s]).double()
                            - torch.as_tensor(v).double()).abs().max())
                     for k, slots in expected["state"].items() for s, v in slots.items())
    print(f"resume: max |w_resumed - w_uninterrupted| at iter 4 = {diff:.3g}, optimizer state {optim_diff:.3g}")
    assert diff <= 1e-6 and optim_diff <= 1e-6
    assert [g["lr"] for g in optim["param_groups"]] == [g["lr"] for g in expected["param_groups"]]
    assert optim["base_param_settings"]["lr"] == expected["base_param_settings"]["lr"]


# ------------------------------------------------------------------------------------- options
@pytest.mark.skipif(torch.cuda.is_available(), reason="'auto' means bf16 where CUDA is available")
def test_auto_mixed_precision_is_fp32_on_cpu():
    assert resolve_mixed_precision("auto") is None
    assert resolve_mixed_precision(None) is None


def test_bf16_policy_reduces_gradients_in_fp32():
    policy = resolve_mixed_precision("bf16")
    assert policy.param_dtype == torch.bfloat16 and policy.reduce_dtype == torch.float32


@pytest.mark.parametrize("value", ["fp16", "bfloat16", True])
def test_unknown_mixed_precision_is_a_clear_error(value):
    with pytest.raises(ValueError, match=r"mixed_precision must be one of \('auto', 'bf16', None\)"):
        FSDP2Strategy(mixed_precision=value)


def test_model_wrapper_is_refused():
    with pytest.raises(ValueError, match="model_wrapper"):
        FSDP2Strategy(model_wrapper=dict(type="MMDistributedDataParallel"))


def test_shard_needs_a_process_group_and_an_fgclip(tiny_dir):
    with pytest.raises(RuntimeError, match="torch.distributed initialised"):
        shard_fgclip2(FGCLIP2Pretrainer(checkpoint=str(tiny_dir)))
    with pytest.raises(TypeError, match=r"FG-CLIP 2 at '\.fgclip'.*Linear"):
        encoder_blocks(nn.Linear(2, 2))
    blocks = encoder_blocks(FGCLIP2Pretrainer(checkpoint=str(tiny_dir)))
    config = FGCLIP2.from_pretrained(tiny_dir).config
    assert len(blocks) == config.vision.num_hidden_layers + config.text.num_hidden_layers


def test_optimizer_state_of_another_strategy_or_model_is_refused():
    """Both checks run before any collective, so a stand-in strategy object is enough."""
    from types import SimpleNamespace

    lin = nn.Linear(2, 2)
    fake = SimpleNamespace(model=lin, optim_wrapper=SimpleNamespace(optimizer=torch.optim.SGD(lin.parameters(), lr=1)))
    with pytest.raises(ValueError, match="keyed by parameter index.*another strategy"):
        FSDP2Strategy.load_optim_state_dict(fake, {"state": {0: {}}, "param_groups": [{"params": [0, 1]}]})
    with pytest.raises(ValueError, match=r"other parameters.*missing \['bias'\], unexpected \['head.bias'\]"):
        FSDP2Strategy.load_optim_state_dict(fake, {"state": {}, "param_groups": [{"params": ["weight", "head.bias"]}]})
