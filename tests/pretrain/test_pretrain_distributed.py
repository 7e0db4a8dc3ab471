"""Pretraining on several ranks as a user runs it: tools/dist_train.sh (torchrun, gloo on CPU) with the
language-homogeneous global batches, bad-sample replacement, mid-epoch kill and resume, and a
two-"node" launch. What each rank trained on is recorded from the batches themselves
(tests/dist_probe.py), not from the sampler."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from dist_helpers import free_port, run_ranks
from fgclip2_det.datasets.synthetic import generate_world
from fgclip2_det.pretrain import FineHARDDataset, GlobalLanguageBatchSampler
from fgclip2_det.pretrain.dataset import next_same_language
from fgclip2_det.pretrain.sampler import ResumeLanguageBatchesHook, _ReplayedIterations

ROOT = Path(__file__).resolve().parents[2]
EPOCH_CONFIG = ROOT / "tests/configs/pretrain_tiny_stage2_epochs.py"
ITER_CONFIG = ROOT / "configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic.py"
N_ZH = 13  # Chinese samples kept: fewer than the English ones (unequal languages)
TIMEOUT = 420


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = generate_world(tmp_path_factory.mktemp("dist-world"), 20, seed=1, workers=1)
    zh = json.loads((root / "pretrain/zh.json").read_text(encoding="utf-8"))
    (root / "pretrain/zh_small.json").write_text(json.dumps(zh[:N_ZH], ensure_ascii=False), encoding="utf-8")
    assert n_english(root) > N_ZH + 1
    return root


def n_english(world) -> int:
    return len(json.loads((Path(world) / "pretrain/en.json").read_text(encoding="utf-8")))


def language_dataset(world, **kw):
    return FineHARDDataset("pretrain/en.json", data_root=str(world), zh_ann_file="pretrain/zh_small.json", **kw)


# ------------------------------------------------------------------------------ sampler units
class _Seeded:
    """What the sampler reads from MMEngine's DefaultSampler."""

    def __init__(self, dataset, seed=0, shuffle=True, epoch=0):
        self.dataset, self.seed, self.shuffle, self.epoch = dataset, seed, shuffle, epoch


class _Langs:
    def __init__(self, ids):
        self.language_ids = np.asarray(ids, dtype=np.uint8)

    def __len__(self):
        return len(self.language_ids)


def indices(sampler):
    """The sampler's batches as dataset indices (it yields (index, seed, epoch) keys)."""
    batches = list(sampler)
    assert all(k[1:] == (sampler.seed, k[2]) for b in batches for k in b)
    return [[k[0] for k in b] for b in batches]


def rank_batches(ids, batch_size, world_size, **kw):
    ds = _Langs(ids)
    return [indices(GlobalLanguageBatchSampler(_Seeded(ds, **kw), batch_size, rank=r, world_size=world_size))
            for r in range(world_size)]


def test_global_batches_one_language_per_step_and_equal_lengths():
    ids = [0] * 23 + [1] * 9  # 23 English, 9 Chinese
    per_rank = rank_batches(ids, batch_size=2, world_size=2)
    assert [len(b) for b in per_rank] == [5 + 2, 5 + 2], "every rank: 23 // 4 + 9 // 4 batches"
    seen = []
    for step in zip(*per_rank):
        langs = {ids[i] for batch in step for i in batch}
        assert len(langs) == 1, f"step mixes languages: {step}"
        assert all(len(batch) == 2 for batch in step)
        seen += [i for batch in step for i in batch]
    assert len(seen) == len(set(seen)) == 28, "no sample twice in an epoch"


