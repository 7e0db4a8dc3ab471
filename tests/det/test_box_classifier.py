"""FGCLIP2BoxClassifier: protocol parity with the official per-box procedure through Runner.test,
box edge cases, the vocabulary hook, and the fine-tuning loss."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

from det_helpers import (boxclass_cfg, in_mmdet_scope, mmdet_scope,  # noqa: F401  (mmdet_scope: autouse fixture)
                         official_box_scores, official_tokenizer, template_class_embeddings, write_coco_set)


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_set")
    write_coco_set(root)
    return root


def test_boxclass_runner_matches_official_per_box_procedure(tmp_path, tiny_dir_either_mask, tiny_model, coco_set):
    """Runner.test on the shipped config (batches of 3 padded images, encoder once per image) gives,
    box for box, the official scores (full image re-processed and re-encoded for every box; class
    texts through the checkpoint's AutoTokenizer, its whole output into the text encoder), with a
    tokenizer that returns an attention mask and with one that returns none."""
    tiny_dir = tiny_dir_either_mask
    out = tmp_path / "preds.pkl"
    cfg = boxclass_cfg(tiny_dir, coco_set, tmp_path, **{"model.return_all_scores": True,
                                                        "test_dataloader.batch_size": 3})
    cfg.test_evaluator = [dict(type="BoxClassMetric"), dict(type="DumpResults", out_file_path=str(out))]
    metrics = Runner.from_cfg(cfg).test()

    coco = json.loads((coco_set / "ann.json").read_text())
    classes = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    tokenizer = official_tokenizer(tiny_dir)
    class_embeds = template_class_embeddings(tiny_model, tokenizer, classes)
    files = {img["id"]: img["file_name"] for img in coco["images"]}
    preds = pickle.loads(out.read_bytes())
    assert [p["img_id"] for p in preds] == [1, 2, 3]  # image 4 has no boxes: skipped
    assert len({tuple(p["batch_input_shape"]) for p in preds}) == 1  # they really were padded together

    correct, total = 0, 0
    for pred in preds:
        anns = [a for a in coco["annotations"] if a["image_id"] == pred["img_id"]]  # iscrowd kept
        inst = pred["pred_instances"]
        assert len(inst["labels"]) == len(anns)
        for i, ann in enumerate(anns):
            expected = official_box_scores(tiny_model, coco_set / "img" / files[pred["img_id"]], ann["bbox"],
                                           class_embeds)
            torch.testing.assert_close(inst["all_scores"][i], expected, atol=1e-5, rtol=0)
            assert int(inst["labels"][i]) == int(expected.argmax())
            assert inst["topk_labels"][i].tolist() == expected.topk(5).indices.tolist()
            x, y, w, h = ann["bbox"]  # GT boxes come back in original-image pixels
            torch.testing.assert_close(inst["bboxes"][i], torch.tensor([x, y, x + w, y + h], dtype=torch.float32), atol=1e-3, rtol=0)
            correct += int(expected.argmax()) == ann["category_id"] - 1
            total += 1
    assert total == 25 and metrics["boxclass/num_boxes"] == 25
    assert metrics["boxclass/top1"] == pytest.approx(correct / total)


@pytest.fixture(scope="module")
def classifier(tiny_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("text_cache")
    with in_mmdet_scope():
        return MODELS.build(dict(
            type="FGCLIP2BoxClassifier", classes=["cat", "dog", "猫"], topk=2, return_all_scores=True,
            data_preprocessor=dict(type="DetDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3, pad_size_divisor=16),
            backbone=dict(type="FGCLIP2ViT", checkpoint=str(tiny_dir), out_indices=[]),
            text_classifier=dict(cache_dir=str(cache), progress=False)))


def _sample(boxes, img_shape=(64, 96), labels=None, scale_factor=(2.0, 2.0), img_path="x.jpg"):
    sample = DetDataSample(metainfo=dict(img_shape=img_shape, scale_factor=scale_factor, img_path=img_path))
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.zeros(len(boxes), dtype=torch.long) if labels is None else torch.tensor(labels)
    sample.gt_instances = InstanceData(bboxes=boxes, labels=labels)
    return sample


def test_box_edge_cases(classifier, make_images):
    image = make_images([(64, 96)])[0][None]
    samples = [_sample([[0, 0, 0, 30], [80, 40, 200, 100], [10, 10, 40, 40]])]
    with torch.no_grad():
        inst = classifier.predict(image, samples)[0].pred_instances
    # zero width -> zero region vector -> uniform scores, top-1 = first class (documented)
    torch.testing.assert_close(inst.all_scores[0], torch.full((3,), 1 / 3))
    assert int(inst.labels[0]) == 0
    # partly outside the image: allowed, a proper distribution
    assert torch.isfinite(inst.all_scores[1]).all() and inst.all_scores[1].sum() == pytest.approx(1)
    # rescale: boxes back to original pixels through scale_factor
    torch.testing.assert_close(inst.bboxes[2], torch.tensor([5.0, 5.0, 20.0, 20.0]))
    assert inst.topk_labels.shape == (3, 2)
    torch.testing.assert_close(inst.topk_scores[:, 0], inst.scores)

    with pytest.raises(ValueError, match=r"bad\.jpg: box 1 is not finite"):
        classifier.predict(image, [_sample([[0, 0, 5, 5], [1, float("nan"), 3, 4]], img_path="bad.jpg")])
    with pytest.raises(ValueError, match=r"x\.jpg: box 0 has x2 < x1"):
        classifier.predict(image, [_sample([[10, 0, 5, 5]])])


def test_no_boxes_gives_empty_predictions(classifier, make_images):
    inst = classifier.predict(make_images([(32, 32)])[0][None], [_sample([], img_shape=(32, 32))])[0].pred_instances
    assert len(inst) == 0 and inst.topk_labels.shape == (0, 2)


def test_batch_predictions_equal_single_image(classifier, make_images):
    """Padding (a bigger batch-mate) changes nothing, boxes on the right/bottom edge included."""
    small, big = make_images([(48, 80), (96, 128)], seed=3)
    edge = [[0, 0, 80, 48], [60, 30, 80, 48]]
    batch = torch.zeros(2, 3, 96, 128)
    batch[0, :, :48, :80], batch[1] = small, big
    with torch.no_grad():
        alone = classifier.predict(small[None], [_sample(edge, img_shape=(48, 80))])[0].pred_instances
        both = classifier.predict(batch, [_sample(edge, img_shape=(48, 80)),
                                          _sample([[5, 5, 50, 50]], img_shape=(96, 128))])[0].pred_instances
    torch.testing.assert_close(both.all_scores, alone.all_scores, atol=1e-6, rtol=0)


def test_missing_vocabulary_and_hook_mismatch(tiny_dir, tmp_path):
    model = MODELS.build(dict(type="FGCLIP2BoxClassifier", backbone=dict(type="FGCLIP2ViT", checkpoint=str(tiny_dir))))
    with pytest.raises(RuntimeError, match="DatasetVocabularyHook"):
        model.predict(torch.zeros(1, 3, 32, 32), [_sample([[0, 0, 8, 8]], img_shape=(32, 32))])

    from fgclip2_det.det.hooks import DatasetVocabularyHook

    class FakeDataset:
        metainfo = dict(classes=("cat", "dog"))

    class FakeRunner:
        def __init__(self, m):
            self.model, self.test_dataloader = m, type("Loader", (), {"dataset": FakeDataset()})()
            self.logger = __import__("logging").getLogger("test")

    model.text_cfg.update(cache_dir=str(tmp_path), progress=False)
    DatasetVocabularyHook().before_test(FakeRunner(model))
    assert model.classes == ["cat", "dog"] and model.class_embeds.shape == (2, 64)
    FakeDataset.metainfo = dict(classes=("cat", "bird"))
    with pytest.raises(ValueError, match="differ from the dataset"):
        DatasetVocabularyHook().before_test(FakeRunner(model))


def test_loss_trains_only_the_last_block(tiny_dir, tmp_path, make_images):
    model = MODELS.build(dict(
        type="FGCLIP2BoxClassifier", classes=["cat", "dog"],
        backbone=dict(type="FGCLIP2ViT", checkpoint=str(tiny_dir), out_indices=[], trainable_blocks=1),
        text_classifier=dict(cache_dir=str(tmp_path), progress=False)))
    model.train()
    losses = model.loss(make_images([(64, 64)])[0][None], [_sample([[0, 0, 30, 30], [20, 20, 60, 50]],
                                                                   img_shape=(64, 64), labels=[0, 1])])
    losses["loss_boxclass"].backward()
    layers = model.backbone.fgclip2.vision_model.encoder.layers
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layers[-1].parameters())
    assert all(p.grad is None for p in layers[0].parameters())
    assert all(p.grad is None for p in model.backbone.fgclip2.dense_feature_head.parameters())
    assert layers[-1].training and not layers[0].training
