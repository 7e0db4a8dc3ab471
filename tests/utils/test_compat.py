"""Tests for fgclip2_det.utils.compat.

1. mmengine runner checkpoints load under torch's weights-only default once the allow-list is in
   place: an interrupted + resumed run equals an uninterrupted one, bit for bit.
2. lvis 0.5.3 evaluates on numpy 2.x with the alias shim, and numbers come out as computed by hand.
"""
import json
import pickle
import re
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import fgclip2_det.utils.compat as compat

REPO = Path(__file__).resolve().parents[2]
MAX_ITERS = 8
HALF_ITERS = 4


@pytest.fixture(scope="module", autouse=True)
def patched():
    """Every test in this module runs with the patches applied (twice: idempotence)."""
    compat.apply_compat_patches()
    compat.apply_compat_patches()


COMPAT_FILE = REPO / "fgclip2_det" / "utils" / "compat.py"
# Loads compat.py by path, so the subprocess does not depend on (or run) the package __init__.
LOAD_COMPAT = f"""
import importlib.util
_spec = importlib.util.spec_from_file_location("compat_under_test", {str(COMPAT_FILE)!r})
compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)
"""


def _run_python(code, *args):
    """Run ``code`` in a fresh interpreter, with ``compat`` loaded but not applied.

    A fresh interpreter keeps patch state from leaking in either direction.
    """
    script = textwrap.dedent(LOAD_COMPAT) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------------------------
# 1. mmengine resume / load_from
# ----------------------------------------------------------------------------------------------
class ToyRegressor(BaseModel):
    """Linear regression with fixed initial weights: the same every time it is built."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[0.1, -0.2, 0.3]]))
            self.linear.bias.fill_(0.05)

    def forward(self, inputs, targets=None, mode="tensor"):
        preds = self.linear(inputs)
        if mode == "loss":
            return {"loss": F.mse_loss(preds, targets)}
        return preds


class ToyDataset(torch.utils.data.Dataset):
    """12 fixed samples of y = x . w + noise; 3 iterations per epoch at batch size 4, so the
    checkpoint at iteration 4 sits inside the second (reshuffled) epoch."""

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 3, generator=gen)
        noise = 0.1 * torch.randn(12, 1, generator=gen)
        self.y = self.x @ torch.tensor([[1.5], [-2.0], [0.5]]) + noise

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return dict(inputs=self.x[idx], targets=self.y[idx])


class IterRecorder(Hook):
    """Records where training started and the loss of every iteration."""

    def __init__(self):
        self.start_iter = None
        self.losses = {}

    def before_train(self, runner):
        self.start_iter = runner.iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[batch_idx] = float(outputs["loss"].detach())


def _make_runner(work_dir, name, max_iters=None, resume=False, load_from=None, recorder=None):
    """A CPU Runner for the toy model; ``max_iters=None`` builds one without a train loop."""
    train = {}
    if max_iters is not None:
        train = dict(
            train_dataloader=dict(dataset=ToyDataset(), batch_size=4, num_workers=0,
                                  sampler=dict(type="DefaultSampler", shuffle=True),
                                  collate_fn=dict(type="default_collate")),
            train_cfg=dict(type="IterBasedTrainLoop", max_iters=max_iters),
            optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.05, weight_decay=0.01)),
            param_scheduler=dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0,
                                 end=MAX_ITERS),
            default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=HALF_ITERS,
                                               by_epoch=False)),
            custom_hooks=[recorder] if recorder is not None else None,
        )
    return Runner(model=ToyRegressor(), work_dir=str(work_dir), experiment_name=name,
                  randomness=dict(seed=0), resume=resume, load_from=load_from,
                  log_level="WARNING", **train)


def _adam_state(runner):
    """Per-parameter AdamW state (exp_avg, exp_avg_sq, step) plus the current learning rates."""
    state = runner.optim_wrapper.optimizer.state_dict()
    per_param = {idx: {k: v.clone() for k, v in s.items()} for idx, s in state["state"].items()}
    return per_param, [group["lr"] for group in state["param_groups"]]


def _weights(runner):
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def _full_data_loss(model):
    """MSE of ``model`` on the whole toy dataset (per-batch losses are too noisy to compare)."""
    data = ToyDataset()
    with torch.no_grad():
        return float(model(data.x, data.y, mode="loss")["loss"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Run (a): 8 iterations in one go, checkpoints at 4 and 8."""
    work_dir = tmp_path_factory.mktemp("uninterrupted")
    recorder = IterRecorder()
    runner = _make_runner(work_dir, f"compat_a_{work_dir.name}", MAX_ITERS, recorder=recorder)
    runner.train()
    return dict(work_dir=work_dir, weights=_weights(runner), adam=_adam_state(runner),
                losses=recorder.losses, final_iter=runner.iter,
                loss_before=_full_data_loss(ToyRegressor()),
                loss_after=_full_data_loss(runner.model))


