"""SimplePyramid: ViTDet-style strides 4-64 from one stride-16 map; LayerNorm2d values."""
from __future__ import annotations

import pytest
import torch
from mmdet.registry import MODELS

from fgclip2_det.det.neck import LayerNorm2d
from det_helpers import mmdet_scope  # noqa: F401  (autouse fixture)


@pytest.mark.parametrize("norm_cfg", [dict(type="LN2d"), dict(type="GN", num_groups=4), None])
def test_pyramid_shapes(norm_cfg):
    neck = MODELS.build(dict(type="SimplePyramid", in_channels=64, out_channels=32, norm_cfg=norm_cfg))
    x = torch.randn(2, 64, 10, 12)
    outs = neck((torch.randn(2, 64, 10, 12), x))  # a backbone tuple: the last map is used
    assert [tuple(o.shape) for o in outs] == [(2, 32, 40, 48), (2, 32, 20, 24), (2, 32, 10, 12),
                                               (2, 32, 5, 6), (2, 32, 3, 3)]
    torch.testing.assert_close(neck(x)[2], outs[2])  # a single tensor works too
    torch.testing.assert_close(outs[4], outs[3][:, :, ::2, ::2])  # stride 64 = every other stride-32 cell


def test_pyramid_levels_subset_and_errors():
    neck = MODELS.build(dict(type="SimplePyramid", in_channels=64, out_channels=8, scale_factors=(1.0, 0.5),
                             extra_pool=False, in_index=0))
    outs = neck((torch.randn(1, 64, 8, 8), torch.randn(1, 64, 2, 2)))
    assert [o.shape[-1] for o in outs] == [8, 4]
    with pytest.raises(ValueError, match="scale_factors"):
        MODELS.build(dict(type="SimplePyramid", in_channels=64, scale_factors=(3.0,)))


def test_layernorm2d_is_channel_layernorm():
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(6.0)), norm.bias.fill_(0.5)
    x = torch.randn(2, 6, 3, 4)
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    want = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight[:, None, None] + 0.5
    torch.testing.assert_close(norm(x), want, atol=1e-5, rtol=1e-5)