def test_global_batches_follow_seed_and_epoch_and_pad_without_drop_last():
    ids = [0] * 10 + [1] * 6
    a, b = rank_batches(ids, 2, 2, epoch=1), rank_batches(ids, 2, 2, epoch=1)
    assert a == b, "a function of (seed, epoch)"
    assert a != rank_batches(ids, 2, 2, epoch=2) and a != rank_batches(ids, 2, 2, seed=5, epoch=1)
    ds = _Langs(ids)
    full = [indices(GlobalLanguageBatchSampler(_Seeded(ds), 2, drop_last=False, rank=r, world_size=2)) for r in (0, 1)]
    assert len(full[0]) == len(full[1]) == 3 + 2
    covered = {i for r in full for batch in r for i in batch}
    assert covered == set(range(16)), "drop_last=False: every sample, the last batches completed by wrapping"
    assert all(len(batch) == 2 for r in full for batch in r)


def test_resume_at_yields_the_rest_of_the_epoch_once():
    ds = _Langs([0] * 12 + [1] * 8)
    sampler = GlobalLanguageBatchSampler(_Seeded(ds, epoch=3), 2, rank=1, world_size=2)
    whole = list(sampler)
    sampler.resume_at(3, 2)
    assert list(sampler) == whole[2:]
    assert list(sampler) == whole, "back to whole epochs after the resumed one"
    with pytest.raises(ValueError, match="outside an epoch"):
        sampler.resume_at(0, len(whole) + 1)


