"""The detectron2 bridge: the pure-torch adapter (always), registration through a stand-in
detectron2 package (always), and the real thing when detectron2 is installed."""
from __future__ import annotations

import importlib
import sys
import types
from abc import ABCMeta, abstractmethod
from collections import namedtuple

import pytest
import torch
from torch import nn

from fgclip2_det.det import FGCLIP2ViT
from fgclip2_det.integrations import detectron2 as bridge

NO_D2 = ("detectron2 is not installable from the package registries reachable here (no wheel for this "
         "torch); install it from GitHub to run these")
INSTALL = r"pip install 'git\+https://github\.com/facebookresearch/detectron2\.git'"


def padded_batch(images, size):
    """detectron2's ImageList.from_tensors: zero padding at the bottom/right to a common size."""
    batch = torch.zeros(len(images), 3, *size)
    for b, im in enumerate(images):
        batch[b, :, :im.shape[1], :im.shape[2]] = im
    return batch


@pytest.fixture(scope="module")
def adapter(tiny_dir):
    return bridge.FGCLIP2Detectron2Backbone(str(tiny_dir), out_indices=[0, -1])


# ------------------------------------------------------------------------------ pure torch
def test_outputs_match_output_shape(adapter, make_images):
    x = padded_batch(make_images([(48, 64), (40, 60)]), (48, 64))
    out = adapter(x)
    shapes = adapter.output_shape()
    assert list(out) == list(shapes) == ["block0", "block1", "dense"]
    for name, t in out.items():
        assert shapes[name].channels == 64 and shapes[name].stride == 16
        assert tuple(t.shape) == (2, 64, 48 // 16, 64 // 16)
        assert shapes[name].height is None and shapes[name].width is None  # any input size
    assert adapter.size_divisibility == 16
    assert adapter.padding_constraints == {"size_divisibility": 16, "square_size": 0}
    assert not any(p.requires_grad for p in adapter.parameters())


def test_features_equal_fgclip2vit(adapter, tiny_dir, make_images):
    x = padded_batch(make_images([(48, 64), (32, 48)], seed=2), (48, 64))
    ref = FGCLIP2ViT(str(tiny_dir), out_indices=[0, -1])(x)
    out = adapter(x)
    assert torch.equal(out["dense"], ref.dense)
    assert torch.equal(out["block0"], ref[0]) and torch.equal(out["block1"], ref[1])


def test_image_sizes_give_batch_independent_features(adapter, make_images):
    """An image's maps in a padded batch with its real size == the image alone; the ImageList form
    (tensor + image_sizes) is the same call; without sizes the padding leaks into the features."""
    small, big = make_images([(40, 50), (64, 80)], seed=3)
    batch = padded_batch([small, big], (64, 80))
    alone = adapter(padded_batch([small], (48, 64)), [(40, 50)])
    sizes = [(40, 50), (64, 80)]
    together = adapter(batch, sizes)
    as_image_list = adapter(types.SimpleNamespace(tensor=batch, image_sizes=sizes))
    for name in ("block0", "block1", "dense"):
        # float32 rounding of the packed GEMMs (see the backbone's padding test), not bit for bit
        torch.testing.assert_close(together[name][0, :, :3, :4], alone[name][0], atol=1e-5, rtol=1e-5)
        assert together[name][0, :, 3:].abs().sum() == 0 and together[name][0, :, :, 4:].abs().sum() == 0
        assert torch.equal(as_image_list[name], together[name])
    unaware = adapter(batch)["dense"][0, :, :3, :4]
    assert not torch.allclose(unaware, alone["dense"][0], atol=1e-3)


def test_out_features_and_bgr(tiny_dir, adapter, make_images):
    """A subset of names returns only those (no dense head without "dense"); BGR input is flipped."""
    x = padded_batch(make_images([(32, 48)], seed=4), (32, 48))
    dense_bgr = bridge.FGCLIP2Detectron2Backbone(str(tiny_dir), out_features=["dense"], input_format="BGR")
    out = dense_bgr(x.flip(1))
    assert list(out) == ["dense"] and list(dense_bgr.output_shape()) == ["dense"]
    assert torch.equal(out["dense"], adapter(x)["dense"])
    blocks = bridge.FGCLIP2Detectron2Backbone(str(tiny_dir), out_indices=[1, 1, 0], out_features=["block1"])
    assert blocks.vit.with_dense is False
    out = blocks(x)
    assert list(out) == ["block1"] and torch.equal(out["block1"], adapter(x)["block1"])
    # default taps of a 2-block encoder are (0, 0, 0, 1): repeats merge into one name each
    default = bridge.FGCLIP2Detectron2Backbone(str(tiny_dir))
    assert list(default.output_shape()) == ["block0", "block1", "dense"]


def test_bad_arguments(tiny_dir):
    with pytest.raises(ValueError, match=r"unknown FG-CLIP 2 feature\(s\) \['res5'\]; available: "
                                         r"\['block0', 'block1', 'dense'\]"):
        bridge.FGCLIP2Detectron2Backbone(str(tiny_dir), out_indices=[0, 1], out_features=["dense", "res5"])
    with pytest.raises(ValueError, match="input_format must be 'RGB' or 'BGR'"):
        bridge.FGCLIP2Detectron2Backbone(str(tiny_dir), input_format="L")


@pytest.mark.skipif(bridge.detectron2_available(), reason="detectron2 is installed")
def test_without_detectron2_registration_raises_install_hint(adapter):
    with pytest.raises(ImportError, match=INSTALL):
        bridge.register()
    with pytest.raises(ImportError, match=INSTALL):
        bridge.add_fgclip2_config(types.SimpleNamespace(MODEL=types.SimpleNamespace()))
    with pytest.raises(ImportError, match=INSTALL):
        bridge.FGCLIP2Backbone
    spec = adapter.output_shape()["dense"]
    assert spec == (64, None, None, 16) and spec._fields == ("channels", "height", "width", "stride")


# --------------------------------------------------------------------- stand-in detectron2
def make_fake_detectron2() -> dict[str, types.ModuleType]:
    """A minimal ``detectron2`` that mirrors the detectron2 API surface the bridge uses:
    ``detectron2.layers.ShapeSpec`` (fields channels/height/width/stride, default None),
    ``detectron2.modeling.Backbone`` (abstract nn.Module: ``size_divisibility`` 0,
    ``padding_constraints`` {}, ``output_shape`` from ``_out_feature_*``),
    ``detectron2.modeling.BACKBONE_REGISTRY`` (fvcore ``Registry``: ``register()`` decorator or
    call, refuses duplicates, ``get`` raises KeyError), ``detectron2.modeling.build_backbone`` (as
    detectron2's, with its isinstance assertion) and ``detectron2.config.CfgNode`` (attribute dict,
    as yacs')."""
    ShapeSpec = namedtuple("ShapeSpec", ["channels", "height", "width", "stride"], defaults=(None,) * 4)

    class Backbone(nn.Module, metaclass=ABCMeta):
        def __init__(self):
            super().__init__()

        @abstractmethod
        def forward(self):
            pass

        @property
        def size_divisibility(self) -> int:
            return 0

        @property
        def padding_constraints(self) -> dict:
            return {}

        def output_shape(self):
            return {name: ShapeSpec(channels=self._out_feature_channels[name],
                                    stride=self._out_feature_strides[name]) for name in self._out_features}

    class Registry:
        def __init__(self, name):
            self._name, self._obj_map = name, {}

        def _do_register(self, name, obj):
            assert name not in self._obj_map, f"An object named '{name}' was already registered!"
            self._obj_map[name] = obj

        def register(self, obj=None):
            if obj is None:
                def deco(func_or_class):
                    self._do_register(func_or_class.__name__, func_or_class)
                    return func_or_class
                return deco
            self._do_register(obj.__name__, obj)

        def get(self, name):
            ret = self._obj_map.get(name)
            if ret is None:
                raise KeyError(f"No object named '{name}' found in '{self._name}' registry!")
            return ret

    class CfgNode(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        def __setattr__(self, name, value):
            self[name] = value

    registry = Registry("BACKBONE")

    def build_backbone(cfg, input_shape=None):
        if input_shape is None:
            input_shape = ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
        backbone = registry.get(cfg.MODEL.BACKBONE.NAME)(cfg, input_shape)
        assert isinstance(backbone, Backbone)
        return backbone

    root = types.ModuleType("detectron2")
    root.__path__ = []
    mods = {"detectron2": root}
    for sub, attrs in (("layers", dict(ShapeSpec=ShapeSpec)), ("config", dict(CfgNode=CfgNode)),
                       ("modeling", dict(Backbone=Backbone, BACKBONE_REGISTRY=registry,
                                         build_backbone=build_backbone))):
        mod = types.ModuleType(f"detectron2.{sub}")
        mod.__dict__.update(attrs)
        setattr(root, sub, mod)
        mods[mod.__name__] = mod
    return mods


@pytest.fixture
def fake_d2(monkeypatch):
    """The stand-in in ``sys.modules`` and the bridge re-imported with it (registration on import);
    afterwards both restored."""
    mods = make_fake_detectron2()
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    importlib.reload(bridge)
    yield types.SimpleNamespace(**{name.rpartition(".")[2]: mod for name, mod in mods.items()})
    monkeypatch.undo()
    importlib.reload(bridge)


def d2_cfg(CfgNode, tiny_dir=None, **fgclip2):
    cfg = CfgNode(MODEL=CfgNode(PIXEL_MEAN=[127.5] * 3, PIXEL_STD=[127.5] * 3,
                                BACKBONE=CfgNode(NAME="build_fgclip2_backbone")), INPUT=CfgNode(FORMAT="RGB"))
    bridge.add_fgclip2_config(cfg)
    if tiny_dir is not None:
        cfg.MODEL.FGCLIP2.CHECKPOINT = str(tiny_dir)
    cfg.MODEL.FGCLIP2.update(fgclip2)
    return cfg


def test_fake_detectron2_registers_and_builds(fake_d2, tiny_dir, adapter, make_images):
    registry = fake_d2.modeling.BACKBONE_REGISTRY
    assert registry.get("build_fgclip2_backbone") is bridge.build_fgclip2_backbone
    assert bridge.register() is bridge.build_fgclip2_backbone  # idempotent: no duplicate error

    cfg = d2_cfg(fake_d2.config.CfgNode)
    assert cfg.MODEL.FGCLIP2 == dict(CHECKPOINT="", OUT_INDICES=[], FROZEN=True, TRAINABLE_BLOCKS=0,
                                     OUT_FEATURES=[])
    assert isinstance(cfg.MODEL.FGCLIP2, fake_d2.config.CfgNode)

    cfg.MODEL.FGCLIP2.CHECKPOINT = str(tiny_dir)
    cfg.MODEL.FGCLIP2.OUT_INDICES = [0, -1]
    backbone = registry.get("build_fgclip2_backbone")(cfg, fake_d2.layers.ShapeSpec(channels=3))
    assert isinstance(backbone, fake_d2.modeling.Backbone)
    assert isinstance(backbone, bridge.FGCLIP2Detectron2Backbone) and type(backbone) is bridge.FGCLIP2Backbone
    shapes = backbone.output_shape()
    assert shapes == {n: fake_d2.layers.ShapeSpec(channels=64, stride=16) for n in ("block0", "block1", "dense")}
    assert all(type(s) is fake_d2.layers.ShapeSpec for s in shapes.values())
    assert backbone.padding_constraints == {"size_divisibility": 16, "square_size": 0}
    x = padded_batch(make_images([(48, 64)], seed=5), (48, 64))
    out, ref = backbone(x), adapter(x)
    assert list(out) == list(shapes) and all(torch.equal(out[n], ref[n]) for n in out)

    # detectron2's own entry point, with trainable blocks and one output
    cfg = d2_cfg(fake_d2.config.CfgNode, tiny_dir, TRAINABLE_BLOCKS=1, OUT_FEATURES=["dense"])
    backbone = fake_d2.modeling.build_backbone(cfg)
    assert list(backbone(x)) == ["dense"]
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("vit.fgclip2.vision_model.encoder.layers.1.") for n in trainable)


def test_fake_detectron2_builder_errors(fake_d2, tiny_dir):
    CfgNode, ShapeSpec = fake_d2.config.CfgNode, fake_d2.layers.ShapeSpec
    build = fake_d2.modeling.BACKBONE_REGISTRY.get("build_fgclip2_backbone")
    with pytest.raises(ValueError, match=r"available: \['block0', 'block1', 'dense'\]"):
        build(d2_cfg(CfgNode, tiny_dir, OUT_FEATURES=["res4"]), ShapeSpec(channels=3))
    with pytest.raises(FileNotFoundError, match="MODEL.FGCLIP2.CHECKPOINT"):
        build(d2_cfg(CfgNode), ShapeSpec(channels=3))
    cfg = d2_cfg(CfgNode, tiny_dir)
    cfg.MODEL.PIXEL_MEAN = [103.53, 116.28, 123.675]
    with pytest.raises(ValueError, match=r"MODEL.PIXEL_MEAN must be \[127.5, 127.5, 127.5\]"):
        build(cfg, ShapeSpec(channels=3))
    with pytest.raises(ValueError, match="3-channel"):
        build(d2_cfg(CfgNode, tiny_dir), ShapeSpec(channels=1))


# -------------------------------------------------------------------------- real detectron2
def test_real_detectron2_build(tiny_dir, make_images):
    pytest.importorskip("detectron2", reason=NO_D2)
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import BACKBONE_REGISTRY, Backbone, build_backbone

    cfg = get_cfg()
    bridge.add_fgclip2_config(cfg)
    cfg.MODEL.PIXEL_MEAN = cfg.MODEL.PIXEL_STD = [127.5] * 3
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.BACKBONE.NAME = "build_fgclip2_backbone"
    cfg.MODEL.FGCLIP2.CHECKPOINT = str(tiny_dir)
    cfg.MODEL.FGCLIP2.OUT_INDICES = [0, -1]
    backbone = BACKBONE_REGISTRY.get("build_fgclip2_backbone")(cfg, ShapeSpec(channels=3))
    assert isinstance(backbone, Backbone)
    assert backbone.output_shape() == {n: ShapeSpec(channels=64, stride=16) for n in ("block0", "block1", "dense")}
    x = padded_batch(make_images([(48, 64)], seed=6), (48, 64))
    out = backbone(x)
    assert {n: tuple(t.shape) for n, t in out.items()} == {n: (1, 64, 3, 4) for n in ("block0", "block1", "dense")}
    assert isinstance(build_backbone(cfg), Backbone)
