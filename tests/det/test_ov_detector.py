"""Open-vocabulary detector: cosine box head, FG-CLIP 2 score ensemble, OV datasets, configs, tools."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from det_helpers import ROOT, in_mmdet_scope, mmdet_scope, shared_text_cache  # noqa: F401 (mmdet_scope: autouse fixture)
from fgclip2_det.datasets.synthetic import generate_world
from fgclip2_det.det import CosineBBoxHead, OVCocoDataset, OVLVISDataset, RegionScoreEnsemble
from fgclip2_det.det.widths import fill_widths
from fgclip2_det.model import FGCLIP2, FGCLIP2Config

SYNTHETIC = ROOT / "configs" / "ovd" / "fvit_fgclip2-tiny_ov-synthetic.py"
EXAMPLE = ROOT / "configs" / "ovd" / "examples" / "fvit_fgclip2-tiny_2fc-head_wide-anchors_ov-synthetic.py"
NOVEL = ("star", "heart", "crescent", "arrow")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 24-image synthetic world (19 train / 5 val)."""
    return generate_world(tmp_path_factory.mktemp("ovd_world"), 24, seed=3, workers=1)


def synthetic_cfg(tiny_dir, world, work_dir, config=SYNTHETIC, **overrides):
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict({
        "model.backbone.checkpoint": str(tiny_dir),
        "model.text_classifier.cache_dir": str(shared_text_cache(tiny_dir)),
        "model.text_classifier.progress": False,
        "train_dataloader.dataset.data_root": str(world) + "/",
        "val_dataloader.dataset.data_root": str(world) + "/",
        "test_dataloader.dataset.data_root": str(world) + "/",
        "val_evaluator.ann_file": f"{world}/det/instances_val_all.json",
        "test_evaluator.ann_file": f"{world}/det/instances_val_all.json",
        "train_dataloader.num_workers": 0, "val_dataloader.num_workers": 0, "test_dataloader.num_workers": 0,
        **overrides,
    })
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    return cfg


# ------------------------------------------------------------------------------- box head
def small_head(**kw):
    args = dict(embed_dim=4, in_channels=3, roi_feat_size=2, num_classes=3, num_shared_convs=0,
                num_shared_fcs=1, fc_out_channels=5, temperature=50.0)
    args.update(kw)
    with in_mmdet_scope():
        head = CosineBBoxHead(**args)
    head.init_weights()
    return head


def test_cosine_head_logits_are_temperature_times_cosine():
    torch.manual_seed(0)
    head = small_head()
    embeds = torch.randn(3, 4)
    head.set_class_embeddings(embeds, torch.tensor([False, True, False]))
    x = torch.randn(6, 3, 2, 2)
    logits, deltas = head(x)
    hidden = F.relu(head.shared_fcs[0](x.flatten(1)))
    region = F.normalize(head.fc_cls(hidden), dim=-1)
    targets = torch.cat([F.normalize(embeds, dim=-1), F.normalize(head.background_embed, dim=0)[None]])
    expected = 50.0 * region @ targets.t()
    assert torch.allclose(logits, expected, atol=1e-5)
    assert logits.shape == (6, 4) and deltas.shape == (6, 4)  # class-agnostic regression
    assert math.isclose(head.temperature.item(), 50.0, rel_tol=1e-6) and head.log_temperature.requires_grad


def test_cosine_head_zero_background_and_fixed_temperature():
    head = small_head(background="zero", learn_temperature=False, temperature=20.0)
    head.set_class_embeddings(torch.randn(3, 4), torch.zeros(3, dtype=torch.bool))
    logits, _ = head(torch.randn(2, 3, 2, 2))
    assert torch.equal(logits[:, -1], torch.zeros(2)) and logits[:, :3].abs().max() <= 20.0 + 1e-4
    assert not head.log_temperature.requires_grad