def test_uninterrupted_run_trains(uninterrupted):
    """Sanity of the reference run: 8 iterations, it learned, both checkpoints written."""
    assert uninterrupted["final_iter"] == MAX_ITERS
    assert sorted(uninterrupted["losses"]) == list(range(MAX_ITERS))
    assert uninterrupted["loss_after"] < 0.8 * uninterrupted["loss_before"], uninterrupted
    for it in (HALF_ITERS, MAX_ITERS):
        assert (uninterrupted["work_dir"] / f"iter_{it}.pth").is_file()


def test_resume_matches_uninterrupted_run(uninterrupted, tmp_path):
    """Run (b): 4 iterations, stop, a new Runner with resume=True goes on to 8 -> same state."""
    first = _make_runner(tmp_path, f"compat_b1_{tmp_path.name}", HALF_ITERS)
    first.train()
    assert (tmp_path / f"iter_{HALF_ITERS}.pth").is_file()

    recorder = IterRecorder()
    resumed = _make_runner(tmp_path, f"compat_b2_{tmp_path.name}", MAX_ITERS, resume=True,
                           recorder=recorder)
    resumed.train()

    assert recorder.start_iter == HALF_ITERS, "resume did not restore the iteration counter"
    assert sorted(recorder.losses) == list(range(HALF_ITERS, MAX_ITERS))
    assert resumed.iter == MAX_ITERS
    # same data order and same parameters each iteration -> the same loss values, exactly
    for it in range(HALF_ITERS, MAX_ITERS):
        assert recorder.losses[it] == uninterrupted["losses"][it], f"iteration {it} differs"

    weights = _weights(resumed)
    assert weights.keys() == uninterrupted["weights"].keys()
    for key, value in uninterrupted["weights"].items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=1e-7, msg=key)

    state, lrs = _adam_state(resumed)
    ref_state, ref_lrs = uninterrupted["adam"]
    assert lrs == pytest.approx(ref_lrs, abs=1e-12)
    assert state.keys() == ref_state.keys()
    for idx, ref in ref_state.items():
        assert set(state[idx]) == {"step", "exp_avg", "exp_avg_sq"}
        assert float(state[idx]["step"]) == MAX_ITERS
        for name, value in ref.items():
            torch.testing.assert_close(state[idx][name], value, rtol=0, atol=1e-7,
                                       msg=f"param {idx} {name}")


def test_load_from_runner_checkpoint(uninterrupted, tmp_path):
    """load_from (no resume) puts the checkpoint's weights into a fresh model."""
    ckpt = uninterrupted["work_dir"] / f"iter_{MAX_ITERS}.pth"
    runner = _make_runner(tmp_path, f"compat_c_{tmp_path.name}", load_from=str(ckpt))
    before = _weights(runner)
    runner.load_or_resume()
    after = _weights(runner)
    assert not torch.equal(before["linear.weight"], after["linear.weight"])
    for key, value in uninterrupted["weights"].items():
        assert torch.equal(after[key], value), key


