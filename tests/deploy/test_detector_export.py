"""ONNX export of the open-vocabulary detector (fgclip2_det/deploy/detector.py) on the tiny synthetic
config: ``predict`` as a whole is refused with the blocker written down, and the two graphs that do
export (features, scoring with the vocabulary baked in) equal the PyTorch detector in onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("mmdet")

from det_helpers import ROOT, in_mmdet_scope  # noqa: E402
from fgclip2_det.deploy.detector import build_detector, export_detector_onnx, reference_scoring  # noqa: E402

CONFIG = ROOT / "configs" / "ovd" / "fvit_fgclip2-tiny_ov-synthetic.py"
CLASSES = ["circle", "square", "star", "heart"]
SIZE = (320, 256)
TOL = 1e-4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tiny_dir, tmp_path_factory):
    """A detector with saved (random, seeded) weights, exported from those weights."""
    out = tmp_path_factory.mktemp("det-onnx")
    with in_mmdet_scope():
        torch.manual_seed(0)
        detector = build_detector(CONFIG, CLASSES, text_checkpoint=tiny_dir, novel_classes=["star", "heart"])
        torch.save({"state_dict": detector.state_dict()}, out / "detector.pth")
        lines = []
        written = export_detector_onnx(CONFIG, out, CLASSES, weights=out / "detector.pth", image_size=SIZE,
                                       text_checkpoint=tiny_dir, novel_classes=["star", "heart"], log=lines.append)
    return detector, out, written, lines


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_whole_predict_is_refused_with_the_blocker_written(exported):
    _, out, written, lines = exported
    assert set(written) == {"detector_features", "detector_scoring"}
    blocker = (out / "detector_blocker.txt").read_text()
    assert "FGCLIP2FViT.predict" in blocker and "rpn_head.py" in blocker  # data-dependent branch in the RPN
    assert "mmcv.ops.nms:" in blocker and "mmcv.ops.roi_align:" in blocker  # pybind kernels, not traceable
    assert any("does not export" in line for line in lines)


def test_features_graph_equals_the_detector(exported):
    detector, _, written, _ = exported
    image = torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        feats = detector.extract_feat(image)
    outs = _session(written["detector_features"]).run(None, {"image": image.numpy()})
    assert len(outs) == len(feats) + 1
    for ours, ref in zip(outs, [*feats, feats.vlm.dense]):
        assert ours.shape == tuple(ref.shape)
        assert np.abs(ours - ref.numpy()).max() <= TOL


def test_scoring_graph_bakes_the_vocabulary_and_equals_the_detector(exported):
    detector, _, written, _ = exported
    head = detector.roi_head.bbox_head
    gen = torch.Generator().manual_seed(2)
    for n in (1, 7):
        roi_feats = torch.randn(n, head.in_channels, 7, 7, generator=gen)
        dense = torch.randn(detector.backbone.embed_dim, SIZE[0] // 16, SIZE[1] // 16, generator=gen)
        xy = torch.rand(n, 2, generator=gen) * 200
        boxes = torch.cat([xy, xy + 8 + torch.rand(n, 2, generator=gen) * 100], 1)
        with torch.no_grad():
            scores, deltas = reference_scoring(detector, roi_feats, dense, boxes)
        o_scores, o_deltas = _session(written["detector_scoring"]).run(
            None, {"roi_feats": roi_feats.numpy(), "dense_map": dense.numpy(), "boxes": boxes.numpy()})
        assert o_scores.shape == (n, len(CLASSES) + 1) and o_deltas.shape == (n, 4)
        assert np.abs(o_scores - scores.numpy()).max() <= TOL
        assert np.abs(o_deltas - deltas.numpy()).max() <= TOL


def test_bad_detector_input_is_named(tmp_path, tiny_dir):
    with pytest.raises(FileNotFoundError, match="detector config not found"):
        export_detector_onnx(tmp_path / "none.py", tmp_path, CLASSES, text_checkpoint=tiny_dir, try_full=False)
    with pytest.raises(ValueError, match="multiples of 32"):
        export_detector_onnx(CONFIG, tmp_path, CLASSES, image_size=(300, 320), text_checkpoint=tiny_dir)
    with in_mmdet_scope(), pytest.raises(ValueError, match="vocabulary"):
        build_detector(CONFIG, [], text_checkpoint=tiny_dir)