def test_novel_targets_get_no_classification_loss():
    torch.manual_seed(1)
    head = small_head(background_weight=0.6)
    head.set_class_embeddings(torch.randn(3, 4), torch.tensor([False, True, False]))
    assert head.class_loss_weights().tolist() == pytest.approx([1.0, 0.0, 1.0, 0.6])
    cls_score = torch.randn(4, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 3, 2])  # proposal 1 is labelled with the novel class, 2 is background
    zeros = torch.zeros(4, 4)
    loss = head.loss(cls_score, torch.zeros(4, 4), None, labels, torch.ones(4), zeros, zeros)["loss_cls"]
    loss.backward()
    grad = cls_score.grad
    assert torch.equal(grad[1], torch.zeros(4)) and grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    # The novel class is out of the softmax (F-ViT: its logit is -inf): no gradient reaches its column.
    assert torch.equal(grad[:, 1], torch.zeros(4))
    # The mean runs over the proposals that count (weights 1, 0.6, 1 -> 3 of them), the softmax over
    # the base classes and background.
    kept = cls_score.detach()[:, [0, 2, 3]]
    ce = F.cross_entropy(kept, torch.tensor([0, 0, 2, 1]), reduction="none")   # labels 0, (novel), 3, 2 re-indexed
    assert loss.item() == pytest.approx(float((ce[0] + 0.6 * ce[2] + ce[3]) / 3), rel=1e-5)
    assert torch.isfinite(loss)


def test_cosine_head_errors():
    head = small_head()
    with pytest.raises(RuntimeError, match="DatasetVocabularyHook"):
        head(torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="num_classes=3"):
        head.set_class_embeddings(torch.randn(5, 4), torch.zeros(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="background"):
        small_head(background="bogus")
    with pytest.raises(ValueError, match="background_embed"):
        small_head(background="text").set_class_embeddings(torch.randn(3, 4), torch.zeros(3, dtype=torch.bool))


# ------------------------------------------------------------------------------- ensemble
def test_fvlm_ensemble_is_the_renormalised_geometric_mean():
    torch.manual_seed(2)
    det_logits, regions = torch.randn(5, 4), F.normalize(torch.randn(5, 6), dim=-1)
    embeds, novel = F.normalize(torch.randn(3, 6), dim=-1), torch.tensor([False, True, False])
    out = RegionScoreEnsemble(alpha=0.2, beta=0.7, rule="fvlm", temperature=30.0)(det_logits, regions, embeds, novel)
    p_det = np.exp(det_logits.numpy()) / np.exp(det_logits.numpy()).sum(1, keepdims=True)
    z = 30.0 * regions.numpy() @ embeds.numpy().T
    p_clip = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    w = np.array([0.2, 0.7, 0.2])
    expected = np.concatenate([p_det[:, :3] ** (1 - w) * p_clip ** w, p_det[:, 3:]], axis=1)
    assert np.allclose(out.exp().numpy(), expected, rtol=1e-5)
    # What the box head reports: the same, renormalised; background keeps the detector's odds.
    probs = out.softmax(-1).numpy()
    assert np.allclose(probs, expected / expected.sum(1, keepdims=True), rtol=1e-5)


def fvit_by_hand(det_logits, regions, class_embeds, background, novel, alpha, beta, temperature):
    """F-ViT's FViTBBoxHead.forward at test time, written out (CLIPSelf F-ViT/models/fvit_head.py)."""
    all_embed = np.concatenate([class_embeds, background[None]], axis=0)          # C + 1, background last
    base_idx = np.concatenate([~novel, [True]])                                      # background is base
    cls_score = np.exp(det_logits) / np.exp(det_logits).sum(1, keepdims=True)
    z = temperature * regions @ all_embed.T
    vlm_score = np.exp(z - z.max(1, keepdims=True))
    vlm_score /= vlm_score.sum(1, keepdims=True)
    out = cls_score.copy()
    out[:, base_idx] = cls_score[:, base_idx] ** (1 - alpha) * vlm_score[:, base_idx] ** alpha
    out[:, ~base_idx] = cls_score[:, ~base_idx] ** (1 - beta) * vlm_score[:, ~base_idx] ** beta
    return out


def test_fvit_ensemble_matches_fvit_by_hand_and_keeps_its_ranking():
    """C + 1 softmax with the "background" text embedding, background a base class, no renormalisation:
    the scores the box head reports, and so the order of detections across proposals, are F-ViT's."""
    g = torch.Generator().manual_seed(5)
    det_logits = torch.randn(6, 4, generator=g) * 2
    regions = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    embeds = F.normalize(torch.randn(3, 4, generator=g), dim=-1)
    background = F.normalize(torch.randn(4, generator=g), dim=0)
    novel = torch.tensor([False, True, False])
    ens = RegionScoreEnsemble(alpha=0.1, beta=0.8, temperature=75.0)
    got = ens(det_logits, regions, embeds, novel, background)
    want = fvit_by_hand(det_logits.numpy(), regions.numpy(), embeds.numpy(), background.numpy(), novel.numpy(),
                        0.1, 0.8, 75.0)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)
    assert not np.allclose(want.sum(1), 1.0)  # not a distribution: nothing renormalises it

    # Through the box head's post-processing: scores used as they are, detections ranked by them.
    from mmengine.config import ConfigDict

    head = small_head(background="text")
    head.set_class_embeddings(embeds, novel, background)
    head.final_scores = True
    rois = torch.cat([torch.zeros(6, 1), torch.tensor([[0., 0., 10., 10.]]).repeat(6, 1) +
                      torch.arange(6.)[:, None] * 20], dim=1)
    cfg = ConfigDict(score_thr=0.0, nms=dict(type="nms", iou_threshold=0.5), max_per_img=100)
    res = head.predict_by_feat((rois,), (got,), (torch.zeros(6, 4),), [dict(img_shape=(200, 200), scale_factor=(1., 1.))],
                               rcnn_test_cfg=cfg)[0]
    order = np.argsort(-want[:, :3].ravel(), kind="stable")
    np.testing.assert_allclose(res.scores.numpy(), want[:, :3].ravel()[order], rtol=1e-5)
    assert res.labels.tolist() == (order % 3).tolist()
    # The renormalised rule would rank these proposals differently (why renormalising changes AP).
    renorm = want[:, :3] / want.sum(1, keepdims=True)
    assert np.argsort(-renorm.ravel(), kind="stable").tolist() != order.tolist()


