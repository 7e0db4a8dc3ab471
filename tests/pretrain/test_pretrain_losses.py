"""Stage-2 pretraining losses (official FG2, docs/official_code.md) against independent hand
computations (explicit Python loops / hand-worked numbers), edge cases, gradients, and a 2-process
gloo run for the distributed parts."""
from __future__ import annotations

import datetime
import math

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from dist_helpers import run_ranks

from fgclip2_det.pretrain.losses import (DEFAULT_LOSS_WEIGHTS, BatchHardContrastiveLoss, CrossModalRankLoss,
                                         HardNegativeLoss, RegionTextContrastiveLoss, SigmoidContrastiveLoss,
                                         TextIntraModalLoss, hard_negative_logits, weighted_losses)
from fgclip2_det.pretrain.losses import cross_modal_rank as cmr_module

LOG10 = math.log(10.0)


def _param(x):
    return torch.tensor([float(x)], requires_grad=True)


def _rows(t):
    return [[float(v) for v in row] for row in t.detach()]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _log_sigmoid(z):
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def _ce(logits, target):
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def _sigmoid_loop(img, txt, scale, bias):
    """Global SigLIP loss by loops over Python floats."""
    img, txt = _rows(img), _rows(txt)
    total = 0.0
    for i, a in enumerate(img):
        for j, b in enumerate(txt):
            y = 1.0 if i == j else -1.0
            total -= _log_sigmoid(y * (scale * _dot(a, b) + bias))
    return total / len(img)