def test_resume_hook_positions_and_refuses_another_layout():
    """After a resume the epoch loop restarts at iter - epoch * len; a checkpoint laid out with another
    global batch size cannot be mapped to samples and is refused."""
    from types import SimpleNamespace

    sampler = GlobalLanguageBatchSampler(_Seeded(_Langs([0] * 12 + [1] * 8), epoch=1), 2, rank=0, world_size=2)
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(batch_sampler=sampler), iter=len(sampler) + 2,
                             epoch=1, train_loop=SimpleNamespace())
    hook, checkpoint = ResumeLanguageBatchesHook(), {"meta": {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint["meta"]["language_batches"]["global_batch_size"] == 4
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(runner)
    assert indices(sampler) == rank_batches([0] * 12 + [1] * 8, 2, 2, epoch=1)[0][2:]
    other = GlobalLanguageBatchSampler(_Seeded(_Langs([0] * 12 + [1] * 8)), 1, rank=0, world_size=2)
    runner.train_dataloader.batch_sampler = other
    with pytest.raises(RuntimeError, match="cannot resume mid-epoch: .*'global_batch_size': 4"):
        hook.before_train(runner)


def test_sampler_errors_are_clear():
    with pytest.raises(ValueError, match="no language has 8 samples"):
        GlobalLanguageBatchSampler(_Seeded(_Langs([0] * 5 + [1] * 3)), 4, rank=0, world_size=2)
    with pytest.raises(TypeError, match="language_ids"):
        GlobalLanguageBatchSampler(_Seeded(list(range(4))), 2, rank=0, world_size=1)


def test_random_region_captions_follow_the_sampler_key(world):
    """The official per-access random pick of a region's short or long caption, seeded by the
    (index, seed, epoch) key: reproducible across workers and resumes, different across epochs."""
    ds = language_dataset(world)

    def captions(key):
        return [c for _, c in ds[key]["regions"]]

    assert captions((0, 0, 1)) == captions((0, 0, 1))
    epochs = {tuple(c for i in range(8) for c in captions((i, 0, e))) for e in range(6)}
    assert len(epochs) > 1, "another epoch draws other captions"
    region = ds.samples[0].regions[0]
    assert captions((0, 0, 1))[0] in (region.short_expr.lower(), region.long_expr.lower())


def test_bad_sample_replaced_by_next_of_same_language(world, tmp_path):
    copy = Path(shutil.copytree(world, tmp_path / "w"))
    ds = language_dataset(copy, region_caption="short")
    en = [i for i, lang in enumerate(ds.language_ids) if lang == 0]
    (copy / ds.samples[en[-1]].image).write_bytes(b"not a jpeg")  # the last English sample
    assert next_same_language(ds.language_ids, en[-1]) == en[0], "cyclic, and never a Chinese sample"
    item = ds[en[-1]]
    assert item["replaced"] == 1
    assert np.array_equal(item["image"], ds[en[0]]["image"]) and item["short"] == ds[en[0]]["short"]
    assert ds[en[0]]["replaced"] == 0
    with pytest.raises(ValueError, match=r"bad sample .* \(image .*\): "):
        language_dataset(copy, on_bad_sample="raise")[en[-1]]
    with pytest.raises(ValueError, match="'skip'"):
        language_dataset(copy, on_bad_sample="skip")


# -------------------------------------------------------------------------- torchrun runs
def launch(config, work_dir, world, tiny_dir, opts=(), nproc=2, env=None, hooks=(), resume=None):
    """tools/dist_train.sh on a config that adds the probe hooks to ``config``; returns the process."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    hooks = [dict(type="ResumeLanguageBatchesHook"),
             dict(type="RecordBatchesHook", out_dir=str(work_dir / "batches"), tokenizer=str(tiny_dir)), *hooks]
    probe_config = work_dir / f"probe_{len(list(work_dir.glob('probe_*.py')))}.py"
    probe_config.write_text(f"_base_ = [{str(config)!r}]\n"
                            "custom_imports = dict(imports=['fgclip2_det', 'dist_probe'], allow_failed_imports=False)\n"
                            f"custom_hooks = {hooks!r}\n", encoding="utf-8")
    options = [f"model.checkpoint={tiny_dir}", f"train_dataloader.collate_fn.tokenizer={tiny_dir}",
               f"train_dataloader.dataset.data_root={world}", "train_dataloader.dataset.zh_ann_file=pretrain/zh_small.json",
               "train_dataloader.batch_size=2", *opts]
    cmd = ["bash", "tools/dist_train.sh", str(probe_config), str(nproc), "--work-dir", str(work_dir)]
    cmd += (["--resume", str(resume)] if resume else []) + ["--cfg-options", *options]
    env = {**os.environ, "PORT": str(free_port()), "PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1",
           **(env or {})}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dist_train(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = launch(*args, **kwargs)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def records(work_dir, rank):
    path = Path(work_dir) / "batches" / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_two_ranks_epoch_loop_one_language_per_step_and_bad_image_replaced(world, tiny_dir, tmp_path):
    copy = Path(shutil.copytree(world, tmp_path / "w"))
    ds = language_dataset(copy)
    bad = n_english(world) - 1  # the last English sample: its image is not among the Chinese ones kept
    assert ds.samples[bad].image not in {s.image for s in ds.samples[n_english(world):]}
    (copy / ds.samples[bad].image).write_bytes(b"\x89PNG truncated")  # one corrupt image
    proc = dist_train(EPOCH_CONFIG, tmp_path / "run", copy, tiny_dir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [records(tmp_path / "run", r) for r in (0, 1)]
    steps_per_epoch = n_english(world) // 4 + N_ZH // 4
    assert [len(r) for r in ranks] == [2 * steps_per_epoch] * 2, "both ranks ran the same number of steps"
    for a, b in zip(*ranks):
        assert a["iter"] == b["iter"] and a["language"] == b["language"] != "mixed", (a, b)
        assert a["n"] == b["n"] == 2, "batch sizes stay equal"
    langs = [r["language"] for r in ranks[0]]
    assert langs.count("zh") == 2 * (N_ZH // 4) and langs.count("en") == 2 * (n_english(world) // 4)
    assert sum(r["replaced"] for rank in ranks for r in rank) == 2, "the corrupt image, once per epoch"
    state = torch.load(tmp_path / "run" / f"iter_{2 * steps_per_epoch}.pth", map_location="cpu")["state_dict"]
    assert int(state["replaced_samples_total"]) == 2
    log = next((tmp_path / "run").glob("*/*.log")).read_text()
    assert "replaced_samples_total: 2" in log and f"replacing bad sample {bad} " in proc.stdout + proc.stderr + log


@pytest.mark.slow
def test_two_ranks_killed_mid_epoch_resume_like_uninterrupted(world, tiny_dir, tmp_path):
    steps_per_epoch = n_english(world) // 4 + N_ZH // 4
    kill = steps_per_epoch + 3  # in the second epoch
    ckpt = [f"default_hooks.checkpoint.interval={kill}"]
    full = dist_train(EPOCH_CONFIG, tmp_path / "full", world, tiny_dir, ckpt)
    assert full.returncode == 0, full.stderr[-4000:]
    killed = dist_train(EPOCH_CONFIG, tmp_path / "killed", world, tiny_dir, ckpt,
                        hooks=[dict(type="KillAtHook", n=kill)])
    assert killed.returncode != 0 and f"killed after iteration {kill}" in killed.stderr
    resumed = dist_train(EPOCH_CONFIG, tmp_path / "killed", world, tiny_dir, ckpt,
                         resume=tmp_path / "killed" / f"iter_{kill}.pth")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resuming language batches at epoch 1, batch 3 of {steps_per_epoch}" in resumed.stdout + resumed.stderr
    for rank in (0, 1):
        seen = [(r["iter"], r["short"]) for r in records(tmp_path / "killed", rank)]
        assert seen == [(r["iter"], r["short"]) for r in records(tmp_path / "full", rank)], f"rank {rank}"
    last = f"iter_{2 * steps_per_epoch}.pth"
    a = torch.load(tmp_path / "full" / last, map_location="cpu")
    b = torch.load(tmp_path / "killed" / last, map_location="cpu")
    assert float(a["state_dict"]["cmr_loss.threshold"]) > 0, "a non-trivial CMR threshold to compare"
    for k, v in a["state_dict"].items():
        assert torch.allclose(v.float(), b["state_dict"][k].float(), atol=1e-6, rtol=0), k
    oa, ob = a["optimizer"]["state"], b["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for k in oa:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(oa[k][name], ob[k][name], atol=1e-7, rtol=0), (k, name)


def test_replayed_iterations_read_no_data():
    """MMEngine's IterBasedTrainLoop calls next() once per trained iteration after a resume; those
    calls must not reach the data loader (the sampler already starts at the right batch)."""
    pulled = []

    def loader():
        for i in range(10):
            pulled.append(i)
            yield i

    it = _ReplayedIterations(loader(), skip=3)
    assert [next(it) for _ in range(5)] == [None, None, None, 0, 1] and pulled == [0, 1]


@pytest.mark.slow
def test_iter_loop_resume_mid_epoch(world, tiny_dir, tmp_path):
    """One process, IterBasedTrainLoop (the tiny configs' loop): resumed mid sampler-epoch, the run sees
    the same batches and ends with the same weights as an uninterrupted one."""
    steps_per_epoch = n_english(world) // 2 + N_ZH // 2
    kill, total = steps_per_epoch + 2, steps_per_epoch + 4
    opts = [f"train_cfg.max_iters={total}", f"default_hooks.checkpoint.interval={kill}"]
    full = dist_train(ITER_CONFIG, tmp_path / "full", world, tiny_dir, opts, nproc=1)
    assert full.returncode == 0, full.stderr[-4000:]
    killed = dist_train(ITER_CONFIG, tmp_path / "killed", world, tiny_dir, opts, nproc=1,
                        hooks=[dict(type="KillAtHook", n=kill)])
    assert killed.returncode != 0
    resumed = dist_train(ITER_CONFIG, tmp_path / "killed", world, tiny_dir, opts, nproc=1,
                         resume=tmp_path / "killed" / f"iter_{kill}.pth")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    out = resumed.stdout + resumed.stderr
    assert f"resuming language batches at epoch 1, batch 2 of {steps_per_epoch}" in out
    seen = [(r["iter"], r["short"]) for r in records(tmp_path / "killed", 0)]
    assert seen == [(r["iter"], r["short"]) for r in records(tmp_path / "full", 0)]
    a = torch.load(tmp_path / "full" / f"iter_{total}.pth", map_location="cpu")["state_dict"]
    b = torch.load(tmp_path / "killed" / f"iter_{total}.pth", map_location="cpu")["state_dict"]
    for k, v in a.items():
        assert torch.allclose(v.float(), b[k].float(), atol=1e-6, rtol=0), k


@pytest.mark.slow
def test_two_nodes_one_process_each(world, tiny_dir, tmp_path):
    """Two tools/dist_train.sh launches with NNODES=2 rendezvous on 127.0.0.1, one process each: one
    job of world size 2 (same steps, same language per step, one checkpoint written by node 0)."""
    port = str(free_port())
    opts = ["train_cfg.max_iters=3", "default_hooks.checkpoint.interval=3"]
    procs = [launch(ITER_CONFIG, tmp_path / f"node{node}", world, tiny_dir, opts, nproc=1,
                    env={"NNODES": "2", "NODE_RANK": str(node), "MASTER_ADDR": "127.0.0.1", "PORT": port})
             for node in (0, 1)]
    try:
        outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    node0, node1 = records(tmp_path / "node0", 0), records(tmp_path / "node1", 1)
    assert len(node0) == len(node1) == 3
    assert [r["language"] for r in node0] == [r["language"] for r in node1]
    assert node0[0]["short"] != node1[0]["short"], "each node trains on its own slice of the global batch"
    assert (tmp_path / "node0" / "iter_3.pth").is_file(), "global rank 0 (node 0) writes the checkpoint"
    assert not (tmp_path / "node1" / "iter_3.pth").exists()


def test_slurm_train_builds_the_srun_command(tmp_path):
    """tools/slurm_train.sh hands srun MMDetection's layout (one task per GPU, --launcher slurm);
    a stand-in srun on PATH records what it was given (no Slurm cluster here)."""
    fake = tmp_path / "srun"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_ARGS_OUT"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SRUN_ARGS_OUT": str(tmp_path / "args"),
           "GPUS": "16", "GPUS_PER_NODE": "8", "SRUN_ARGS": "--qos=high"}
    config = "configs/pretrain/fgclip2-stage2_fgclip2-base_finehard.py"
    proc = subprocess.run(["bash", "tools/slurm_train.sh", "gpu", "s2", config,
                           "work_dirs/s2", "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "args").read_text().split("\n")
    for expected in ("-p", "gpu", "--job-name=s2", "--gres=gpu:8", "--ntasks=16", "--ntasks-per-node=8",
                     "--kill-on-bad-exit=1", "--qos=high", "tools/train.py", config,
                     "--work-dir=work_dirs/s2", "--launcher", "slurm", "--resume"):
        assert expected in args, (expected, args)


def _nan_worker(rank, port, world, tiny_dir, out):
    import datetime

    import torch.distributed as dist

    from fgclip2_det.pretrain import FGCLIP2Pretrainer, naflex_pretrain_collate

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    try:
        ds = language_dataset(world, region_caption="short")
        batch = naflex_pretrain_collate([ds[2 * rank], ds[2 * rank + 1]], tokenizer=tiny_dir)
        model = FGCLIP2Pretrainer(checkpoint=tiny_dir)
        if rank == 1:  # a local region term diverges on one rank only
            with torch.no_grad():
                model.logit_scale_finegrained.fill_(float("nan"))
        try:
            model(**batch)
            message = None
        except FloatingPointError as e:
            message = str(e)
        Path(out, f"rank{rank}.txt").write_text(repr(message))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_nonfinite_loss_on_one_rank_stops_every_rank(world, tiny_dir, tmp_path):
    run_ranks(_nan_worker, (str(world), str(tiny_dir), str(tmp_path)), timeout=240)
    rank0, rank1 = ((tmp_path / f"rank{r}.txt").read_text() for r in (0, 1))
    assert "non-finite pretraining loss term(s) on 1 other rank(s)" in rank0
    assert "non-finite pretraining loss term(s) ['fgv'" in rank1