def test_sigmoid_calibration_and_argument_errors():
    regions, embeds = F.normalize(torch.randn(2, 3), dim=-1), F.normalize(torch.randn(4, 3), dim=-1)
    ens = RegionScoreEnsemble(rule="fvlm", calibration="sigmoid", scale=10.0, bias=-2.0)
    assert torch.allclose(ens.region_probs(regions, embeds), torch.sigmoid(10 * regions @ embeds.t() - 2), atol=1e-6)
    with pytest.raises(ValueError, match="scale and bias"):
        RegionScoreEnsemble(rule="fvlm", calibration="sigmoid").region_probs(regions, embeds)
    with pytest.raises(ValueError, match="goes with rule='fvlm'"):
        RegionScoreEnsemble(calibration="sigmoid")
    with pytest.raises(ValueError, match="rule"):
        RegionScoreEnsemble(rule="fvit-ish")
    with pytest.raises(ValueError, match="background"):
        RegionScoreEnsemble()(torch.randn(2, 5), regions, embeds, torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="beta"):
        RegionScoreEnsemble(beta=1.5)
    with pytest.raises(ValueError, match="calibration"):
        RegionScoreEnsemble(calibration="platt")


# ------------------------------------------------------------------------------- detector
@pytest.fixture(scope="module")
def detector(tiny_dir, world, tmp_path_factory):
    from mmdet.registry import MODELS

    cfg = synthetic_cfg(tiny_dir, world, tmp_path_factory.mktemp("w"))
    with in_mmdet_scope():
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.set_vocabulary_from_meta(dict(cfg.val_dataloader.dataset.metainfo))
    return model.eval()


def _batch(model, world, n=2, split="val"):
    """(inputs, data_samples) of the first n images of a split, through the config's test pipeline."""
    from mmengine.dataset import Compose, pseudo_collate

    cfg = Config.fromfile(str(SYNTHETIC))
    meta = json.loads((world / "det" / f"instances_{split}_all.json").read_text())
    with in_mmdet_scope():
        pipeline = Compose(cfg.test_pipeline)
        items = []
        for img in meta["images"][:n]:
            anns = [a for a in meta["annotations"] if a["image_id"] == img["id"]]
            items.append(pipeline(dict(img_path=str(world / "images" / img["file_name"]), img_id=img["id"],
                                       instances=[dict(bbox=[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                                             a["bbox"][1] + a["bbox"][3]],
                                                       bbox_label=a["category_id"] - 1, ignore_flag=0)
                                                  for a in anns])))
    return model.data_preprocessor(pseudo_collate(items), training=False)