def test_plain_weights_only_load_of_runner_checkpoint(uninterrupted):
    """torch.load with its default (weights_only=True) reads the whole runner checkpoint."""
    from mmengine.logging.history_buffer import HistoryBuffer

    ckpt = torch.load(uninterrupted["work_dir"] / f"iter_{MAX_ITERS}.pth")
    assert ckpt["meta"]["iter"] == MAX_ITERS
    buffers = ckpt["message_hub"]["log_scalars"]
    assert isinstance(buffers["train/loss"], HistoryBuffer)
    assert buffers["train/loss"].current() == pytest.approx(uninterrupted["losses"][MAX_ITERS - 1])
    assert torch.equal(ckpt["state_dict"]["linear.weight"],
                       uninterrupted["weights"]["linear.weight"])


# What torch must find allow-listed to load a runner checkpoint (compat.checkpoint_safe_globals).
EXPECTED_SAFE_GLOBALS = {
    "mmengine.logging.history_buffer.HistoryBuffer",
    "builtins.getattr",  # restricted stand-in, see test_restricted_getattr_*
    "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar",  # numpy 1.x pickles
    "numpy.ndarray", "numpy.dtype", "numpy.dtypes.Float64DType", "numpy.dtypes.Int64DType",
}


class _NotAllowed:
    """An arbitrary class: weights-only loading must still refuse it."""

    def __init__(self):
        self.payload = [1, 2, 3]


@pytest.mark.parametrize("obj, error", [
    (_NotAllowed(), f"Unsupported global: GLOBAL {__name__}._NotAllowed"),
    (np.array([{"a": 1}], dtype=object), "but got <class 'numpy.dtypes.ObjectDType'>"),
], ids=["custom_class", "numpy_object_array"])
def test_weights_only_still_refuses_unknown_globals(obj, error, tmp_path):
    """The allow-list is narrow: other classes and object arrays are still refused."""
    path = tmp_path / "evil.pth"
    torch.save({"x": obj}, path)
    with pytest.raises(pickle.UnpicklingError, match=re.escape(error)):
        torch.load(path)


def test_patch_is_needed_and_sufficient(uninterrupted):
    """In a fresh interpreter mmengine's own loader fails before the patch and works after it;
    torch's scan of the checkpoint finds globals outside its defaults before, none after."""
    code = """
        import json, sys, torch
        from mmengine.runner import CheckpointLoader
        path = sys.argv[1]
        scan = torch.serialization.get_unsafe_globals_in_checkpoint
        print("SCAN-BEFORE", json.dumps(sorted(scan(path))))
        try:
            CheckpointLoader.load_checkpoint(path, map_location="cpu")
        except Exception as err:
            print("UNPATCHED-FAILED", type(err).__name__, str(err).replace("\\n", " "))
        else:
            print("UNPATCHED-LOADED")
        compat.apply_compat_patches()
        print("SCAN-AFTER", json.dumps(sorted(scan(path))))
        ckpt = CheckpointLoader.load_checkpoint(path, map_location="cpu")
        print("PATCHED-LOADED", ckpt["meta"]["iter"])
    """
    proc = _run_python(code, uninterrupted["work_dir"] / f"iter_{MAX_ITERS}.pth")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in proc.stdout.splitlines()
             if line.startswith(("SCAN-", "UNPATCHED-", "PATCHED-"))}
    assert "UNPATCHED-LOADED" not in lines, (
        "mmengine checkpoints load without the allow-list: mmengine or torch changed, "
        "the patch in fgclip2_det/utils/compat.py may be obsolete")
    failure = lines["UNPATCHED-FAILED"]
    assert failure.startswith("UnpicklingError") and "Unsupported global" in failure, failure
    assert "HistoryBuffer" in failure, failure
    before = set(json.loads(lines["SCAN-BEFORE"]))
    assert {"mmengine.logging.history_buffer.HistoryBuffer", "builtins.getattr",
            "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"} <= before
    assert before <= EXPECTED_SAFE_GLOBALS, before - EXPECTED_SAFE_GLOBALS
    assert json.loads(lines["SCAN-AFTER"]) == []
    assert lines["PATCHED-LOADED"] == str(MAX_ITERS)


