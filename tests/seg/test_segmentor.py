"""Open-vocabulary segmentation: cost volume and decoder, segmentor modes, sliding windows, label
checks, datasets, the seen/unseen metric, configs and the train/test tools."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData
from mmdet.structures import DetDataSample
from PIL import Image

from det_helpers import ROOT, in_mmdet_scope, mmdet_scope, shared_text_cache  # noqa: F401 (mmdet_scope: autouse fixture)
from fgclip2_det.datasets.synthetic import generate_world
from fgclip2_det.evaluation import OVSemSegMetric
from fgclip2_det.openvocab import dense_cosine as cost_volume
from fgclip2_det.seg import CostAggregationDecoder, OVSegDataset, VOC21SegDataset

COST_DECODER = ROOT / "configs" / "ovseg" / "cost-decoder_fgclip2-tiny_synthetic.py"
TRAINING_FREE = ROOT / "configs" / "ovseg" / "training-free_fgclip2-tiny_synthetic.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("ovseg_world"), 16, seed=5, workers=1)


# ---------------------------------------------------------------------------- decoder
def test_cost_volume_is_the_cosine_per_location():
    dense, text = torch.randn(2, 6, 3, 4), torch.randn(5, 6)
    cost = cost_volume(dense, text)
    d = F.normalize(dense[1, :, 2, 3], dim=0)
    assert cost.shape == (2, 5, 3, 4)
    assert torch.allclose(cost[1, :, 2, 3], F.normalize(text, dim=-1) @ d, atol=1e-6)


@pytest.mark.parametrize("num_classes,h,w", [(1, 3, 5), (7, 4, 4), (20, 2, 6)])
def test_decoder_takes_any_vocabulary_and_is_class_permutation_equivariant(num_classes, h, w):
    torch.manual_seed(0)
    dec = CostAggregationDecoder(embed_dim=8, guidance_dim=6, channels=16, guidance_channels=4).eval()
    dense, text = torch.randn(2, 8, h, w), torch.randn(num_classes, 8)
    guidance = [torch.randn(2, 6, h, w), torch.randn(2, 6, h, w)]
    out = dec(dense, text, guidance)
    assert out.shape == (2, num_classes, 4 * h, 4 * w)
    perm = torch.randperm(num_classes)
    assert torch.allclose(dec(dense, text[perm], guidance), out[:, perm], atol=1e-5)
    dec.class_chunk = 3  # chunked per-class stages: same numbers, less memory
    assert torch.allclose(dec(dense, text, guidance), out, atol=1e-5)


def test_decoder_errors():
    dec = CostAggregationDecoder(embed_dim=8, guidance_dim=6, channels=16, guidance_channels=4)
    with pytest.raises(ValueError, match="non-empty"):
        dec(torch.randn(1, 8, 2, 2), torch.zeros(0, 8), [torch.randn(1, 6, 2, 2)] * 2)
    with pytest.raises(ValueError, match="2 guidance maps"):
        dec(torch.randn(1, 8, 2, 2), torch.randn(3, 8), [torch.randn(1, 6, 2, 2)])


# ---------------------------------------------------------------------------- segmentor
def build(tiny_dir, world, config=COST_DECODER, **overrides):
    from mmdet.registry import MODELS

    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict({"model.backbone.checkpoint": str(tiny_dir),
                         "model.text_classifier.cache_dir": str(shared_text_cache(tiny_dir)),
                         "model.text_classifier.progress": False, **overrides})
    with in_mmdet_scope():
        model = MODELS.build(cfg.model)
    meta = cfg.train_dataloader.dataset.metainfo
    model.set_vocabulary_from_meta(dict(meta))
    return model.eval()


def sample(h, w, gt=None, path="img.jpg"):
    s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), img_path=path))
    if gt is not None:
        s.gt_sem_seg = PixelData(sem_seg=gt[None])
    return s


def test_training_free_logits_are_scaled_cosines(tiny_dir, world):
    model = build(tiny_dir, world, TRAINING_FREE)
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    logits = model.logits(x, [(64, 96)])
    dense = model.backbone(x).dense
    expected = F.interpolate(100.0 * cost_volume(dense, model.class_embeds), size=(64, 96), mode="bilinear",
                             align_corners=False)
    assert torch.allclose(logits, expected, atol=1e-4)
    out = model.predict(x, [sample(64, 96)])[0]
    probs = logits[0].softmax(0)
    expected_labels = torch.where(probs.amax(0) < 0.5, 0, probs.argmax(0))
    assert torch.equal(out.pred_sem_seg.sem_seg[0], expected_labels)


def test_a_segmentor_without_vocabulary_takes_its_dataset_meta(tiny_dir, world):
    """As after mmdet.apis.init_detector: the checkpoint's dataset_meta, no class embeddings."""
    reference = build(tiny_dir, world, TRAINING_FREE)
    model = build(tiny_dir, world, TRAINING_FREE)
    model.classes, model.class_embeds = None, model.class_embeds[:0]
    model.dataset_meta = {"classes": reference.classes, "novel_classes": ("star", "heart")}
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    out = model(x, [sample(32, 48)], mode="predict")[0]
    assert model.classes == reference.classes and int(model.novel_mask.sum()) == 2
    assert torch.equal(out.pred_sem_seg.sem_seg, reference.predict(x, [sample(32, 48)])[0].pred_sem_seg.sem_seg)