def test_region_scores_pool_like_fgclip2_and_ignore_batch_mates(detector, world, tiny_dir):
    data = _batch(detector, world, n=2)
    inputs, samples = data["inputs"], data["data_samples"]
    with torch.no_grad(), detector._image_shapes(samples):
        feats = detector.extract_feat(inputs)
    boxes = [torch.tensor([[4.0, 6.0, 90.0, 70.0], [30.5, 12.0, 200.0, 150.0]]), torch.tensor([[0.0, 0.0, 64.0, 48.0]])]
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    pooled = detector.pool_regions(feats.vlm, rois)
    reference = FGCLIP2.from_pretrained(tiny_dir).eval()
    for i, b in enumerate(boxes):
        # The image alone, cut to its real size rounded up to whole patches (backbone module doc).
        alone_image = detector.backbone.crop_images(inputs[i:i + 1], [samples[i].img_shape])
        alone = reference.encode_regions(alone_image, [b])[0]
        assert torch.allclose(pooled[rois[:, 0] == i], alone, atol=1e-5)


def test_ensemble_changes_scores_and_detector_only_skips_it(detector, world):
    data = _batch(detector, world, n=1)
    with torch.no_grad():
        with_ens = detector.predict(data["inputs"], data["data_samples"])[0].pred_instances
        ensemble, detector.roi_head.ensemble = detector.roi_head.ensemble, None
        try:
            data = _batch(detector, world, n=1)
            det_only = detector.predict(data["inputs"], data["data_samples"])[0].pred_instances
        finally:
            detector.roi_head.ensemble = ensemble
    assert len(with_ens) > 0 and len(det_only) > 0
    assert not (len(with_ens) == len(det_only) and torch.allclose(with_ens.scores, det_only.scores))
    # Detector-only scores are the box head's softmax: probabilities, never raw logits.
    assert float(det_only.scores.min()) >= 0 and float(det_only.scores.max()) <= 1


