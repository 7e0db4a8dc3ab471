"""fgclip2_det.apis: typed inputs, init_model / inference_model over images and folders for the box
classifier, the detector and the segmentor, and FG-CLIP 2 alone (ZeroShotPredictor)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from det_helpers import BOXCLASS_CONFIG, ROOT, shared_text_cache
from fgclip2_det.apis import (InputError, ZeroShotPredictor, as_vocabulary, inference_model, init_model,
                              list_images, parse_vocabulary, use_vocabulary)
from fgclip2_det.model import FGCLIP2, FGCLIP2ImageProcessor
from fgclip2_det.openvocab import TextClassifier, dense_cosine, zero_shot_probs

DETECTOR_CONFIG = ROOT / "configs" / "ovd" / "fvit_fgclip2-tiny_ov-synthetic.py"
SEGMENTOR_CONFIG = ROOT / "configs" / "ovseg" / "training-free_fgclip2-tiny_synthetic.py"
VOCAB = ["red car", ["dog", "狗"], "蓝色的杯子"]  # English, a bilingual synonym pair, Chinese


def _options(tiny_dir):
    return {"model.backbone.checkpoint": str(tiny_dir), "model.text_classifier.progress": False,
            "model.text_classifier.cache_dir": str(shared_text_cache(tiny_dir))}


def _image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three images of different sizes and formats, and a file that is not an image."""
    root = tmp_path_factory.mktemp("images")
    Image.fromarray(_image(0, 120, 160)).save(root / "b.png")
    Image.fromarray(_image(1, 90, 200)).save(root / "a.jpg", quality=95)
    Image.fromarray(_image(2, 140, 100)).save(root / "c.PNG")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def box_classifier(tiny_dir):
    return init_model(BOXCLASS_CONFIG, cfg_options={**_options(tiny_dir), "model.return_all_scores": True})


# ------------------------------------------------------------------------------------- inputs
def test_typed_vocabularies_commas_synonyms_and_messages():
    assert parse_vocabulary("dog | 狗, cat｜猫；red car\nDOG, 狗") == [["dog", "狗"], ["cat", "猫"], "red car"]
    with pytest.raises(InputError, match=r"^--vocab is empty: type class names"):
        parse_vocabulary(" ,| ", what="--vocab")
    assert len(parse_vocabulary(",".join(f"c{i}" for i in range(400)), max_classes=None)) == 400
    assert as_vocabulary(VOCAB) == VOCAB and as_vocabulary([["cat"]]) == ["cat"]
    assert as_vocabulary("dog|狗, car") == [["dog", "狗"], "car"]
    with pytest.raises(InputError, match=r"vocabulary: class 1 must be a non-empty name"):
        as_vocabulary(["dog", ""])


def test_a_folder_lists_its_images_sorted(folder, tmp_path):
    assert [p.name for p in list_images(folder)] == ["a.jpg", "b.png", "c.PNG"]
    assert list_images(folder / "b.png") == [folder / "b.png"]
    array = _image(0, 4, 4)
    assert list_images([str(folder / "b.png"), array])[0] == folder / "b.png"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"folder .*empty holds no image"):
        list_images(tmp_path / "empty")
    with pytest.raises(InputError, match=r"image file not found: .*missing\.png"):
        list_images(tmp_path / "missing.png")


# ------------------------------------------------------------------------------------- box classifier
def test_box_classifier_equals_zero_shot_probs_of_pooled_regions(box_classifier, folder, tiny_dir):
    """The box classifier through the API = softmax(100 cos) of the RoIAlign-pooled boxes against the
    TextClassifier's embeddings of the bilingual vocabulary, computed here by hand; a file and an
    array in one batch of 2 give the same as one at a time."""
    image = _image(5, 100, 140)
    inputs = [folder / "b.png", image]
    boxes = [np.array([[10, 10, 150, 110], [0, 0, 40, 30]], np.float32), np.array([[5, 5, 60, 80]], np.float32)]
    samples = inference_model(box_classifier, inputs, VOCAB, boxes=boxes, batch_size=2)
    assert box_classifier.classes == VOCAB and len(samples) == 2

    text = TextClassifier(tiny_dir, cache_dir=shared_text_cache(tiny_dir), progress=False)(VOCAB)
    model = FGCLIP2.from_pretrained(tiny_dir)
    for source, b, sample in zip([np.asarray(Image.open(folder / "b.png")), image], boxes, samples):
        processed = FGCLIP2ImageProcessor()([source], boxes=[b])
        with torch.inference_mode():
            expected = zero_shot_probs(model.encode_regions(processed.images, processed.boxes)[0], text)
        inst = sample.pred_instances
        assert inst.all_scores.shape == (len(b), 3)
        assert torch.allclose(inst.all_scores, expected, atol=1e-5)
        assert torch.equal(inst.labels, expected.argmax(-1)) and torch.allclose(inst.scores, expected.max(-1).values,
                                                                                  atol=1e-5)
        assert torch.allclose(inst.bboxes, torch.from_numpy(b), atol=1e-3)  # back in the image's pixels
    assert samples[0].img_path == str(folder / "b.png") and samples[1].img_path is None

    one_at_a_time = [inference_model(box_classifier, x, VOCAB, boxes=b) for x, b in zip(inputs, boxes)]
    for single, batched in zip(one_at_a_time, samples):
        assert torch.allclose(single.pred_instances.all_scores, batched.pred_instances.all_scores, atol=1e-5)


