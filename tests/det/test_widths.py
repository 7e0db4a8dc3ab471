"""Detection widths follow the backbone checkpoint: unset widths are filled from its config.json, set
ones must agree; a large-size config differs from the base one by its checkpoint path only."""
from __future__ import annotations

import json

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

from det_helpers import ROOT, in_mmdet_scope, mmdet_scope  # noqa: F401  (mmdet_scope: autouse fixture)
from fgclip2_det.det.widths import WidthError, backbone_output_shape, fill_widths
from fgclip2_det.model import FGCLIP2, FGCLIP2Config

OVD = ROOT / "configs" / "ovd"


def large_like_checkpoint(path, width=1024):
    """A random FG-CLIP 2 of the tiny preset's depth at ``width`` (large's is 1024), official layout."""
    config = FGCLIP2Config.preset("tiny", text={"hidden_size": width, "projection_size": width},
                                  vision={"hidden_size": width})
    FGCLIP2(config).save_pretrained(path)
    return path


def flat(d, prefix=""):
    """{dotted key: value} of a nested config dict (lists of dicts indexed)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out.update(flat(x, f"{key}[{i}]."))
        else:
            out[key] = v
    return out


def resolved(config, checkpoint):
    cfg = Config.fromfile(str(config))
    return fill_widths(dict(cfg.model.backbone, checkpoint=str(checkpoint)), cfg.model.neck, cfg.model.roi_head)


@pytest.mark.parametrize("data, recipe", [
    ("coco", set()),
    ("lvis", {"model.roi_head.ensemble.beta"}),   # F-ViT's ViT-L/14 OV-LVIS config: beta 0.4
])
def test_large_config_is_the_base_config_with_another_checkpoint(data, recipe):
    """Widths need no restating: only the checkpoint (and, where the anchor's large config sets another
    value, that value) differ from the base config."""
    base = flat(Config.fromfile(str(OVD / f"fvit_fgclip2-base_ov-{data}.py")).to_dict())
    large = flat(Config.fromfile(str(OVD / f"fvit_fgclip2-large_ov-{data}.py")).to_dict())
    assert {k for k in base.keys() | large.keys() if base.get(k) != large.get(k)} == {"model.backbone.checkpoint"} | recipe
    assert large["model.backbone.checkpoint"] == "checkpoints/fg-clip2-large"
    assert large["model.neck.necks[0].in_channels"] is None and large["model.roi_head.bbox_head.embed_dim"] is None


def test_large_config_builds_with_the_checkpoint_widths(tmp_path):
    """The large OV-COCO config with only its checkpoint path changed, to a random checkpoint of large's
    width (two blocks): the pyramid reads 1024 channels and the box head classifies in 1024 dimensions."""
    cfg = Config.fromfile(str(OVD / "fvit_fgclip2-large_ov-coco.py"))
    cfg.model.backbone.checkpoint = str(large_like_checkpoint(tmp_path / "large-like"))
    with in_mmdet_scope():
        model = MODELS.build(cfg.model)
    pyramid = model.neck.necks[0]
    assert model.backbone.embed_dim == 1024 and pyramid.resamplers[0][0].in_channels == 1024
    assert [lat[0].in_channels for lat in pyramid.laterals] == [256, 512, 1024, 1024]
    head = model.roi_head.bbox_head
    assert head.embed_dim == 1024 and head.fc_cls.out_features == 1024 and tuple(head.class_embeds.shape) == (65, 1024)
    assert model.neck.necks[1].lateral_convs[0].conv.in_channels == 256  # FPN: the pyramid's width, unchanged


@pytest.mark.parametrize("size,width", [("base", 768), ("large", 1024), ("so400m", 1152)])
def test_widths_follow_the_preset_configs(tmp_path, size, width):
    FGCLIP2Config.preset(size).save(tmp_path)
    neck, roi_head = resolved(OVD / "fvit_fgclip2-base_ov-lvis.py", tmp_path)
    assert neck.necks[0].in_channels == width and roi_head.bbox_head.embed_dim == width
    assert neck.necks[1].in_channels == [256] * 4 and roi_head.mask_head.in_channels == 256


def test_a_set_width_must_agree_with_the_checkpoint(tmp_path):
    FGCLIP2Config.preset("large").save(tmp_path)
    cfg = Config.fromfile(str(OVD / "fvit_fgclip2-large_ov-coco.py"))
    backbone = dict(cfg.model.backbone, checkpoint=str(tmp_path))
    cfg.model.roi_head.bbox_head.embed_dim = 1024
    cfg.model.neck.necks[0].in_channels = 1024
    neck, roi_head = fill_widths(backbone, cfg.model.neck, cfg.model.roi_head)  # agreeing values are kept
    assert neck.necks[0].in_channels == 1024 and roi_head.bbox_head.embed_dim == 1024
    cfg.model.roi_head.bbox_head.embed_dim = 768
    with pytest.raises(WidthError, match=r"model\.roi_head\.bbox_head\.embed_dim=768 .*width is 1024"):
        fill_widths(backbone, cfg.model.neck, cfg.model.roi_head)
    cfg.model.roi_head.bbox_head.embed_dim = None
    cfg.model.neck.necks[0].in_channels = 768
    with pytest.raises(WidthError, match=r"model\.neck\.necks\[0\]\.in_channels=768 .*width is 1024"):
        fill_widths(backbone, cfg.model.neck, cfg.model.roi_head)
    with pytest.raises(WidthError, match="bbox_head.embed_dim=768"):  # raised before anything is built
        with in_mmdet_scope():
            MODELS.build(dict(cfg.model, backbone=backbone, neck=dict(cfg.model.neck, necks=[
                dict(cfg.model.neck.necks[0], in_channels=None), cfg.model.neck.necks[1]]),
                roi_head=dict(cfg.model.roi_head, bbox_head=dict(cfg.model.roi_head.bbox_head, embed_dim=768))))


def test_inputs_are_not_modified(tmp_path):
    FGCLIP2Config.preset("base").save(tmp_path)
    cfg = Config.fromfile(str(OVD / "fvit_fgclip2-base_ov-coco.py"))
    before = cfg.model.to_dict()
    fill_widths(dict(cfg.model.backbone, checkpoint=str(tmp_path)), cfg.model.neck, cfg.model.roi_head)
    assert cfg.model.to_dict() == before


def test_a_neck_taking_the_backbone_maps_gets_one_width_per_map(tmp_path):
    """MMDetection necks with a list of input widths (FPN on the ViT taps, as F-ViT's L/14 configs)."""
    FGCLIP2Config.preset("large").save(tmp_path)
    backbone = dict(type="FGCLIP2ViT", checkpoint=str(tmp_path), out_indices=[6, 10, 14, 23])
    neck, _ = fill_widths(backbone, dict(type="FPN", out_channels=256, num_outs=5), None)
    assert neck["in_channels"] == [1024] * 4
    seq = dict(type="SequentialNeck", necks=[dict(type="ChannelMapper", in_channels=None, out_channels=8)])
    assert fill_widths(dict(backbone, out_indices=None), seq, None)[0]["necks"][0]["in_channels"] == [1024] * 4
    with pytest.raises(WidthError, match=r"model\.neck\.in_channels=\[1024, 1024\]"):
        fill_widths(backbone, dict(type="FPN", in_channels=[1024, 1024], out_channels=256, num_outs=5), None)


def test_backbone_output_shape(tmp_path):
    FGCLIP2Config.preset("so400m").save(tmp_path)
    shape = backbone_output_shape(dict(type="FGCLIP2ViT", checkpoint=str(tmp_path)))
    assert (shape.channels, shape.num_outs) == (1152, 4)
    assert backbone_output_shape(dict(type="FGCLIP2ViT", checkpoint=str(tmp_path), out_indices=[])).num_outs == 0
    with pytest.raises(ValueError, match="outside the encoder's 27 blocks"):
        backbone_output_shape(dict(type="FGCLIP2ViT", checkpoint=str(tmp_path), out_indices=[27]))


def test_a_siglip2_folder_gives_its_width(tmp_path):
    """A SigLIP 2 NaFlex folder (converted when the backbone loads it) has the width of its config."""
    raw = FGCLIP2Config.preset("large").to_dict()
    siglip2 = {"model_type": "siglip2", "text_config": {k: v for k, v in raw["text_config"].items()
                                                        if k not in ("keep_len", "longtext_len")},
               "vision_config": raw["vision_config"]}
    (tmp_path / "config.json").write_text(json.dumps(siglip2))
    assert backbone_output_shape(dict(type="FGCLIP2ViT", checkpoint=str(tmp_path))).channels == 1024


def test_nothing_to_read_leaves_the_widths_unset(tmp_path):
    """No checkpoint folder: the backbone, built first, reports it under its config key; another
    backbone type: its widths are the config's business."""
    cfg = Config.fromfile(str(OVD / "fvit_fgclip2-large_ov-coco.py"))
    for backbone in (dict(cfg.model.backbone, checkpoint=str(tmp_path / "missing")), dict(type="ResNet", depth=50)):
        neck, roi_head = fill_widths(backbone, cfg.model.neck, cfg.model.roi_head)
        assert neck.necks[0].in_channels is None and roi_head.bbox_head.embed_dim is None
    with pytest.raises(FileNotFoundError, match="model.backbone.checkpoint"), in_mmdet_scope():
        MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, checkpoint=str(tmp_path / "missing"))))
