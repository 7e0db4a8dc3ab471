"""Command-line tools: tiny checkpoints, SigLIP 2 conversion, the image demo on a real photo."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgclip2_det.model import FGCLIP2
from fgclip2_det.model.checkpoint import read_state_dict, write_state_dict
from tool_helpers import load_tool

ROOT = Path(__file__).resolve().parents[2]


def run_tool(*args, check=True):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    if check and proc.returncode:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_make_tiny_checkpoint_is_deterministic(tmp_path, tiny_dir):
    run_tool("tools/make_tiny_checkpoint.py", tmp_path / "a", "--seed", "0")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tiny_dir / name).read_bytes(), name
    run_tool("tools/make_tiny_checkpoint.py", tmp_path / "b", "--seed", "1", "--no-tokenizer")
    a, b = read_state_dict(tmp_path / "a"), read_state_dict(tmp_path / "b")
    assert not torch.equal(a["boxtext_head.weight"], b["boxtext_head.weight"])
    assert not (tmp_path / "b" / "tokenizer.json").exists()


def test_convert_siglip2_tool(tmp_path, tiny_model, tiny_dir):
    src = tmp_path / "siglip2"
    cfg = json.loads((tiny_dir / "config.json").read_text())
    for k in ("keep_len", "longtext_len"):
        cfg["text_config"].pop(k)
    cfg["model_type"] = "siglip2"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    state = {k: v for k, v in tiny_model.state_dict().items()
             if k.startswith(("text_model.", "vision_model.", "logit_")) and "position_embedding_" not in k}
    write_state_dict(src, state)
    run_tool("tools/convert_siglip2.py", src, tmp_path / "out")
    model = FGCLIP2.from_pretrained(tmp_path / "out")
    assert torch.equal(model.dense_feature_head.probe, tiny_model.vision_model.head.probe)
    assert (tmp_path / "out" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_demo_on_real_photo(tmp_path, tiny_dir):
    proc = run_tool("tools/demo.py", "--checkpoint", tiny_dir, "--out", tmp_path, "--cache-dir", tmp_path / "cache",
                    "--vocab", "person,dog,cat,汽车,蓝色的杯子")
    assert "19 boxes" in proc.stdout
    report = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    assert len(report["predictions"]) == 19
    assert report["vocab"][3:] == ["汽车", "蓝色的杯子"]
    assert all(0 < p["score"] <= 1 for p in report["predictions"])
    for name in ("demo_boxes.png", "demo_heatmap.png"):
        img = np.asarray(Image.open(tmp_path / name))
        assert img.shape == (375, 500, 3) and img.std() > 10, name


def test_demo_own_image_and_boxes(tmp_path, tiny_dir):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "b.json").write_text("[[5, 5, 60, 80], [70, 10, 130, 90]]")
    run_tool("tools/demo.py", tmp_path / "x.png", "--checkpoint", tiny_dir, "--boxes", tmp_path / "b.json",
             "--out", tmp_path / "o", "--vocab", "red,blue", "--cache-dir", tmp_path / "cache")
    assert len(json.loads((tmp_path / "o" / "demo.json").read_text())["predictions"]) == 2


def test_demo_empty_vocab_is_an_error(tmp_path, tiny_dir):
    proc = run_tool("tools/demo.py", "--checkpoint", tiny_dir, "--vocab", " , ", "--out", tmp_path, check=False)
    assert proc.returncode != 0 and "--vocab is empty" in proc.stderr


@pytest.fixture(scope="module")
def demo():
    """tools/demo.py as a module, to call ``main`` in-process (no interpreter start per case)."""
    return load_tool("demo")


def _demo_args(tmp_path, tiny_dir, out, vocab, *extra):
    return [str(tmp_path / "img.png"), "--checkpoint", str(tiny_dir), "--boxes", str(tmp_path / "b.json"),
            "--vocab", vocab, "--out", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"), *extra]


@pytest.fixture
def grey_image(tmp_path):
    Image.fromarray(np.full((120, 160, 3), 128, dtype=np.uint8)).save(tmp_path / "img.png")
    (tmp_path / "b.json").write_text("[[10, 10, 150, 110]]")
    return tmp_path


def test_demo_chinese_labels_render(demo, grey_image, tiny_dir):
    """One class -> label "<name>: 100.0". A font without CJK draws both names as the same .notdef
    box, so the two PNGs would be equal; with CJK glyphs they differ, and only in the label."""
    font = demo.find_cjk_font(None)
    assert font is not None, "no CJK font: install the dev extra (pylopdf-fonts-zh-cn)"
    assert demo.font_has_glyphs(font, "猫狗蓝色的杯子")
    from PIL import ImageFont
    assert ImageFont.truetype(str(font), 20).getmask("猫").getbbox()
    images = {}
    for vocab in ("猫", "狗"):
        assert demo.main(_demo_args(grey_image, tiny_dir, vocab, vocab)) == 0
        images[vocab] = np.asarray(Image.open(grey_image / vocab / "demo_boxes.png")).astype(int)
        report = json.loads((grey_image / vocab / "demo.json").read_text(encoding="utf-8"))
        assert report["font"] == str(font) and report["predictions"][0]["label"] == vocab
    diff = np.abs(images["猫"] - images["狗"]).sum(-1)
    ys, xs = np.nonzero(diff)
    assert len(ys) > 20, "the two Chinese labels rendered identically (missing glyphs?)"
    assert ys.max() < 40 and xs.max() < 80, "only the label area (top-left of the box) may differ"


def test_demo_font_checks(demo, tmp_path):
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    assert not demo.font_has_glyphs(dejavu) and not demo.font_has_glyphs(tmp_path / "missing.ttf")
    with pytest.raises(demo.InputError, match="not a font with Chinese glyphs"):
        demo.find_cjk_font(str(dejavu))


def test_demo_without_cjk_font_warns_and_still_draws(demo, grey_image, tiny_dir, monkeypatch, capsys):
    monkeypatch.setattr(demo, "packaged_cjk_font", lambda: None)
    monkeypatch.setattr(demo, "system_cjk_font", lambda: None)
    assert demo.main(_demo_args(grey_image, tiny_dir, "o", "猫,red car")) == 0
    assert "no font with Chinese glyphs found" in capsys.readouterr().err
    assert json.loads((grey_image / "o" / "demo.json").read_text(encoding="utf-8"))["font"] is None
    for name in ("demo_boxes.png", "demo_heatmap.png"):
        assert np.asarray(Image.open(grey_image / "o" / name)).shape == (120, 160, 3)


def test_demo_uses_the_text_classifier(demo, grey_image, tiny_dir):
    """Box scores = softmax(100 cos) against TextClassifier embeddings (EN: 80 templates, ZH: bare)."""
    from fgclip2_det.openvocab.text_classifier import TextClassifier
    from fgclip2_det.model.image_processor import FGCLIP2ImageProcessor

    vocab = ["red car", "蓝色的杯子"]
    assert demo.main(_demo_args(grey_image, tiny_dir, "o", ",".join(vocab))) == 0
    report = json.loads((grey_image / "o" / "demo.json").read_text(encoding="utf-8"))
    classifier = TextClassifier(tiny_dir, cache_dir=grey_image / "cache", progress=False)
    assert len(classifier.class_texts(vocab)[0][0]) == 80 and classifier.class_texts(vocab)[1][0] == ["蓝色的杯子"]
    text = classifier(vocab)
    model = FGCLIP2.from_pretrained(tiny_dir)
    processed = FGCLIP2ImageProcessor()([grey_image / "img.png"], boxes=[[[10, 10, 150, 110]]])
    with torch.inference_mode():
        regions = model.encode_regions(processed.images, processed.boxes)[0]
    probs = (100 * regions @ text.t()).softmax(-1)[0]
    got = dict(report["predictions"][0]["top5"])
    assert got == pytest.approx({v: float(p) for v, p in zip(vocab, probs)}, abs=1e-5)
    assert len(list((grey_image / "cache").glob("*.pt"))) == 2  # cached: the vocabulary and the query


def test_demo_text_attention_mask(demo, grey_image, tiny_dir, tiny_dir_no_mask):
    """By default class texts carry the attention mask exactly when the checkpoint's tokenizer returns
    one (as the box-classification config, so a class scores the same); --text-attention-mask on / off
    forces it; demo.json says which was used."""
    from fgclip2_det.model.image_processor import FGCLIP2ImageProcessor
    from fgclip2_det.openvocab.text_classifier import TextClassifier

    vocab = ["red car", "dog"]
    model = FGCLIP2.from_pretrained(tiny_dir)  # tiny_dir_no_mask has the same weights
    processed = FGCLIP2ImageProcessor()([grey_image / "img.png"], boxes=[[[10, 10, 150, 110]]])
    with torch.inference_mode():
        regions = model.encode_regions(processed.images, processed.boxes)[0]
    cases = [(tiny_dir, None, True), (tiny_dir_no_mask, None, False), (tiny_dir, "off", False),
             (tiny_dir_no_mask, "on", True)]
    for i, (checkpoint, option, used) in enumerate(cases):
        extra = [] if option is None else ["--text-attention-mask", option]
        assert demo.main(_demo_args(grey_image, checkpoint, f"o{i}", ",".join(vocab), *extra)) == 0
        report = json.loads((grey_image / f"o{i}" / "demo.json").read_text(encoding="utf-8"))
        assert report["text_attention_mask"] is used
        text = TextClassifier(checkpoint, attention_mask=used, use_cache=False, progress=False)(vocab)
        probs = (100 * regions @ text.t()).softmax(-1)[0]
        assert dict(report["predictions"][0]["top5"]) == pytest.approx({v: float(p) for v, p in zip(vocab, probs)},
                                                                       abs=1e-5)
    with pytest.raises(SystemExit):
        demo.main(_demo_args(grey_image, tiny_dir, "bad", "red car", "--text-attention-mask", "yes"))


@pytest.mark.parametrize("case, message", [
    ("not_an_image", "cannot read image"),
    ("missing_image", "image file not found"),
    ("missing_checkpoint", "checkpoint directory"),
    ("empty_vocab", "--vocab is empty"),
    ("bad_boxes", "--boxes"),
    ("missing_detector", "--detector"),
])
def test_demo_bad_input_is_one_line(demo, grey_image, tiny_dir, case, message):
    (grey_image / "bad.jpg").write_text("not an image")
    args = _demo_args(grey_image, tiny_dir, "o", "cat")
    if case == "not_an_image":
        args[0] = str(grey_image / "bad.jpg")
    elif case == "missing_image":
        args[0] = str(grey_image / "nope.png")
    elif case == "missing_checkpoint":
        args[2] = str(grey_image / "no-checkpoint")
    elif case == "empty_vocab":
        args[6] = " , "
    elif case == "bad_boxes":
        (grey_image / "b.json").write_text('[[1, 2, 3]]')
    else:
        args = [a for a in args if a not in ("--boxes", str(grey_image / "b.json"))]
        args += ["--detector", str(grey_image / "none.py"), "--detector-weights", str(grey_image / "none.pth")]
    with pytest.raises(SystemExit) as exc:
        demo.main(args)
    text = str(exc.value.code)
    assert text.startswith("demo.py: error:") and message in text and "\n" not in text


def test_demo_bad_image_has_no_traceback(tmp_path, tiny_dir):
    (tmp_path / "bad.jpg").write_text("not an image")
    proc = run_tool("tools/demo.py", tmp_path / "bad.jpg", "--checkpoint", tiny_dir, "--out", tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"demo.py: error: cannot read image {tmp_path / 'bad.jpg'}: "
                                                f"cannot identify image file '{tmp_path / 'bad.jpg'}'"]


TINY_DETECTOR = """
default_scope = 'mmdet'
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2, 3), norm_eval=True,
                  norm_cfg=dict(type='BN', requires_grad=False)),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16, add_extra_convs='on_input', num_outs=3),
    bbox_head=dict(type='RetinaHead', num_classes=3, in_channels=16, stacked_convs=1, feat_channels=16,
                   anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                                         ratios=[1.0], strides=[8, 16, 32]),
                   bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
                   loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                   loss_bbox=dict(type='L1Loss')),
    test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=4))
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(160, 128), keep_ratio=True),
                 dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                       'scale_factor'))]