def test_vocabulary_is_set_once_and_bad_ones_are_input_errors(box_classifier, monkeypatch):
    calls = []
    set_vocabulary = box_classifier.set_vocabulary
    monkeypatch.setattr(box_classifier, "set_vocabulary", lambda *a: calls.append(a) or set_vocabulary(*a))
    use_vocabulary(box_classifier, ["circle", "方块"])
    use_vocabulary(box_classifier, "circle, 方块")  # the same, typed
    assert len(calls) == 1 and box_classifier.classes == ["circle", "方块"]
    with pytest.raises(InputError, match="vocabulary: duplicate class names"):
        use_vocabulary(box_classifier, ["Car", "car"])
    with pytest.raises(InputError, match="vocabulary: novel_classes not in the vocabulary"):
        use_vocabulary(box_classifier, ["circle"], novel_classes=["star"])
    with pytest.raises(InputError, match="got 1 box arrays for 2 images"):
        inference_model(box_classifier, [_image(0, 32, 32)] * 2, boxes=[np.zeros((1, 4))])


# ------------------------------------------------------------------------------------- detector
@pytest.fixture(scope="module")
def detector(tiny_dir):
    return init_model(DETECTOR_CONFIG, cfg_options=_options(tiny_dir))


def test_detector_over_a_folder_gives_one_sample_per_image_on_the_vocabulary(detector, folder, capsys):
    vocab = "circle, 红色的星星 | red star, heart"  # not the 14 kinds of the config
    samples = inference_model(detector, folder, vocab, batch_size=2)
    assert [s.img_path for s in samples] == [str(folder / n) for n in ("a.jpg", "b.png", "c.PNG")]
    assert detector.classes == ["circle", ["红色的星星", "red star"], "heart"]
    assert detector.roi_head.bbox_head.num_classes == 3
    for sample, (h, w) in zip(samples, [(90, 200), (120, 160), (140, 100)]):
        inst = sample.pred_instances
        assert tuple(sample.ori_shape) == (h, w) and len(inst) > 0
        assert set(inst.labels.tolist()) <= {0, 1, 2} and ((inst.scores >= 0) & (inst.scores <= 1)).all()
        assert (inst.bboxes[:, 0] >= 0).all() and (inst.bboxes[:, 2] <= w + 1e-3).all()
        assert (inst.bboxes[:, 1] >= 0).all() and (inst.bboxes[:, 3] <= h + 1e-3).all()
    assert "3/3" in capsys.readouterr().err  # a folder shows a progress bar


