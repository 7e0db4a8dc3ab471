"""Training-free segmentation with a dense-feature surgery (``dense_mode``): the config switch, the
default left unchanged, the logits of a variant, and the errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from det_helpers import mmdet_scope  # noqa: F401 (autouse fixture)
from fgclip2_det.openvocab import dense_cosine
from fgclip2_det.openvocab.dense_surgery import surgery_dense_maps

from test_segmentor import COST_DECODER, TRAINING_FREE, build, sample, world  # noqa: F401 (world: fixture)

TRAINING_FREE_CLASSES = ('background', 'circle', 'square', 'triangle', 'star', 'heart', 'hexagon', 'diamond',
                         'cross', 'crescent', 'ring', 'arrow', 'pentagon', 'ellipse', 'trapezoid')


def test_default_is_the_official_dense_head(tiny_dir, world):  # noqa: F811
    default = build(tiny_dir, world, TRAINING_FREE)
    explicit = build(tiny_dir, world, TRAINING_FREE, **{"model.dense_mode": "head"})
    assert default.dense_mode == "head" and default.dense_surgery is None
    x = torch.rand(1, 3, 48, 80) * 2 - 1
    with torch.no_grad():
        expected = F.interpolate(100.0 * dense_cosine(default.backbone(x).dense, default.class_embeds),
                                 size=(48, 80), mode="bilinear", align_corners=False)
        assert torch.equal(default.logits(x, [(48, 80)]), expected)
        assert torch.equal(explicit.logits(x, [(48, 80)]), expected)


@pytest.mark.parametrize("mode", ["clearclip", "naclip_block"])
def test_a_variant_from_the_config_scores_its_surgical_features(mode, tiny_dir, world):  # noqa: F811
    model = build(tiny_dir, world, TRAINING_FREE, **{"model.dense_mode": mode})
    assert model.dense_surgery is not None
    x = torch.zeros(2, 3, 64, 96)
    x[0, :, :40, :70] = torch.rand(3, 40, 70) * 2 - 1
    x[1] = torch.rand(3, 64, 96) * 2 - 1
    with torch.no_grad():
        logits = model.logits(x, [(40, 70), (64, 96)])
        # image 0: its real region rounded up to 48 x 80 (3 x 5 patches), zero-padded to the batch's grid
        maps = surgery_dense_maps(model.backbone.fgclip2, [x[0, :, :48, :80], x[1]], mode)
        dense0 = F.pad(maps[0], (0, 1, 0, 1))
        for b, dense in enumerate((dense0, maps[1])):
            expected = F.interpolate(100.0 * dense_cosine(dense[None], model.class_embeds), size=(64, 96),
                                     mode="bilinear", align_corners=False)[0]
            assert torch.allclose(logits[b], expected, atol=1e-4)
        official = model.backbone(x, [(40, 70), (64, 96)]).dense
        assert not torch.allclose(maps[1], official[1], atol=1e-3)
        out = model.predict(x[1:], [sample(64, 96)])[0]
    probs = logits[1].softmax(0)
    assert torch.equal(out.pred_sem_seg.sem_seg[0], torch.where(probs.amax(0) < 0.5, 0, probs.argmax(0)))


def test_bad_dense_modes_are_clear_errors(tiny_dir, world):  # noqa: F811
    with pytest.raises(ValueError, match=r"unknown dense_mode 'clear_clip'; choose one of"):
        build(tiny_dir, world, TRAINING_FREE, **{"model.dense_mode": "clear_clip"})
    with pytest.raises(ValueError, match="is for training-free segmentation"):
        build(tiny_dir, world, COST_DECODER, **{"model.dense_mode": "sclip"})
    assert build(tiny_dir, world, COST_DECODER, **{"model.dense_mode": "head"}).dense_surgery is None


def test_the_10k_configs(world):  # noqa: F811
    """prompts config: the 10k backbone and caption-form templates; fg14: background left out of the
    vocabulary and ignored in the labels (0 -> 255, kind k -> k - 1), no background threshold."""
    import numpy as np
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from PIL import Image

    from det_helpers import ROOT, in_mmdet_scope

    prompts = Config.fromfile(str(ROOT / "configs/ovseg/training-free_fgclip2-tiny-10k_synthetic.py"))
    assert prompts.model.backbone.checkpoint == "work_dirs/tiny-10k-stage2" and prompts.model.decoder is None
    assert len(prompts.model.text_classifier.templates_en) == 144
    fg14 = Config.fromfile(str(ROOT / "configs/ovseg/training-free_fgclip2-tiny-10k_synthetic-14.py"))
    classes = fg14.test_dataloader.dataset.metainfo["classes"]
    assert classes == TRAINING_FREE_CLASSES[1:] and fg14.model.background_threshold is None
    seg = next((world / "seg" / "val").glob("*.png"))
    raw = np.array(Image.open(seg))
    with in_mmdet_scope():
        load = Compose([t for t in fg14.test_dataloader.dataset.pipeline if t["type"] == "LoadAnnotations"])
        out = load(dict(seg_map_path=str(seg), seg_fields=[]))["gt_seg_map"]
    assert np.array_equal(out, np.where(raw == 0, 255, raw.astype(np.int64) - 1).astype(out.dtype))