def test_training_step_leaves_the_backbone_frozen(detector, world):
    data = _batch(detector, world, n=2, split="train")
    detector.train()
    try:
        losses = detector.loss(data["inputs"], data["data_samples"])
        total, _ = detector.parse_losses(losses)
        total.backward()
    finally:
        detector.zero_grad()
        detector.eval()
    assert {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"} <= set(losses)
    assert torch.isfinite(total)
    assert not any(p.requires_grad for p in detector.backbone.parameters())


def test_vocabulary_errors(detector):
    classes = list(detector.classes)
    with pytest.raises(ValueError, match="novel_classes not in the vocabulary"):
        detector.set_vocabulary(classes, ("unicorn",))
    detector.train()  # in training the vocabulary must have the box head's size
    try:
        with pytest.raises(ValueError, match="num_classes=14"):
            detector.set_vocabulary(classes[:5])
    finally:
        detector.eval()
    detector.set_vocabulary(classes, NOVEL)
    assert detector.roi_head.bbox_head.novel_mask.sum() == 4


def test_a_free_vocabulary_of_another_size_is_used_when_asked(detector, world):
    classes = list(detector.classes)
    try:
        detector.set_vocabulary(["circle", "红色的星星", "heart"], ("heart",))  # inference: any size
        head = detector.roi_head.bbox_head
        assert head.num_classes == 3 and head.class_embeds.shape[0] == 3 and head.novel_mask.tolist() == [0, 0, 1]
        data = _batch(detector, world, n=1)
        with torch.no_grad():
            pred = detector.predict(data["inputs"], data["data_samples"])[0].pred_instances
        assert len(pred) > 0 and int(pred.labels.max()) < 3
    finally:
        detector.set_vocabulary(classes, NOVEL)
    assert detector.roi_head.bbox_head.num_classes == 14
    head.reg_class_agnostic = False
    try:
        with pytest.raises(ValueError, match="class-agnostic"):
            detector.set_vocabulary(classes[:3])
    finally:
        head.reg_class_agnostic = True


def test_a_detector_without_vocabulary_takes_its_dataset_meta(tiny_dir, world, tmp_path):
    """As after mmdet.apis.init_detector: the checkpoint's dataset_meta, no text embeddings."""
    from mmdet.registry import MODELS

    cfg = synthetic_cfg(tiny_dir, world, tmp_path)
    with in_mmdet_scope():
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    assert not model.roi_head.bbox_head.has_vocabulary
    model.dataset_meta = dict(cfg.val_dataloader.dataset.metainfo)
    data = _batch(model, world, n=1)
    with torch.no_grad():
        pred = model.predict(data["inputs"], data["data_samples"])[0].pred_instances
    assert model.classes == list(model.dataset_meta["classes"]) and len(pred) > 0
    assert model.roi_head.bbox_head.novel_mask.tolist() == [c in NOVEL for c in model.classes]


def test_sigmoid_calibration_reads_the_checkpoint(tiny_dir, world, tmp_path):
    from mmdet.registry import MODELS

    cfg = synthetic_cfg(tiny_dir, world, tmp_path, **{"model.roi_head.ensemble.calibration": "sigmoid",
                                                      "model.roi_head.ensemble.rule": "fvlm"})
    with in_mmdet_scope():
        model = MODELS.build(cfg.model)
    ref = FGCLIP2.from_pretrained(tiny_dir)
    assert model.roi_head.ensemble.scale == pytest.approx(ref.logit_scale.exp().item())
    assert model.roi_head.ensemble.bias == pytest.approx(ref.logit_bias.item())


# ------------------------------------------------------------------------------- datasets
def _coco_file(path, with_novel=True):
    """4 images: base boxes, a crowd box, a novel box, and an image without boxes."""
    cats = [dict(id=i + 1, name=n) for i, n in enumerate(("circle", "star", "square"))]
    images = [dict(id=i, file_name=f"{i}.jpg", width=64, height=48) for i in range(1, 5)]
    anns = [dict(id=1, image_id=1, category_id=1, bbox=[1, 2, 20, 10], area=200, iscrowd=0),
            dict(id=2, image_id=1, category_id=3, bbox=[30, 5, 20, 20], area=400, iscrowd=1),
            dict(id=3, image_id=2, category_id=3, bbox=[5, 5, 30, 30], area=900, iscrowd=0)]
    if with_novel:
        anns += [dict(id=4, image_id=2, category_id=2, bbox=[40, 10, 10, 10], area=100, iscrowd=0),
                 dict(id=5, image_id=3, category_id=2, bbox=[0, 0, 10, 10], area=100, iscrowd=0)]
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    return path


META = dict(classes=("circle", "star", "square"), base_classes=("circle", "square"), novel_classes=("star",))


def test_training_set_never_holds_a_novel_box(tmp_path):
    ann = _coco_file(tmp_path / "a.json")
    train = OVCocoDataset(ann_file=str(ann), metainfo=META, drop_novel_annotations=True, pipeline=[], data_prefix=dict(img=""),
                          filter_cfg=dict(filter_empty_gt=True))
    labels = [i["bbox_label"] for d in train for i in d["instances"]]
    assert sorted(labels) == [0, 2, 2] and train.num_dropped_novel == 2
    assert [d["img_id"] for d in train] == [1, 2]  # image 3 lost its only (novel) box; 4 had none
    crowd = [i for d in train for i in d["instances"] if i["ignore_flag"]]
    assert len(crowd) == 1 and crowd[0]["bbox"] == [30, 5, 50, 25]
    full = OVCocoDataset(ann_file=str(ann), metainfo=META, pipeline=[], test_mode=True, data_prefix=dict(img=""))
    assert len(full) == 4 and sorted(i["bbox_label"] for d in full for i in d["instances"]) == [0, 1, 1, 2, 2]


def test_crowd_boxes_become_ignored_instances(tmp_path):
    ann = _coco_file(tmp_path / "a.json", with_novel=False)
    ds = OVCocoDataset(ann_file=str(ann), metainfo=META, data_prefix=dict(img=""), pipeline=[dict(type="LoadAnnotations", with_bbox=True),
                                                                     dict(type="PackDetInputs", meta_keys=())])
    ds.full_init()
    # PackDetInputs needs an image; only the annotation part is checked here.
    info = ds.get_data_info(0)
    packed = ds.pipeline.transforms[1](ds.pipeline.transforms[0]({**info, "img": np.zeros((48, 64, 3), np.uint8)}))
    sample = packed["data_samples"]
    assert sample.gt_instances.labels.tolist() == [0] and sample.ignored_instances.labels.tolist() == [2]


def test_split_errors_name_the_classes(tmp_path):
    ann = _coco_file(tmp_path / "a.json")
    bad = dict(META, novel_classes=("star", "unicorn"))
    with pytest.raises(ValueError, match="unicorn"):
        OVCocoDataset(ann_file=str(ann), metainfo=bad, pipeline=[], data_prefix=dict(img=""))
    both = dict(META, base_classes=("circle", "star"))
    with pytest.raises(ValueError, match="both base and novel"):
        OVCocoDataset(ann_file=str(ann), metainfo=both, pipeline=[], data_prefix=dict(img=""))


def test_category_order_must_match_the_vocabulary(tmp_path):
    """Labels follow the file's category order, text embeddings the metainfo's: a different order
    or a class missing from the file's categories would pair boxes with wrong names."""
    ann = _coco_file(tmp_path / "a.json")
    swapped = dict(META, classes=("star", "circle", "square"))
    with pytest.raises(ValueError, match=r"file lists them as \['circle', 'star', 'square'\]"):
        OVCocoDataset(ann_file=str(ann), metainfo=swapped, pipeline=[], data_prefix=dict(img="")).full_init()
    more = dict(META, classes=("circle", "star", "square", "heart"))
    with pytest.raises(ValueError, match=r"1 class\(es\) are not categories of the file: \['heart'\]"):
        OVCocoDataset(ann_file=str(ann), metainfo=more, pipeline=[], data_prefix=dict(img="")).full_init()


def test_ov_coco_default_metainfo_is_the_ovr_cnn_split():
    meta = OVCocoDataset.METAINFO
    assert (len(meta["classes"]), len(meta["base_classes"]), len(meta["novel_classes"]), len(meta["palette"])) == \
        (65, 48, 17, 65)


def test_lvis_split_comes_from_frequency(tmp_path):
    cats = [dict(id=1, name="apple", frequency="f", synonyms=["apple"], image_count=200, instance_count=300),
            dict(id=2, name="baby_buggy", frequency="r", synonyms=["baby_buggy"], image_count=3, instance_count=3),
            dict(id=3, name="cab", frequency="c", synonyms=["cab"], image_count=50, instance_count=60)]
    images = [dict(id=i, coco_url=f"http://images.cocodataset.org/train2017/{i:012d}.jpg", width=64, height=48,
                   neg_category_ids=[], not_exhaustive_category_ids=[]) for i in (1, 2)]
    anns = [dict(id=1, image_id=1, category_id=1, bbox=[1, 1, 10, 10], area=100, segmentation=[[1, 1, 11, 1, 11, 11]]),
            dict(id=2, image_id=1, category_id=2, bbox=[20, 1, 10, 10], area=100, segmentation=[[20, 1, 30, 1, 30, 11]]),
            dict(id=3, image_id=2, category_id=3, bbox=[5, 5, 10, 10], area=100, segmentation=[[5, 5, 15, 5, 15, 15]])]
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    ds = OVLVISDataset(ann_file=str(path), metainfo=dict(classes=("apple", "baby_buggy", "cab")),
                       drop_novel_annotations=True, pipeline=[], data_prefix=dict(img=""))
    assert ds.metainfo["base_classes"] == ("apple", "cab") and ds.metainfo["novel_classes"] == ("baby_buggy",)
    assert sorted(i["bbox_label"] for d in ds for i in d["instances"]) == [0, 2] and ds.num_dropped_novel == 1
    assert ds[0]["img_path"].endswith("train2017/000000000001.jpg")


# ------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name,dim,classes,beta,best", [
    ("base_ov-coco", 768, 65, 0.8, "coco/novel_ap50"), ("large_ov-coco", 1024, 65, 0.8, "coco/novel_ap50"),
    ("so400m_ov-coco", 1152, 65, 0.8, "coco/novel_ap50"), ("base_ov-lvis", 768, 1203, 0.6, "lvis/segm_APr"),
    ("large_ov-lvis", 1024, 1203, 0.4, "lvis/segm_APr"), ("so400m_ov-lvis", 1152, 1203, 0.6, "lvis/segm_APr")])