def test_a_corrupt_image_in_a_folder_is_named(detector, tmp_path):
    Image.fromarray(_image(0, 64, 64)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(InputError, match=r"cannot read image .*b\.jpg"):
        inference_model(detector, tmp_path, ["circle"], progress=False)


def test_a_closed_set_detector_takes_no_vocabulary(tmp_path):
    class Closed(torch.nn.Module):
        pass

    with pytest.raises(InputError, match="Closed has a fixed set of classes"):
        use_vocabulary(Closed(), ["dog"])
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        init_model(DETECTOR_CONFIG, tmp_path / "none.pth")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        init_model(tmp_path / "none.py")


# ------------------------------------------------------------------------------------- segmentor
def test_segmentor_on_an_array_returns_its_sample(tiny_dir):
    model = init_model(SEGMENTOR_CONFIG, cfg_options=_options(tiny_dir))
    image = _image(3, 70, 110)
    sample = inference_model(model, image, ["background", "sky", "草地"])
    labels = sample.pred_sem_seg.sem_seg
    assert labels.shape == (1, 70, 110) and set(labels.unique().tolist()) <= {0, 1, 2}
    logits = sample.seg_logits.data
    assert logits.shape == (3, 70, 110)
    # training-free rule of the config: the argmax, or background (0) where its probability is < 0.5
    best, winner = logits.softmax(0).max(0)
    assert torch.equal(labels[0], torch.where(best < 0.5, 0, winner))


# ------------------------------------------------------------------------------------- FG-CLIP 2 alone
def test_zero_shot_predictor_answers_with_the_scoring_rule(tiny_dir, tmp_path):
    predictor = ZeroShotPredictor(tiny_dir, cache_dir=str(tmp_path / "cache"))
    image = _image(4, 96, 128)
    boxes = np.array([[0, 0, 64, 48], [20, 10, 120, 90]], np.float32)
    feats = predictor.features(image, boxes)
    text = predictor.embeddings(VOCAB)
    assert torch.equal(predictor.box_probs(feats, VOCAB), zero_shot_probs(feats.regions, text))
    assert torch.allclose(predictor.classify_boxes(image, boxes, VOCAB), zero_shot_probs(feats.regions, text))
    query = predictor.embeddings(["一只狗"], query=True)
    assert torch.equal(predictor.similarity_map(feats, "一只狗"), dense_cosine(feats.dense, query)[0])
    assert feats.image_size == (96, 128) and feats.dense.shape[1:] == (feats.input_size[0] // 16,
                                                                       feats.input_size[1] // 16)

    seg = predictor.segment(image, VOCAB)
    assert seg.seg_logits.data.shape == (3, 96, 128)
    assert torch.equal(seg.pred_sem_seg.sem_seg[0], seg.seg_logits.data.argmax(0))
    found = predictor.detect(image, VOCAB, score_thr=0.0).pred_instances
    assert len(found) > 0 and set(found.labels.tolist()) <= {0, 1, 2}
    assert (found.scores[:-1] >= found.scores[1:]).all()  # best first
    assert (found.bboxes[:, 2] <= 128).all() and (found.bboxes[:, 3] <= 96).all()
    assert len(predictor.detect(image, VOCAB, score_thr=1.01).pred_instances) == 0

    with pytest.raises(InputError, match="checkpoint directory .* not found"):
        ZeroShotPredictor(tmp_path / "none")
    with pytest.raises(InputError, match="text query"):
        predictor.similarity_map(feats, " ")


def test_a_class_scores_the_same_in_the_api_and_the_box_classifier(tiny_dir_either_mask, tmp_path):
    """Class and query texts follow the checkpoint's tokenizer by default ('auto'), as the official
    box evaluation and the box-classification config: with a tokenizer that returns an attention mask
    and with one that returns none, ZeroShotPredictor's embeddings equal the official text side and
    the box classifier's; ``text_attention_mask`` forces either way; a bad value is an InputError."""
    from det_helpers import official_text_features, official_tokenizer, template_class_embeddings

    checkpoint = tiny_dir_either_mask
    hf = official_tokenizer(checkpoint)
    returns_mask = "attention_mask" in hf(["a cat"])
    model = FGCLIP2.from_pretrained(checkpoint)
    vocab = ["red car", "dog"]
    official = template_class_embeddings(model, hf, vocab)
    predictor = ZeroShotPredictor(checkpoint, cache_dir=str(tmp_path / "cache"))
    assert predictor.text_attention_mask == "auto" and predictor.class_text.uses_attention_mask is returns_mask
    torch.testing.assert_close(predictor.embeddings(vocab), official, atol=1e-6, rtol=0)
    query = F.normalize(official_text_features(model, hf, ["a red car"], "box"), dim=-1)
    torch.testing.assert_close(predictor.embeddings(["A Red Car"], query=True), query, atol=1e-6, rtol=0)

    box_classifier = init_model(BOXCLASS_CONFIG, cfg_options=_options(checkpoint))
    use_vocabulary(box_classifier, vocab)
    torch.testing.assert_close(box_classifier.class_embeds.cpu(), predictor.embeddings(vocab), atol=1e-6, rtol=0)

    for option in (True, False):
        forced = ZeroShotPredictor(checkpoint, cache_dir=str(tmp_path / "cache"), text_attention_mask=option)
        assert forced.class_text.uses_attention_mask is option and forced.query_text.uses_attention_mask is option
        if option is returns_mask:
            torch.testing.assert_close(forced.embeddings(vocab), official, atol=1e-6, rtol=0)
        else:
            assert not torch.allclose(forced.embeddings(vocab), official, atol=1e-3)
    with pytest.raises(InputError, match=r"text_attention_mask must be 'auto', True or False, got 'on'"):
        ZeroShotPredictor(checkpoint, text_attention_mask="on")