def test_patch_before_mmengine_import(uninterrupted):
    """Patches applied before mmengine is imported (torch-only users, the package __init__) reach
    HistoryBuffer when mmengine is imported later; apply_compat_patches imports neither."""
    code = """
        import sys, torch
        compat.apply_compat_patches()
        assert "mmengine" not in sys.modules and "lvis" not in sys.modules, sorted(sys.modules)
        from mmengine.runner import CheckpointLoader
        ckpt = CheckpointLoader.load_checkpoint(sys.argv[1], map_location="cpu")
        print("PATCHED-LOADED", ckpt["meta"]["iter"])
    """
    proc = _run_python(code, uninterrupted["work_dir"] / f"iter_{MAX_ITERS}.pth")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"PATCHED-LOADED {MAX_ITERS}" in proc.stdout


def test_apply_is_idempotent():
    """Repeat calls add no second import hook and no new allow-list entries."""
    before = set(torch.serialization.get_safe_globals())
    for _ in range(3):
        compat.apply_compat_patches()
    hooks = [f for f in sys.meta_path if isinstance(f, compat._PostImportPatchFinder)]
    assert len(hooks) == 1
    assert set(torch.serialization.get_safe_globals()) == before


def _global_name(entry):
    return entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"


def test_safe_globals_are_exactly_the_documented_set():
    """The allow-list is what runner checkpoints need, nothing broader (no real getattr, no
    object dtype), and it is registered with torch."""
    entries = compat.checkpoint_safe_globals()
    assert {_global_name(e) for e in entries} == EXPECTED_SAFE_GLOBALS
    getattr_entry = next(e for e in entries if _global_name(e) == "builtins.getattr")
    assert getattr_entry[0] is not getattr
    registered = torch.serialization.get_safe_globals()
    assert all(e in registered for e in entries)


def _history_buffer_update():
    from mmengine.logging.history_buffer import HistoryBuffer
    return HistoryBuffer.update


@pytest.mark.parametrize("make_attr", [_history_buffer_update, lambda: OrderedDict.keys],
                         ids=["HistoryBuffer.update", "OrderedDict.keys"])
def test_restricted_getattr_refuses_other_attributes(make_attr, tmp_path):
    """getattr in a checkpoint resolves only to HistoryBuffer's statistics methods."""
    path = tmp_path / "attr.pth"
    torch.save({"f": make_attr()}, path)
    with pytest.raises(pickle.UnpicklingError, match="refused getattr"):
        torch.load(path)


