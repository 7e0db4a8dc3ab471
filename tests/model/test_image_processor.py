"""FGCLIP2ImageProcessor: NaFlex sizes and pixels match transformers' Siglip2ImageProcessorPil."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from fgclip2_det.model.image_processor import (
    FGCLIP2ImageProcessor,
    dynamic_budget,
    naflex_size,
)

BUDGETS = (128, 256, 576, 784, 1024)


def _noise(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _gradient(h, w):
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 / max(w - 1, 1)).astype(np.uint8)
    g = (y * 255 / max(h - 1, 1)).astype(np.uint8)
    b = ((x + y) * 255 / max(h + w - 2, 1)).astype(np.uint8)
    return np.stack([r, g, b], axis=-1)


def _unpatchify(patches, grid, patch_size=16):
    """(N, p*p*C) row-major patches, each flattened as (ph, pw, C) -> (C, h*p, w*p)."""
    h, w = grid
    x = patches[: h * w].reshape(h, w, patch_size, patch_size, 3)
    return x.permute(4, 0, 2, 1, 3).reshape(3, h * patch_size, w * patch_size)


# ----------------------------------------------------------------------------- sizes


def test_naflex_size_matches_transformers_on_random_sizes():
    from transformers.models.siglip2.image_processing_pil_siglip2 import get_image_size_for_max_num_patches

    rng = random.Random(0)
    sizes = [(rng.randint(1, 2000), rng.randint(1, 2000)) for _ in range(300)]
    sizes += [(1, 1), (1, 2000), (2000, 1), (16, 16), (15, 17), (480, 640)]
    for h, w in sizes:
        for budget in BUDGETS + (1, 7, 16384):
            expected = get_image_size_for_max_num_patches(h, w, patch_size=16, max_num_patches=budget)
            assert naflex_size(h, w, budget) == tuple(expected), (h, w, budget)


@pytest.mark.parametrize(
    "wh, budget, out_wh",
    [((640, 480), 1024, (576, 432)), ((500, 375), 784, (512, 384)), ((224, 224), 256, (256, 256)),
     ((1024, 768), 1024, (576, 432))],
)
def test_spec_examples(wh, budget, out_wh):
    w, h = wh
    assert dynamic_budget(h, w) == budget
    assert naflex_size(h, w, budget) == (out_wh[1], out_wh[0])


def test_spec_example_grid():
    out = FGCLIP2ImageProcessor()(Image.new("RGB", (640, 480)))
    assert out.sizes == [(432, 576)]
    assert out.grid_sizes == [(27, 36)]
    assert out.budgets == [1024]


@pytest.mark.parametrize(
    "n, budget", [(128, 128), (129, 256), (256, 256), (257, 576), (576, 576), (577, 784), (784, 784), (785, 1024)]
)
def test_dynamic_bucket_boundaries(n, budget):
    # a 16-pixel-high strip of n patches, and the same patch count with leftover pixels
    assert dynamic_budget(16, 16 * n) == budget
    assert dynamic_budget(16 + 15, 16 * n + 15) == budget


def test_dynamic_budget_is_per_image():
    proc = FGCLIP2ImageProcessor()
    small, large = Image.new("RGB", (100, 100)), Image.new("RGB", (1000, 1000))
    out = proc([small, large])
    assert out.budgets == [128, 1024]
    assert torch.equal(out.images[0], proc(small).images[0])


def test_fixed_budget_and_validation():
    out = FGCLIP2ImageProcessor(max_num_patches=256)(Image.new("RGB", (1000, 500)))
    h, w = out.grid_sizes[0]
    assert out.budgets == [256] and h * w <= 256 and (h, w) == (11, 22)
    for bad in (0, -3, 2.5, "256", True):
        with pytest.raises(ValueError):
            FGCLIP2ImageProcessor(max_num_patches=bad)


# ----------------------------------------------------------------------------- pixels


@pytest.mark.parametrize(
    "kind, h, w, budget",
    [("noise", 480, 640, 1024), ("noise", 375, 500, 784), ("gradient", 224, 224, 256),
     ("gradient", 50, 300, 128), ("noise", 997, 123, 576), ("gradient", 31, 17, 1024)],
)
def test_pixels_match_transformers(kind, h, w, budget):
    from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

    arr = _noise(h, w) if kind == "noise" else _gradient(h, w)
    img = Image.fromarray(arr)
    ref = Siglip2ImageProcessorPil()(images=[img], max_num_patches=budget, return_tensors="pt")
    grid = tuple(int(v) for v in ref["spatial_shapes"][0])
    expected = _unpatchify(ref["pixel_values"][0].float(), grid)

    out = FGCLIP2ImageProcessor(max_num_patches=budget)(img)
    assert out.grid_sizes[0] == grid
    assert out.images[0].shape == expected.shape
    assert out.images[0].dtype == torch.float32
    assert (out.images[0] - expected).abs().max().item() <= 1e-6
    # the numpy array path gives the same tensor as the PIL path
    assert torch.equal(FGCLIP2ImageProcessor(max_num_patches=budget)(arr).images[0], out.images[0])


def test_value_range_and_extremes():
    arr = np.zeros((64, 64, 3), dtype=np.uint8)
    arr[:, 32:] = 255
    t = FGCLIP2ImageProcessor(max_num_patches=16)(arr).images[0]
    assert t.min().item() == -1.0 and t.max().item() == 1.0
    noise = FGCLIP2ImageProcessor()(_noise(300, 200)).images[0]
    assert noise.min() >= -1.0 and noise.max() <= 1.0


def _expected(value):
    return value / 255.0 * 2.0 - 1.0


def test_grayscale_pil_constant():
    t = FGCLIP2ImageProcessor()(Image.new("L", (40, 30), 128)).images[0]
    assert t.shape[0] == 3
    assert torch.allclose(t, torch.full_like(t, _expected(128)), atol=1e-6)


def test_rgba_drops_alpha_and_la():
    rgba = Image.new("RGBA", (32, 32), (200, 100, 50, 0))  # fully transparent: colour kept, not composited
    t = FGCLIP2ImageProcessor()(rgba).images[0]
    for c, v in enumerate((200, 100, 50)):
        assert torch.allclose(t[c], torch.full_like(t[c], _expected(v)), atol=1e-6)
    la = Image.new("LA", (32, 32), (77, 10))
    t_la = FGCLIP2ImageProcessor()(la).images[0]
    assert t_la.shape[0] == 3 and torch.allclose(t_la, torch.full_like(t_la, _expected(77)), atol=1e-6)
    arr4 = np.zeros((20, 20, 4), dtype=np.uint8)
    arr4[..., 1] = 255
    t4 = FGCLIP2ImageProcessor()(arr4).images[0]
    assert t4[1].min().item() == 1.0 and t4[0].max().item() == -1.0 and t4[2].max().item() == -1.0


def test_palette_image():
    p = Image.new("P", (20, 20), 0)
    p.putpalette([10, 20, 30] + [0] * 765)
    t = FGCLIP2ImageProcessor()(p).images[0]
    assert torch.allclose(t[:, 0, 0], torch.tensor([_expected(v) for v in (10, 20, 30)]), atol=1e-6)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16bit_pil_scaled_by_257(mode):
    arr16 = np.full((24, 24), 257 * 100, dtype=np.uint16)
    img = Image.fromarray(arr16).convert(mode) if mode == "I" else Image.fromarray(arr16)
    assert img.mode == mode
    t = FGCLIP2ImageProcessor()(img).images[0]
    assert t.shape[0] == 3
    assert torch.allclose(t, torch.full_like(t, _expected(100)), atol=1e-6)


def test_numpy_dtypes():
    proc = FGCLIP2ImageProcessor(max_num_patches=4)
    u16 = np.full((16, 16, 3), 65535, dtype=np.uint16)
    assert proc(u16).images[0].min().item() == 1.0
    f = np.full((16, 16), 0.5, dtype=np.float32)
    assert torch.allclose(proc(f).images[0], torch.full((3, 32, 32), _expected(128)), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        proc(np.full((16, 16, 3), 200.0))
    with pytest.raises(ValueError, match="NaN"):
        proc(np.full((16, 16, 3), np.nan))
    with pytest.raises(ValueError, match="shape"):
        proc(np.zeros((16, 16, 2), dtype=np.uint8))
    chw = torch.zeros(3, 16, 16, dtype=torch.uint8)
    chw[0] = 255
    t = proc(chw).images[0]
    assert t[0].min().item() == 1.0 and t[1].max().item() == -1.0


def test_zero_size_and_bad_type():
    proc = FGCLIP2ImageProcessor()
    with pytest.raises(ValueError, match="zero size"):
        proc(np.zeros((0, 10, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="zero size"):
        naflex_size(10, 0, 256)
    with pytest.raises(TypeError, match="image 1"):
        proc([np.zeros((8, 8, 3), dtype=np.uint8), 42])


# ----------------------------------------------------------------------------- files


def test_file_path_with_exif_orientation(tmp_path):
    arr = _gradient(30, 60)  # H=30, W=60
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=95)
    out = FGCLIP2ImageProcessor()(str(path))
    assert out.original_sizes == [(60, 30)]  # transposed
    out_png = FGCLIP2ImageProcessor()(_save_png(tmp_path, arr))
    assert out_png.original_sizes == [(30, 60)]
    assert torch.equal(out_png.images[0], FGCLIP2ImageProcessor()(arr).images[0])


def _save_png(tmp_path, arr):
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    return path


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg at all" * 10)
    with pytest.raises(ValueError) as err:
        FGCLIP2ImageProcessor()(bad)
    assert str(bad) in str(err.value)
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError) as err:
        FGCLIP2ImageProcessor()([missing])
    assert str(missing) in str(err.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "trunc.png"
    Image.fromarray(_noise(64, 64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.png"):
        FGCLIP2ImageProcessor()(path)


# ----------------------------------------------------------------------------- boxes


def test_box_mapping_and_back():
    proc = FGCLIP2ImageProcessor()
    img = Image.new("RGB", (640, 480))  # -> 576 x 432: factor 0.9 on both axes
    boxes = [[0, 0, 640, 480], [10, 20, 110, 220], [-50, -10, 700, 500]]
    out = proc(img, boxes=boxes)
    expected = torch.tensor(boxes, dtype=torch.float32) * 0.9
    assert out.boxes[0].dtype == torch.float32 and out.boxes[0].shape == (3, 4)
    assert torch.allclose(out.boxes[0], expected, atol=1e-4)
    assert out.boxes[0][2, 0].item() < 0  # not clipped
    assert torch.allclose(out.map_boxes_back(out.boxes[0], 0), torch.tensor(boxes, dtype=torch.float32), atol=1e-3)


def test_box_mapping_anisotropic():
    out = FGCLIP2ImageProcessor(max_num_patches=1024)(Image.new("RGB", (100, 37)), boxes=np.array([[10, 10, 50, 37]]))
    (hh, ww), (h, w) = out.sizes[0], out.original_sizes[0]
    assert (h, w) == (37, 100)
    expected = torch.tensor([[10 * ww / w, 10 * hh / h, 50 * ww / w, 37 * hh / h]])
    assert torch.allclose(out.boxes[0], expected, atol=1e-4)
    assert out.boxes[0][0, 3].item() == pytest.approx(hh)


def test_empty_boxes_and_list_of_images():
    proc = FGCLIP2ImageProcessor()
    imgs = [Image.new("RGB", (64, 64)), Image.new("RGB", (300, 200))]
    out = proc(imgs, boxes=[np.zeros((0, 4)), []])
    assert [b.shape for b in out.boxes] == [(0, 4), (0, 4)]
    assert proc(imgs).boxes is None
    with pytest.raises(ValueError, match="2 images"):
        proc(imgs, boxes=[[]])


def test_bad_boxes_name_indices():
    proc = FGCLIP2ImageProcessor()
    imgs = [Image.new("RGB", (64, 64))] * 2
    with pytest.raises(ValueError, match=r"image 1: box 2 is not finite"):
        proc(imgs, boxes=[[[0, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 2, 2], [0, float("nan"), 3, 3]]])
    with pytest.raises(ValueError, match=r"image 0: box 1 has x2 < x1"):
        proc(imgs, boxes=[[[0, 0, 1, 1], [5, 0, 4, 1]], []])
    with pytest.raises(ValueError, match=r"image 0: box 0 has .*y2 < y1"):
        proc(imgs, boxes=[[[0, 5, 1, 4]], []])
    with pytest.raises(ValueError, match=r"image 0: box 0 is not finite"):
        proc(imgs, boxes=[[[0, 0, float("inf"), 1]], []])
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        proc(imgs, boxes=[[[0, 0, 1]], []])