def _unit(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ------------------------------------------------------------------------------------------- sigmoid
def test_sigmoid_hand_2x2():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    txt = torch.tensor([[0.6, 0.8], [0.8, -0.6]], requires_grad=True)
    scale, bias = _param(LOG10), _param(-5.0)
    loss = SigmoidContrastiveLoss()(img, txt, scale, bias)
    # cosines: (0,0)=0.6 (0,1)=0.8 (1,0)=0.8 (1,1)=-0.6; z = 10·cos − 5
    terms = [math.log1p(math.exp(-(6 - 5))),   # positive, z = 1
             math.log1p(math.exp(8 - 5)),      # negative, z = 3
             math.log1p(math.exp(8 - 5)),      # negative, z = 3
             math.log1p(math.exp(-(-6 - 5)))]  # positive, z = −11
    assert loss.item() == pytest.approx(sum(terms) / 2, rel=1e-6)
    loss.backward()
    for t in (img, txt, scale, bias):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_sigmoid_random_vs_loops():
    img, txt = _unit(5, 8, 0), _unit(5, 8, 1)
    loss = SigmoidContrastiveLoss("gather")(img, txt, _param(2.3), _param(-3.0))
    assert loss.item() == pytest.approx(_sigmoid_loop(img, txt, math.exp(2.3), -3.0), rel=1e-5)


def test_sigmoid_bad_inputs_and_empty():
    with pytest.raises(ValueError):
        SigmoidContrastiveLoss(mode="ring")
    with pytest.raises(ValueError):
        SigmoidContrastiveLoss()(_unit(3, 4, 0), _unit(2, 4, 1), _param(0.0), _param(0.0))
    img = torch.zeros(0, 4, requires_grad=True)
    scale = _param(1.0)
    loss = SigmoidContrastiveLoss()(img, torch.zeros(0, 4), scale, _param(0.0))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert scale.grad is not None and scale.grad.item() == 0.0


# ---------------------------------------------------------------------------------- region (L_FGV)
def test_region_contrastive_hand():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    r = torch.tensor([[0.8, 0.6], [0.0, 1.0]], requires_grad=True)
    scale = _param(LOG10)
    loss = RegionTextContrastiveLoss()(v, r, scale)
    # P = 10·[[0.8, 0], [0.6, 1]]
    rows = _ce([8.0, 0.0], 0) + _ce([6.0, 10.0], 1)
    cols = _ce([8.0, 6.0], 0) + _ce([0.0, 10.0], 1)
    assert loss.item() == pytest.approx(0.5 * (rows / 2 + cols / 2), rel=1e-6)
    loss.backward()
    for t in (v, r, scale):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_region_contrastive_random_vs_loops():
    v, r = _unit(6, 8, 2), _unit(6, 8, 3)
    loss = RegionTextContrastiveLoss()(v, r, _param(math.log(30.0)))
    p = [[30.0 * _dot(a, b) for b in _rows(r)] for a in _rows(v)]
    rows = sum(_ce(p[i], i) for i in range(6)) / 6
    cols = sum(_ce([p[j][i] for j in range(6)], i) for i in range(6)) / 6
    assert loss.item() == pytest.approx(0.5 * (rows + cols), rel=1e-5)


def test_region_contrastive_empty_and_shapes():
    v = torch.zeros(0, 4, requires_grad=True)
    r = torch.zeros(0, 4, requires_grad=True)
    scale = _param(LOG10)
    loss = RegionTextContrastiveLoss()(v, r, scale)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert scale.grad.item() == 0.0 and v.grad is not None
    with pytest.raises(ValueError):
        RegionTextContrastiveLoss()(_unit(3, 4, 0), _unit(4, 4, 0), scale)


# ------------------------------------------------------------------------------------- TIC (L_TIC)
def _tic_captions():
    """r0·r1 = 0.98 (> 0.95: near-duplicate), r0·r2 = 0.5, r0·r3 = 0.3, r1·r2 = 0.49, r1·r3 = 0.294,
    r2·r3 = 0.15 − √(0.75·0.91)."""
    return torch.tensor([[1.0, 0.0, 0.0],
                         [0.98, math.sqrt(1 - 0.98 ** 2), 0.0],
                         [0.5, 0.0, math.sqrt(0.75)],
                         [0.3, 0.0, -math.sqrt(0.91)]], dtype=torch.float64, requires_grad=True)


def _lse(vals):
    return math.log(sum(math.exp(v) for v in vals))


def test_tic_threshold_and_diagonal_dropped():
    r = _tic_captions()
    loss = TextIntraModalLoss(threshold=0.95, topk=2)(r)
    # row i: similarities with the diagonal and the 0.98 pair set to 0, then the 2 largest
    expected = (_lse([0.5, 0.3]) + _lse([0.49, 0.294]) + _lse([0.5, 0.49]) + _lse([0.3, 0.294])) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    # without the threshold the 0.98 pair is the hardest negative of rows 0 and 1
    no_thr = TextIntraModalLoss(threshold=1.5, topk=2)(r)
    expected_no_thr = (_lse([0.98, 0.5]) + _lse([0.98, 0.49]) + _lse([0.5, 0.49]) + _lse([0.3, 0.294])) / 4
    assert no_thr.item() == pytest.approx(expected_no_thr, rel=1e-9)
    loss.backward()
    assert torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0


def test_tic_fewer_than_k_uses_all_n():
    r = _tic_captions()
    loss = TextIntraModalLoss()(r)  # default k = 10 > N = 4 → k = 4 (all entries, zeros included)
    c23 = 0.15 - math.sqrt(0.75 * 0.91)
    expected = (_lse([0, 0, 0.5, 0.3]) + _lse([0, 0, 0.49, 0.294]) + _lse([0.5, 0.49, 0, c23])
                + _lse([0.3, 0.294, c23, 0])) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    one = TextIntraModalLoss()(_unit(1, 5, 0))
    assert one.item() == pytest.approx(0.0, abs=1e-7)  # only the zeroed diagonal: log exp(0)


def test_tic_default_top10_vs_loops():
    r = _unit(12, 6, 4)
    r[1] = F.normalize(r[0] + 0.05 * _unit(1, 6, 5)[0], dim=0)  # a > 0.95 near-duplicate of r0
    assert float(r[0] @ r[1]) > 0.95
    loss = TextIntraModalLoss()(r)
    rows = _rows(r)
    total = 0.0
    for i in range(12):
        sims = []
        for j in range(12):
            s = 0.0 if i == j else _dot(rows[i], rows[j])
            sims.append(0.0 if s > 0.95 else s)
        total += _lse(sorted(sims, reverse=True)[:10])
    assert loss.item() == pytest.approx(total / 12, rel=1e-5)


def test_tic_empty_and_config():
    r = torch.zeros(0, 4, requires_grad=True)
    loss = TextIntraModalLoss()(r)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert r.grad is not None
    with pytest.raises(ValueError):
        TextIntraModalLoss(topk=0)
    with pytest.raises(ValueError):
        TextIntraModalLoss()(torch.zeros(2, 3, 4))


# ------------------------------------------------------------------------ hard negatives (FGT, hc)
def _hard_example():
    """2 regions, K = 2; cosines listed in the tests."""
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    t = torch.tensor([[[0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]],
                      [[0.6, 0.8], [1.0, 0.0], [0.8, -0.6]]], requires_grad=True)
    return v, t, _param(LOG10)


def test_hard_negative_fgt_hand():
    v, t, scale = _hard_example()
    loss = HardNegativeLoss()(v, t, scale)
    # region 0: cos [0.8 | 0.6, −1]; region 1: cos [0.8 | 0, −0.6]; s = 10, target 0
    expected = (_ce([8.0, 6.0, -10.0], 0) + _ce([8.0, 0.0, -6.0], 0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    logits = hard_negative_logits(v, t, scale)
    assert torch.allclose(logits, torch.tensor([[8.0, 6.0, -10.0], [8.0, 0.0, -6.0]]))
    loss.backward()
    for x in (v, t, scale):
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_batch_hard_contrastive_hand():
    v, t, scale = _hard_example()
    loss = BatchHardContrastiveLoss()(v, t, scale)
    # A: region i vs [pos0, pos1, neg00, neg01, neg10, neg11], target i
    a0 = [8.0, 6.0, 6.0, -10.0, 10.0, 8.0]
    a1 = [6.0, 8.0, 8.0, 0.0, 0.0, -6.0]
    # Bm: positive caption i vs [v0, v1], target i
    b0, b1 = [8.0, 6.0], [6.0, 8.0]
    expected = 0.5 * ((_ce(a0, 0) + _ce(a1, 1)) / 2 + (_ce(b0, 0) + _ce(b1, 1)) / 2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    for x in (v, t, scale):
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [HardNegativeLoss, BatchHardContrastiveLoss])
def test_hard_negative_shapes_and_empty(cls):
    scale = _param(LOG10)
    with pytest.raises(ValueError, match="1\\+K"):
        cls()(_unit(2, 4, 0), _unit(2, 4, 1), scale)              # texts not 3-D
    with pytest.raises(ValueError, match="do not match"):
        cls()(_unit(2, 4, 0), torch.zeros(3, 11, 4), scale)       # H mismatch
    with pytest.raises(ValueError, match="do not match"):
        cls()(_unit(2, 4, 0), torch.zeros(2, 11, 5), scale)       # D mismatch
    with pytest.raises(ValueError, match="at least one negative"):
        cls()(_unit(2, 4, 0), torch.zeros(2, 1, 4), scale)
    with pytest.raises(ValueError, match="region features"):
        cls()(torch.zeros(2, 3, 4), torch.zeros(2, 11, 4), scale)
    v = torch.zeros(0, 4, requires_grad=True)
    t = torch.zeros(0, 11, 4, requires_grad=True)
    loss = cls()(v, t, scale)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert scale.grad.item() == 0.0 and v.grad is not None and t.grad is not None


def test_hard_negative_any_k():
    v = _unit(3, 8, 6)
    t = _unit(3 * 5, 8, 7).view(3, 5, 8)  # K = 4
    loss = HardNegativeLoss()(v, t, _param(LOG10))
    logits = [[10.0 * _dot(_rows(v)[i], _rows(t[i])[c]) for c in range(5)] for i in range(3)]
    assert loss.item() == pytest.approx(sum(_ce(row, 0) for row in logits) / 3, rel=1e-5)


# ------------------------------------------------------------------------------------- CMR (L_CMR)
def _cmr_loop(tau, g, n):
    vals = [max(0.0, tau + n[i][k] - g[i]) for i in range(len(g)) for k in range(len(n[i]))]
    return sum(vals) / len(vals)


def test_cmr_threshold_sequence_and_clamping():
    cmr = CrossModalRankLoss().train()
    assert cmr.threshold.item() == 0.0
    # step 1: τ = 0; τ̂ = mean g − mean of the NON-ZERO negatives = 4 − (1 + 2 + 4)/3
    g = torch.tensor([5.0, 3.0], requires_grad=True)
    n = torch.tensor([[1.0, 0.0], [2.0, 4.0]], requires_grad=True)
    loss = cmr(g, n)
    assert loss.item() == pytest.approx(_cmr_loop(0.0, [5, 3], [[1, 0], [2, 4]]))  # = 0.25
    assert loss.item() == pytest.approx(0.25)
    tau1 = 4.0 - 7.0 / 3.0
    assert cmr.threshold.item() == pytest.approx(tau1)
    loss.backward()
    # only the (1, 1) hinge is active, mean over 4 entries
    assert g.grad.tolist() == [0.0, -0.25] and n.grad.tolist() == [[0.0, 0.0], [0.0, 0.25]]
    # step 2: the loss uses τ1; τ̂ = 0 − 4 → clamped to 0
    loss = cmr(torch.tensor([0.0]), torch.tensor([[5.0, 3.0]]))
    assert loss.item() == pytest.approx(_cmr_loop(tau1, [0.0], [[5.0, 3.0]]))
    assert cmr.threshold.item() == 0.0
    # step 3: the loss uses τ = 0; τ̂ = 50 − 1.5 → clamped to 10
    loss = cmr(torch.tensor([50.0]), torch.tensor([[1.0, 2.0]]))
    assert loss.item() == 0.0
    assert cmr.threshold.item() == 10.0
    loss = cmr(torch.tensor([10.0]), torch.tensor([[1.0, 2.0]]))
    assert loss.item() == pytest.approx(_cmr_loop(10.0, [10.0], [[1.0, 2.0]]))  # (1 + 2)/2


def test_cmr_empty_keeps_threshold_and_eval_does_not_update():
    cmr = CrossModalRankLoss(init_threshold=3.0).train()
    g = torch.zeros(0, requires_grad=True)
    n = torch.zeros(0, 10, requires_grad=True)
    loss = cmr(g, n)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert g.grad is not None and n.grad is not None
    assert cmr.threshold.item() == 3.0
    # only zero negative logits: τ̂ undefined (official: 0/0) → previous τ
    cmr(torch.tensor([4.0]), torch.zeros(1, 3))
    assert cmr.threshold.item() == 3.0
    cmr.eval()
    loss = cmr(torch.tensor([5.0]), torch.tensor([[7.0, 1.0]]))
    assert loss.item() == pytest.approx((5.0 + 0.0) / 2)  # max(0, 3+7−5), max(0, 3+1−5)
    assert cmr.threshold.item() == 3.0
    with pytest.raises(ValueError):
        cmr(torch.zeros(2), torch.zeros(3, 4))


def test_cmr_collective_once_per_training_forward(monkeypatch):
    """Simulated world of 2 where the other rank contributes τ̂ = 6: one all_reduce per training
    forward (also with H = 0), none in eval mode."""
    calls = []

    def fake_all_reduce(tensor, op=None, group=None):
        calls.append(float(tensor))
        tensor.add_(6.0)

    monkeypatch.setattr(cmr_module, "dist_rank_world", lambda group=None: (0, 2))
    monkeypatch.setattr(cmr_module.dist, "all_reduce", fake_all_reduce)
    cmr = CrossModalRankLoss(init_threshold=2.0).train()
    cmr(torch.zeros(0), torch.zeros(0, 10))                    # H = 0 → contributes previous τ
    assert calls == [2.0] and cmr.threshold.item() == pytest.approx(4.0)
    cmr(torch.tensor([9.0]), torch.tensor([[1.0, 0.0, 3.0]]))  # τ̂ = 9 − 2 = 7
    assert calls == [2.0, 7.0] and cmr.threshold.item() == pytest.approx(6.5)
    cmr.eval()
    cmr(torch.tensor([9.0]), torch.tensor([[1.0, 0.0, 3.0]]))
    assert len(calls) == 2 and cmr.threshold.item() == pytest.approx(6.5)


def test_cmr_threshold_in_state_dict():
    cmr = CrossModalRankLoss().train()
    cmr(torch.tensor([5.0, 3.0]), torch.tensor([[1.0, 0.0], [2.0, 4.0]]))
    sd = cmr.state_dict()
    assert set(sd) == {"threshold"} and sd["threshold"].item() == pytest.approx(4.0 - 7.0 / 3.0)
    resumed = CrossModalRankLoss()
    assert resumed.threshold.item() == 0.0
    resumed.load_state_dict(sd)
    assert resumed.threshold.item() == pytest.approx(4.0 - 7.0 / 3.0)
    # the resumed module's next loss uses the restored τ
    assert resumed(torch.tensor([2.0]), torch.tensor([[1.0]])).item() == pytest.approx(
        max(0.0, 4.0 - 7.0 / 3.0 + 1.0 - 2.0))


# ------------------------------------------------------------------------------------------- total
def test_weighted_losses_official_defaults():
    names = ["global_long", "global_short", "fgv", "tic", "hc", "fgt", "cmr"]
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    terms = {k: torch.tensor(v, requires_grad=True) for k, v in zip(names, values)}
    out = weighted_losses(terms, diagnostics={"cmr_threshold": torch.tensor(2.5)})
    assert set(out) == {f"loss_{k}" for k in names} | {"cmr_threshold"}
    total = sum(v for k, v in out.items() if "loss" in k)   # what MMEngine's parse_losses sums
    assert total.item() == pytest.approx(1 + 2 + 0.2 * 3 + 0.1 * 4 + 0.5 * (0.6 * 5 + 3 * 6 + 0.4 * 7))
    assert out["loss_fgt"].item() == pytest.approx(1.5 * 6) and out["cmr_threshold"].item() == 2.5
    assert DEFAULT_LOSS_WEIGHTS["hc"] == pytest.approx(0.3) and DEFAULT_LOSS_WEIGHTS["cmr"] == pytest.approx(0.2)
    total.backward()
    assert terms["tic"].grad.item() == pytest.approx(0.1)


def test_weighted_losses_overrides_and_errors():
    out = weighted_losses({"global_long": None, "global_short": torch.tensor(2.0), "fgv": torch.tensor(1.0)},
                          weights={"fgv": 0.5})
    assert set(out) == {"loss_global_short", "loss_fgv"} and out["loss_fgv"].item() == 0.5
    with pytest.raises(ValueError):
        weighted_losses({"bogus": torch.tensor(1.0)})
    with pytest.raises(ValueError):
        weighted_losses({}, weights={"bogus": 1.0})
    with pytest.raises(ValueError):
        weighted_losses({}, diagnostics={"cmr_loss_margin": torch.tensor(1.0)})


# ----------------------------------------------------------------------- distributed (2 gloo ranks)
WORLD = 2
GLOBAL_B, DIM = 6, 8
TAU_PREV = 5.0
# rank 0's hard negatives at step 1 (rank 1 has none): τ̂_0 = mean g − mean non-zero n = 4 − 1.25
CMR_G0, CMR_N0 = [6.0, 2.0], [[1.0, 0.0, 3.0], [2.0, -1.0, 0.0]]


def _global_batch():
    img, txt = _unit(GLOBAL_B, DIM, 10), _unit(GLOBAL_B, DIM, 11)
    txt[0] = F.normalize(img[0] + 0.3 * txt[0], dim=0)  # a few confident positives
    txt[4] = F.normalize(img[4] + 0.3 * txt[4], dim=0)
    return img, txt, torch.tensor([math.log(5.0)]), torch.tensor([-2.0])


def _dist_worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    try:
        res = {}
        img, txt, scale, bias = _global_batch()
        b = GLOBAL_B // WORLD
        for mode in ("reduce", "gather"):
            i = img[rank * b:(rank + 1) * b].clone().requires_grad_(True)
            t = txt[rank * b:(rank + 1) * b].clone().requires_grad_(True)
            s, bb = scale.clone().requires_grad_(True), bias.clone().requires_grad_(True)
            loss = SigmoidContrastiveLoss(mode)(i, t, s, bb)
            loss.backward()
            res[mode] = dict(loss=loss.item(), img=i.grad, txt=t.grad, scale=s.grad, bias=bb.grad)
        cmr = CrossModalRankLoss(init_threshold=TAU_PREV).train()
        taus, losses = [], []
        steps = [  # (rank-0 data, rank-1 data); None = no hard negatives on that rank
            ((CMR_G0, CMR_N0), None),
            (None, ([30.0], [[1.0, 2.0]])),         # τ̂_1 = 28.5 → mean with τ → clamp 10
            (([0.0], [[4.0]]), ([0.0], [[5.0]])),   # τ̂ = −4, −5 → clamp 0
        ]
        for step in steps:
            data = step[rank]
            if data is None:
                g = torch.zeros(0, requires_grad=True)
                n = torch.zeros(0, 3, requires_grad=True)
            else:
                g = torch.tensor(data[0], requires_grad=True)
                n = torch.tensor(data[1], requires_grad=True)
            loss = cmr(g, n)
            loss.backward()
            losses.append(loss.item())
            taus.append(cmr.threshold.item())
        res["cmr"] = dict(taus=taus, losses=losses)
        try:  # a broken equal-size contract: rank 0 holds 3 pairs, rank 1 holds 2
            n = 3 - rank
            SigmoidContrastiveLoss("reduce")(img[:n], txt[:n], scale, bias)
            res["mismatch"] = None
        except RuntimeError as e:
            res["mismatch"] = str(e)
        torch.save(res, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def dist_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist_losses")
    run_ranks(_dist_worker, (str(out),), WORLD, timeout=120)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.slow
def test_dist_sigmoid_unequal_batches_raise_on_every_rank(dist_results):
    """One small collective checks the sizes first: every rank raises, naming all sizes, no hang."""
    for r in dist_results:
        assert r["mismatch"] is not None and "rank 0: 3, rank 1: 2" in r["mismatch"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reduce", "gather"])
def test_dist_sigmoid_matches_global_batch(dist_results, mode):
    img, txt, scale, bias = _global_batch()
    img.requires_grad_(True), txt.requires_grad_(True), scale.requires_grad_(True), bias.requires_grad_(True)
    ref = SigmoidContrastiveLoss()(img, txt, scale, bias)  # no process group in this process
    assert ref.item() == pytest.approx(_sigmoid_loop(img, txt, 5.0, -2.0), rel=1e-5)
    ref.backward()
    per_rank = [r[mode] for r in dist_results]
    assert sum(r["loss"] for r in per_rank) / WORLD == pytest.approx(ref.item(), abs=1e-5)
    b = GLOBAL_B // WORLD
    for rank, r in enumerate(per_rank):
        # each rank's backward already holds the other ranks' contributions (collective backward);
        # DDP then averages over ranks (÷ WORLD)
        assert torch.allclose(r["img"] / WORLD, img.grad[rank * b:(rank + 1) * b], atol=1e-6)
        assert torch.allclose(r["txt"] / WORLD, txt.grad[rank * b:(rank + 1) * b], atol=1e-6)
    for name, ref_grad in (("scale", scale.grad), ("bias", bias.grad)):
        assert torch.allclose(sum(r[name] for r in per_rank) / WORLD, ref_grad, atol=1e-6)


@pytest.mark.slow
def test_dist_cmr_threshold_sync(dist_results):
    tau_hat0 = (6.0 + 2.0) / 2 - (1.0 + 3.0 + 2.0 - 1.0) / 4
    tau1 = min(10.0, max(0.0, (tau_hat0 + TAU_PREV) / 2))
    assert tau1 == pytest.approx(3.875)
    expected_taus = [tau1, 10.0, 0.0]  # step 2: (τ1 + 28.5)/2 = 16.19 → 10; step 3: −4.5 → 0
    for r in dist_results:
        assert r["cmr"]["taus"] == pytest.approx(expected_taus)
    # losses use the previous step's synchronised τ
    assert dist_results[0]["cmr"]["losses"][0] == pytest.approx(_cmr_loop(TAU_PREV, CMR_G0, CMR_N0))  # = 2
    assert dist_results[1]["cmr"]["losses"][0] == 0.0
    assert dist_results[1]["cmr"]["losses"][1] == pytest.approx(_cmr_loop(tau1, [30.0], [[1.0, 2.0]]))
    assert dist_results[0]["cmr"]["losses"][2] == pytest.approx(_cmr_loop(10.0, [0.0], [[4.0]]))