def test_numpy1_pickle_names_load(tmp_path):
    """Checkpoints written under numpy 1.x name ``numpy.core.multiarray``; they load too."""
    arr = np.arange(6, dtype=np.int64).reshape(2, 3)
    path = tmp_path / "np1.pth"
    torch.save({"a": arr, "s": np.float64(2.5)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    assert data.count(b"numpy._core.multiarray") == 2  # _reconstruct and scalar
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    loaded = torch.load(path)
    np.testing.assert_array_equal(loaded["a"], arr)
    assert loaded["a"].dtype == np.int64 and loaded["s"] == 2.5


# ----------------------------------------------------------------------------------------------
# 2. lvis numpy shim
# ----------------------------------------------------------------------------------------------
APPLE, BANANA, CHERRY = 1, 3, 7  # non-contiguous ids: LVISMetric must map labels through cat ids
CATEGORIES = [  # json order = LVIS.get_cat_ids() order = label index in LVISMetric
    (APPLE, "apple", "f"), (BANANA, "banana", "c"), (CHERRY, "cherry", "r")]
IMAGES = [  # id, width, height, neg_category_ids
    (1, 100, 100, [CHERRY]), (2, 120, 80, []), (3, 100, 100, [APPLE])]
GT = [  # image_id, category_id, xywh
    (1, APPLE, [5, 5, 20, 20]), (1, APPLE, [50, 50, 30, 30]),
    (2, APPLE, [10, 10, 20, 20]), (2, APPLE, [60, 20, 50, 50]),  # the last one is "medium"
    (2, BANANA, [40, 5, 20, 15]), (3, BANANA, [10, 60, 30, 20]),
    (3, CHERRY, [50, 10, 20, 20])]


def _polygon(box):
    x, y, w, h = box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _lvis_json():
    """A tiny LVIS v1-format annotation file with one category per frequency bin."""
    cats = []
    for cid, name, freq in CATEGORIES:
        anns = [g for g in GT if g[1] == cid]
        cats.append(dict(id=cid, name=name, synonyms=[name], synset=f"{name}.n.01",
                         frequency=freq, image_count=len({g[0] for g in anns}),
                         instance_count=len(anns), **{"def": f"a {name}"}))
    images = [dict(id=i, width=w, height=h, file_name=f"{i:012d}.jpg", neg_category_ids=neg,
                   not_exhaustive_category_ids=[]) for i, w, h, neg in IMAGES]
    anns = [dict(id=k + 1, image_id=img, category_id=cid, bbox=box, area=box[2] * box[3],
                 segmentation=_polygon(box)) for k, (img, cid, box) in enumerate(GT)]
    return dict(info={}, licenses=[], images=images, categories=cats, annotations=anns)


def _perfect_detections():
    return [dict(image_id=img, category_id=cid, bbox=box, score=0.9) for img, cid, box in GT]


def _flawed_detections():
    """Hand-made errors with known per-category AP (101 recall points, every IoU threshold).

    apple (f): 2 of 4 GT found (recall 0.5), ranked below a false positive on image 3, where apple
        is a *negative* category, so it counts: precision 2/3 up to recall 0.5 -> 51/101 * 2/3.
    banana (c): both GT found, ranked below a false positive on image 2 -> precision 2/3 at every
        recall -> 2/3.
    cherry (r): found; an extra high-scoring cherry box on image 2, where cherry is neither positive
        nor negative, is ignored (federated evaluation) -> 1.
    """
    return [
        dict(image_id=1, category_id=APPLE, bbox=[5, 5, 20, 20], score=0.9),
        dict(image_id=2, category_id=APPLE, bbox=[10, 10, 20, 20], score=0.9),
        dict(image_id=3, category_id=APPLE, bbox=[70, 70, 20, 20], score=0.95),
        dict(image_id=2, category_id=BANANA, bbox=[80, 50, 20, 20], score=0.95),
        dict(image_id=2, category_id=BANANA, bbox=[40, 5, 20, 15], score=0.8),
        dict(image_id=3, category_id=BANANA, bbox=[10, 60, 30, 20], score=0.7),
        dict(image_id=3, category_id=CHERRY, bbox=[50, 10, 20, 20], score=0.6),
        dict(image_id=2, category_id=CHERRY, bbox=[0, 0, 30, 30], score=0.99),
    ]


FLAWED_AP = {APPLE: 51 / 101 * 2 / 3, BANANA: 2 / 3, CHERRY: 1.0}


@pytest.fixture(scope="module")
def lvis_ann_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lvis") / "lvis_tiny.json"
    path.write_text(json.dumps(_lvis_json()))
    return path


def _lvis_eval(ann_file, detections):
    """Run LVISEval (bbox) end to end and return its summary dict."""
    from lvis import LVIS, LVISEval, LVISResults

    gt = LVIS(str(ann_file))
    evaluator = LVISEval(gt, LVISResults(gt, detections), iou_type="bbox")
    evaluator.run()
    return evaluator.get_results()


def test_lvis_shim_is_local_to_lvis():
    """lvis modules see the aliases; numpy itself does not grow them back."""
    import lvis.eval

    assert isinstance(lvis.eval.np, compat.NumpyWithAliases)
    assert lvis.eval.np.float is float and lvis.eval.np.int is int and lvis.eval.np.bool is bool
    assert lvis.eval.np.ndarray is np.ndarray and lvis.eval.np.linspace is np.linspace
    assert not hasattr(np, "float") and not hasattr(np, "int")


def test_lvis_eval_perfect_detections(lvis_ann_file):
    results = _lvis_eval(lvis_ann_file, _perfect_detections())
    for key in ("AP", "AP50", "AP75", "APr", "APc", "APf", "APs", "APm"):
        assert results[key] == pytest.approx(1.0), key
    assert results["APl"] == -1  # no large boxes in the file


def test_lvis_eval_flawed_detections_known_ap(lvis_ann_file):
    results = _lvis_eval(lvis_ann_file, _flawed_detections())
    assert results["APf"] == pytest.approx(FLAWED_AP[APPLE])
    assert results["APc"] == pytest.approx(FLAWED_AP[BANANA])
    assert results["APr"] == pytest.approx(FLAWED_AP[CHERRY])
    assert results["AP"] == pytest.approx(sum(FLAWED_AP.values()) / 3)


def _xyxy(box):
    x, y, w, h = box
    return [x, y, x + w, y + h]


def test_mmdet_lvis_metric_perfect_predictions(lvis_ann_file):
    """mmdet's LVISMetric on the same file: predictions in its data-sample format -> AP 1."""
    from mmdet.evaluation import LVISMetric

    metric = LVISMetric(ann_file=str(lvis_ann_file), metric="bbox")
    metric.dataset_meta = dict(classes=tuple(name for _, name, _ in CATEGORIES))
    label_of = {cid: label for label, (cid, _, _) in enumerate(CATEGORIES)}
    samples = []
    for img_id, width, height, _ in IMAGES:
        gts = [g for g in GT if g[0] == img_id]
        samples.append(dict(
            img_id=img_id, ori_shape=(height, width),
            pred_instances=dict(
                bboxes=torch.tensor([_xyxy(box) for _, _, box in gts], dtype=torch.float32),
                scores=torch.full((len(gts),), 0.9),
                labels=torch.tensor([label_of[cid] for _, cid, _ in gts]))))
    metric.process({}, samples)
    results = metric.evaluate(size=len(samples))
    assert results["lvis/bbox_AP"] == pytest.approx(1.0, abs=1e-3)
    assert results["lvis/bbox_APr"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("lvis_first", [False, True],
                         ids=["patch_then_import", "import_then_patch"])
def test_lvis_shim_in_either_import_order(lvis_ann_file, lvis_first):
    """The shim reaches lvis whether the patches come before lvis is imported (the import hook:
    the package __init__ order) or after (lvis already loaded, e.g. by mmdet.evaluation)."""
    code = """
        import inspect, json, sys
        lvis_first = sys.argv[3] == "True"
        if lvis_first:
            import lvis.eval
        compat.apply_compat_patches()
        assert ("lvis" in sys.modules) == lvis_first, "apply_compat_patches must not import lvis"
        from lvis import LVIS, LVISEval, LVISResults
        import lvis.eval
        assert isinstance(lvis.eval.np, compat.NumpyWithAliases)
        assert "np.float" in inspect.getsource(lvis.eval.LVISEval.accumulate)
        gt = LVIS(sys.argv[1])
        ev = LVISEval(gt, LVISResults(gt, json.loads(sys.argv[2])), iou_type="bbox")
        ev.run()
        print("AP", ev.get_results()["AP"])
    """
    proc = _run_python(code, lvis_ann_file, json.dumps(_perfect_detections()), lvis_first)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float(proc.stdout.split("AP")[-1]) == pytest.approx(1.0)


def test_lvis_without_shim_fails_loud(lvis_ann_file):
    """Without the shim lvis 0.5.3 dies on np.float; if this starts passing, upstream fixed it."""
    code = """
        import json, sys
        from lvis import LVIS, LVISEval, LVISResults
        gt = LVIS(sys.argv[1])
        ev = LVISEval(gt, LVISResults(gt, json.loads(sys.argv[2])), iou_type="bbox")
        try:
            ev.run()
        except AttributeError as err:
            print("ATTRIBUTE-ERROR", str(err).replace("\\n", " "))
        else:
            print("LVIS-RAN-WITHOUT-SHIM")
    """
    proc = _run_python(code, lvis_ann_file, json.dumps(_perfect_detections()))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LVIS-RAN-WITHOUT-SHIM" not in proc.stdout, (
        "lvis evaluated without the numpy alias shim: upstream lvis no longer uses np.float; "
        "the shim in fgclip2_det/utils/compat.py may be obsolete")
    assert "ATTRIBUTE-ERROR module 'numpy' has no attribute 'float'" in proc.stdout, proc.stdout