test_dataloader = dict(dataset=dict(type='CocoDataset', pipeline=test_pipeline))
"""


def test_demo_boxes_from_an_mmdet_detector(tmp_path, tiny_dir):
    """A tiny random RetinaNet (ResNet-18 at 1/8 width), built and saved here: its boxes are classified."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    (tmp_path / "det.py").write_text(TINY_DETECTOR)
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("mmdet"):
        detector = MODELS.build(Config.fromfile(tmp_path / "det.py").model)
    torch.save(detector.state_dict(), tmp_path / "det.pth")
    proc = run_tool("tools/demo.py", "--checkpoint", tiny_dir, "--detector", tmp_path / "det.py",
                    "--detector-weights", tmp_path / "det.pth", "--det-score-thr", "0", "--out", tmp_path / "o",
                    "--cache-dir", tmp_path / "cache", "--vocab", "person,猫")
    report = json.loads((tmp_path / "o" / "demo.json").read_text(encoding="utf-8"))
    assert 1 <= len(report["predictions"]) <= 4 and f"{len(report['boxes'])} boxes" in proc.stdout
    for pred, box in zip(report["predictions"], report["boxes"]):
        assert 0 <= pred["detector_score"] <= 1 and pred["label"] in ("person", "猫")
        assert 0 <= box[0] <= box[2] <= 500 and 0 <= box[1] <= box[3] <= 375  # original VOC pixels
    proc = run_tool("tools/demo.py", "--checkpoint", tiny_dir, "--detector", tmp_path / "det.py",
                    "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "--detector and --detector-weights go together" in proc.stderr


def test_boxclass_benchmark_matches_the_per_box_reference(tmp_path):
    """Smoke run of `tools/benchmark.py boxclass` on the tiny preset: same top-1, scores within 1e-5."""
    bench = load_tool("benchmark")
    assert bench.main(["boxclass", "--boxclass-preset", "tiny", "--boxclass-boxes", "2", "--boxclass-classes", "7",
                       "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())["benchmarks"]["boxclass"]
    assert res["boxes"] == 12 and res["top1_identical"] and res["max_abs_score_diff"] <= 1e-5
    assert "### boxclass (tiny preset" in (tmp_path / "results.md").read_text()


def test_make_synthetic_world_tool(tmp_path):
    proc = run_tool("tools/make_synthetic_world.py", tmp_path / "w", "--images", "10", "--seed", "5",
                    "--workers", "1")
    assert "wrote 10 images ({'train': 8, 'val': 2})" in proc.stdout
    meta = json.loads((tmp_path / "w" / "world.json").read_text())
    assert meta["seed"] == 5 and len(list((tmp_path / "w" / "images").glob("*.jpg"))) == 10
    # 2 val images hold too few objects for 10 "other object" negatives: topped up, never stuck
    trivial = (tmp_path / "w" / "fgovd" / "trivial.jsonl").read_text().splitlines()
    assert trivial and all(len(json.loads(line)["neg_expression"]) == 10 for line in trivial)


@pytest.mark.slow  # four fresh interpreters (~1-2 min)
def test_cat_seg_benchmark_reports_rates_and_memory(tmp_path):
    """Smoke run of `tools/benchmark.py cat_seg` on the tiny preset: both fine-tuning modes train, the
    q/v mode trains more parameters, and chunked A-847 inference needs less memory than unchunked."""
    bench = load_tool("benchmark")
    assert bench.main(["cat_seg", "--out", str(tmp_path), "--cat-seg-presets", "tiny", "--cat-seg-steps", "2",
                       "--cat-seg-inference-preset", "tiny", "--cat-seg-crop", "64"]) == 0  # a 4 x 4 grid: one window
    res = json.loads((tmp_path / "results.json").read_text())["benchmarks"]["cat_seg"]
    train = {r["finetune"]: r for r in res["train"]}
    assert set(train) == {"none", "attention"} and all(r["fits"] and r["steps"] == 2 for r in train.values())
    assert train["attention"]["trainable_params_m"] > train["none"]["trainable_params_m"] > 0
    unchunked, chunked = res["inference"]
    assert unchunked["class_chunk"] is None and chunked["class_chunk"] == 64
    assert 0 < chunked["step_peak_gib"] < unchunked["step_peak_gib"]
    md = (tmp_path / "results.md").read_text()
    assert "### CAT-Seg on CPU" in md and "| tiny | train | 171 | attention |" in md