def test_sliding_windows_that_cover_the_image_exactly_equal_whole_inference(tiny_dir, world):
    model = build(tiny_dir, world)
    image = torch.rand(3, 64, 128) * 2 - 1
    whole = model.image_logits(image, (64, 128))
    model.test_cfg = dict(mode="slide", crop_size=(64, 128), stride=(32, 32))  # one window = the image
    assert torch.allclose(model.image_logits(image, (64, 128)), whole, atol=1e-5)
    model.test_cfg = dict(mode="slide", crop_size=(64, 64), stride=(64, 64))  # two tiles, no overlap
    tiles = torch.cat([model.logits(image[None, :, :, :64], [(64, 64)])[0],
                       model.logits(image[None, :, :, 64:], [(64, 64)])[0]], dim=-1)
    assert torch.allclose(model.image_logits(image, (64, 128)), tiles, atol=1e-5)
    model.test_cfg = dict(mode="slide", crop_size=(64, 64), stride=(64, 48))  # overlap: the mean
    a = model.logits(image[None, :, :, :64], [(64, 64)])[0]
    b = model.logits(image[None, :, :, 48:112], [(64, 64)])[0]
    c = model.logits(image[None, :, :, 64:], [(64, 64)])[0]
    out = model.image_logits(image, (64, 128))
    assert torch.allclose(out[..., 50:60], (a[..., 50:60] + b[..., 2:12]) / 2, atol=1e-5)
    assert torch.allclose(out[..., 120:], c[..., 56:], atol=1e-5)  # only the last window
    assert torch.allclose(out[..., 100:110], (b[..., 52:62] + c[..., 36:46]) / 2, atol=1e-5)


def test_loss_leaves_unseen_classes_out_of_the_softmax(tiny_dir, world):
    model = build(tiny_dir, world)
    gt = torch.randint(0, 15, (32, 48))
    gt[gt == 4] = 255  # star pixels are ignore-labelled in training; other unseen kinds left labelled
    gt[:4] = 255
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    loss = model.loss(x, [sample(32, 48, gt)])["loss_seg"]
    logits = model.logits(x, [(32, 48)])
    seen = ~model.novel_mask
    labels = gt.clone()
    labels[(labels != 255) & model.novel_mask[labels.clamp(max=14)]] = 255  # out of the loss
    remap = torch.cumsum(seen.long(), 0) - 1
    valid = labels != 255
    labels[valid] = remap[labels[valid]]
    expected = F.cross_entropy(logits[:, seen], labels[None], ignore_index=255)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bad_label_maps_are_errors_naming_the_image(tiny_dir, world):
    model = build(tiny_dir, world)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    bad = torch.zeros(32, 32, dtype=torch.long)
    bad[0, 0] = 40
    with pytest.raises(ValueError, match=r"a\.jpg: label values \[40\]"):
        model.loss(x, [sample(32, 32, bad, "a.jpg")])
    with pytest.raises(ValueError, match=r"b\.jpg: label map of shape \(16, 32\)"):
        model.loss(x, [sample(32, 32, torch.zeros(16, 32, dtype=torch.long), "b.jpg")])
    ignored = torch.full((32, 32), 255)
    loss = model.loss(x, [sample(32, 32, ignored)])["loss_seg"]
    assert loss.item() == 0.0 and loss.requires_grad


# ---------------------------------------------------------------------------- datasets & metric
def test_dataset_lists_label_maps_and_finds_their_images(world):
    meta = dict(classes=("background", "a", "b"), novel_classes=("b",))
    ds = OVSegDataset(data_root=str(world), metainfo=meta, list_from="seg_maps",
                      data_prefix=dict(img_path="images/", seg_map_path="seg/val/"), pipeline=[])
    val = sorted(p.stem for p in (world / "seg" / "val").glob("*.png"))
    assert [d["img_path"].split("/")[-1] for d in ds] == [f"{s}.jpg" for s in val]
    (world / "seg" / "orphan").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(world / "seg" / "orphan" / "nope.png")
    with pytest.raises(FileNotFoundError, match="nope.png: no image"):
        OVSegDataset(data_root=str(world), metainfo=meta, list_from="seg_maps",
                     data_prefix=dict(img_path="images/", seg_map_path="seg/orphan/"), pipeline=[])
    with pytest.raises(ValueError, match="not in metainfo"):
        OVSegDataset(data_root=str(world), metainfo=dict(classes=("a",), novel_classes=("z",)), pipeline=[],
                     data_prefix=dict(img_path="images/", seg_map_path="seg/val/"))