def test_benchmark_configs(name, dim, classes, beta, best, tmp_path):
    """Widths are those the detector resolves from the named checkpoint's config.json (the size's
    preset stands in for the released folder)."""
    cfg = Config.fromfile(str(ROOT / "configs" / "ovd" / f"fvit_fgclip2-{name}.py"))
    size = name.split("_")[0]
    assert cfg.model.backbone.checkpoint == f"checkpoints/fg-clip2-{size}"
    FGCLIP2Config.preset(size).save(tmp_path)
    neck, head = fill_widths(dict(cfg.model.backbone, checkpoint=str(tmp_path)), cfg.model.neck,
                             cfg.model.roi_head)
    assert head.bbox_head.embed_dim == dim and neck.necks[0].in_channels == dim
    assert head.bbox_head.num_classes == classes and head.ensemble.beta == beta and head.ensemble.alpha == 0.1
    assert cfg.default_hooks.checkpoint.save_best == best
    assert cfg.train_dataloader.dataset.get("drop_novel_annotations",
                                            cfg.train_dataloader.dataset.get("dataset", {}).get("drop_novel_annotations"))
    if "lvis" in name:
        assert head.mask_head.class_agnostic and cfg.model.test_cfg.rcnn.max_per_img == 300
        assert cfg.model.text_classifier.name_style == "underscore_to_space"