def test_class_names_file_and_fixed_vocabularies(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "names.txt").write_text("wall\n\nsky\nperson\n")
    ds = OVSegDataset(data_root=str(tmp_path), class_names_file="names.txt", pipeline=[], lazy_init=True,
                      data_prefix=dict(img_path="img/", seg_map_path="img/"))
    assert ds.metainfo["classes"] == ("wall", "sky", "person")
    assert VOC21SegDataset.METAINFO["classes"][:2] == ("background", "aeroplane")
    assert len(VOC21SegDataset.METAINFO["classes"]) == 21
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        OVSegDataset(data_root=str(tmp_path), class_names_file="missing.txt", pipeline=[])


def _metric_sample(pred, gt):
    return dict(pred_sem_seg=dict(sem_seg=torch.tensor(pred)[None], ignore_index=255),
                gt_sem_seg=dict(sem_seg=torch.tensor(gt)[None]), img_path="x.png")


def test_metric_reports_seen_and_unseen_miou():
    metric = OVSemSegMetric()
    metric.dataset_meta = dict(classes=("bg", "cat", "dog"), novel_classes=("dog",))
    gt = [[0, 0, 1, 1], [2, 2, 2, 255]]
    pred = [[0, 1, 1, 1], [2, 2, 0, 0]]
    metric.process({}, [_metric_sample(pred, gt)])
    out = metric.evaluate(1)
    # The 255 pixel does not count. IoU: bg 1/3 (1 / (2 + 2 - 1)), cat 2/3, dog 2/3.
    assert out["mIoU_seen"] == pytest.approx(50.0)
    assert out["mIoU_unseen"] == pytest.approx(round(2 / 3 * 100, 2))
    s, u = 50.0, 2 / 3 * 100
    assert out["hIoU"] == pytest.approx(round(2 * s * u / (s + u), 2), abs=0.02)
    assert out["mIoU"] == pytest.approx(round((1 / 3 + 4 / 3) / 3 * 100, 2))
    assert out["aAcc"] == pytest.approx(round(5 / 7 * 100, 2))  # pixel accuracy over the 7 labelled pixels


def test_metric_rejects_labels_outside_the_vocabulary():
    metric = OVSemSegMetric()
    metric.dataset_meta = dict(classes=("bg", "cat"))
    with pytest.raises(ValueError, match=r"x\.png: label values \[7\]"):
        metric.process({}, [_metric_sample([[0, 1]], [[0, 7]])])
    with pytest.raises(ValueError, match="differ in size"):
        metric.process({}, [_metric_sample([[0, 1, 1]], [[0, 1]])])


# ---------------------------------------------------------------------------- configs & tools
BENCHMARKS = ("ade20k-150", "ade20k-847", "pascal-context-59", "pascal-context-459", "voc-20", "voc-21")


@pytest.mark.parametrize("bench", BENCHMARKS)
def test_one_evaluation_config_per_benchmark(bench):
    cfg = Config.fromfile(str(ROOT / "configs" / "ovseg" / f"cat-seg_fgclip2-base_{bench}.py"))
    ds = cfg.test_dataloader.dataset
    assert ds.test_mode and cfg.test_evaluator.type == "OVSemSegMetric"
    # CAT-Seg proper (FGCLIP2CATSeg, q/v fine-tuned) trained on COCO-Stuff 171, CAT-Seg's test protocol
    assert cfg.model.type == "FGCLIP2CATSeg" and cfg.model.finetune == "attention"
    assert cfg.model.aggregator.num_layers == 2 and cfg.model.aggregator.window_size == 12
    assert cfg.model.test_cfg.mode == "slide" and cfg.model.test_cfg.global_view
    assert cfg.train_dataloader.dataset.type == "CocoSegDataset"
    if bench in ("ade20k-847", "pascal-context-459"):  # many classes: chunked class axis, 16-bit maps
        assert ds.class_names_file and cfg.model.ignore_index == 65535
        assert cfg.model.aggregator.class_chunk == 64
    else:
        assert cfg.model.aggregator.class_chunk is None


@pytest.mark.slow
def test_train_then_test_end_to_end(tiny_dir, world, tmp_path):
    work = tmp_path / "work"
    options = [f"model.backbone.checkpoint={tiny_dir}", f"model.text_classifier.cache_dir={shared_text_cache(tiny_dir)}",
               "model.text_classifier.progress=False", "train_cfg.max_iters=2", "train_cfg.val_interval=2",
               "default_hooks.checkpoint.interval=2", "train_dataloader.batch_size=2"]
    for split in ("train", "val", "test"):
        options += [f"{split}_dataloader.dataset.data_root={world}/", f"{split}_dataloader.num_workers=0"]
    train = subprocess.run([sys.executable, "tools/train.py", str(COST_DECODER), "--work-dir", str(work),
                            "--cfg-options", *options], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    for config, weights in ((COST_DECODER, [str(work / "iter_2.pth")]), (TRAINING_FREE, [])):
        test = subprocess.run([sys.executable, "tools/test.py", str(config), *weights, "--work-dir",
                               str(tmp_path / config.stem), "--cfg-options", *options], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert test.returncode == 0, test.stderr[-3000:]
        assert "mIoU_unseen" in test.stdout + test.stderr