def test_synthetic_prompts_follow_the_world_vocabulary():
    """The caption-form prompts of the 10k configs list every size, pattern and colour of the world,
    in the word order of its captions ("a small striped red star")."""
    from fgclip2_det.datasets.synthetic.vocab import COLOURS, PATTERNS, SIZES, ObjectSpec

    expected = [ObjectSpec("star", s, c, p).describe("en").removesuffix(" star") + " {}"
                for s in SIZES for p in PATTERNS for c in COLOURS]
    boxclass = Config.fromfile(str(ROOT / "configs" / "boxclass"
                                   / "boxclass_fgclip2-tiny_synthetic-prompts_synthetic.py"))
    cfg = Config.fromfile(str(ROOT / "configs" / "ovd" / "fvit_fgclip2-tiny-10k_ov-synthetic.py"))
    assert boxclass.model.text_classifier.templates_en == expected
    assert cfg.model.text_classifier.templates_en == expected
    assert cfg.model.backbone.checkpoint == "work_dirs/tiny-10k-stage2"
    base = Config.fromfile(str(SYNTHETIC))
    assert cfg.model.roi_head == base.model.roi_head and cfg.train_dataloader == base.train_dataloader


# ------------------------------------------------------------------------------- tools
@pytest.mark.slow
@pytest.mark.parametrize("config", [SYNTHETIC, EXAMPLE], ids=["synthetic", "example-by-inheritance"])
def test_train_then_test_end_to_end(config, tiny_dir, world, tmp_path):
    work = tmp_path / "work"
    options = [f"model.backbone.checkpoint={tiny_dir}", f"model.text_classifier.cache_dir={shared_text_cache(tiny_dir)}",
               "model.text_classifier.progress=False", "train_cfg.max_iters=3", "train_cfg.val_interval=3",
               "default_hooks.checkpoint.interval=3", "train_dataloader.batch_size=2",
               f"val_evaluator.ann_file={world}/det/instances_val_all.json",
               f"test_evaluator.ann_file={world}/det/instances_val_all.json"]
    for split in ("train", "val", "test"):
        options += [f"{split}_dataloader.dataset.data_root={world}/", f"{split}_dataloader.num_workers=0"]
    train = subprocess.run([sys.executable, "tools/train.py", str(config), "--work-dir", str(work),
                            "--cfg-options", *options], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "dropped 0 novel-class annotations" in train.stdout + train.stderr
    test = subprocess.run([sys.executable, "tools/test.py", str(config), str(work / "iter_3.pth"), "--work-dir",
                           str(tmp_path / "test"), "--cfg-options", *options], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert test.returncode == 0, test.stderr[-3000:]
    assert "coco/novel_ap50" in test.stdout + test.stderr
