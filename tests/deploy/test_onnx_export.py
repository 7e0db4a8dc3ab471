"""ONNX export of FG-CLIP 2 (fgclip2_det/deploy, tools/export_onnx.py): onnxruntime on CPU equals the
PyTorch model within 1e-4 on the tiny checkpoint, one exported vision graph serves grid sizes it was
not exported with, every text kind, region embeddings, and bad input fails with a clear message."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from fgclip2_det.deploy.graphs import VisionGraph, antialias_weights  # noqa: E402
from fgclip2_det.deploy.onnx_export import GRAPH_FILES, OPSET, export_fgclip2_onnx, export_text  # noqa: E402
from fgclip2_det.deploy.runtime import OnnxFGCLIP2, pack_images  # noqa: E402

from tool_helpers import ROOT  # noqa: E402

TOL = 1e-4
# None of these grids is an export example (3x5 and 4x2); they span shrinking, growing, 16x16
# (no resize), width 1 and one side of 1.
SIZES = [(32, 48), (64, 64), (256, 256), (512, 512), (16, 160), (48, 16), (400, 96), (16, 16)]


@pytest.fixture(scope="module")
def onnx_dir(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    lines = []
    written = export_fgclip2_onnx(tiny_dir, out, log=lines.append)
    assert set(written) == set(GRAPH_FILES) and all(p.is_file() for p in written.values())
    assert len(lines) == len(GRAPH_FILES) and all(line.startswith("[export_onnx]") for line in lines)
    return out


@pytest.fixture(scope="module")
def runtime(onnx_dir):
    return OnnxFGCLIP2(onnx_dir, threads=2)


def _np(images):
    return [img.numpy() for img in images]


def test_graphs_declare_the_opset_and_dynamic_inputs(onnx_dir):
    import onnx

    model = onnx.load(str(onnx_dir / "vision.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert isinstance(dims["patches"][0], str) and isinstance(dims["grids"][0], str)  # symbolic T and B
    assert dims["grids"][1] == 2


@pytest.mark.parametrize("size", [(3, 7), (16, 16), (32, 32), (1, 40), (2, 2), (5, 3)])
def test_antialias_weights_equal_torch_interpolate(size):
    """The in-graph resize weights reproduce F.interpolate(bilinear, antialias) on 16 x 16 inputs
    (shrinking and growing; width 1 is the kernel quirk below)."""
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    h, w = size
    ref = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    wr = antialias_weights(torch.arange(h), torch.full((h,), h), 16)
    wc = antialias_weights(torch.arange(w), torch.full((w,), w), 16)
    assert torch.allclose(torch.einsum("ia,cab,jb->cij", wr, x[0], wc), ref, atol=1e-6)


def test_torch_width_one_resize_quirk_is_pinned():
    """torch 2.13's antialiased bilinear CPU kernel gives every row of a width-1 output the value of
    row 0 (a row ramp stays flat). VisionGraph reproduces it so that ONNX equals the PyTorch (and
    official) model; if torch fixes the kernel this test fails: drop the quirk in graphs.py."""
    ramp = torch.arange(16.0).reshape(1, 1, 16, 1).expand(1, 1, 16, 16)
    out = F.interpolate(ramp, size=(3, 1), mode="bilinear", align_corners=False, antialias=True).flatten()
    assert torch.allclose(out, out[:1].expand(3))  # the correct resize is 2.68, 7.5, 12.32


def test_vision_graph_in_pytorch_equals_the_model_on_a_pack(tiny_model, make_images):
    images = make_images(SIZES, seed=3)
    patches, grids = pack_images(_np(images))
    with torch.no_grad():
        _, embeds = VisionGraph(tiny_model)(torch.from_numpy(patches), torch.from_numpy(grids))
        ref = tiny_model.encode_image(images)
    assert (embeds - ref).abs().max() <= TOL


def test_onnx_image_embeddings_every_size_one_session(runtime, tiny_model, make_images):
    """One vision session, images of sizes not seen at export: one image per call, and a pack."""
    images = make_images(SIZES, seed=1)
    with torch.no_grad():
        ref = tiny_model.encode_image(images).numpy()
    per_image = runtime.encode_image(_np(images))
    assert np.abs(per_image - ref).max() <= TOL
    packed = runtime.encode_image(_np(images[:5]), per_image=False)
    assert np.abs(packed - ref[:5]).max() <= TOL
    assert len(runtime._sessions) == 1  # one session served every grid


def test_onnx_dense_maps(runtime, tiny_model, make_images):
    images = make_images(SIZES[:5], seed=2)
    with torch.no_grad():
        ref = tiny_model.encode_dense(images)
    out = runtime.encode_dense(_np(images))
    for r, o in zip(ref, out):
        assert o.shape == tuple(r.shape)
        assert np.abs(o - r.numpy()).max() <= TOL


@pytest.mark.parametrize("kind", ["short", "box", "long"])
def test_onnx_text_every_kind(runtime, tiny_model, kind):
    length = tiny_model.text_model.expected_length(kind)
    vocab = tiny_model.config.text.vocab_size
    gen = torch.Generator().manual_seed(4)
    for batch in (1, 5):  # batch sizes other than the export example's 3
        ids = torch.randint(0, vocab, (batch, length), generator=gen)
        mask = torch.ones_like(ids)
        mask[0, length // 3:] = 0
        with torch.no_grad():
            plain, masked = tiny_model.encode_text(ids, kind), tiny_model.encode_text(ids, kind, mask)
        assert np.abs(runtime.encode_text(ids.numpy(), kind) - plain.numpy()).max() <= TOL
        assert np.abs(runtime.encode_text(ids.numpy(), kind, mask.numpy()) - masked.numpy()).max() <= TOL


def test_onnx_region_embeddings(runtime, tiny_model, make_images):
    """Boxes inside, across and outside the image, sub-patch and zero-width ones, against the
    PyTorch model's RoIAlign (mmcv)."""
    pytest.importorskip("mmcv.ops")
    images = make_images([(64, 96), (128, 48), (512, 512)], seed=5)
    boxes = [torch.tensor([[0.0, 0.0, 96.0, 64.0], [10.5, 3.2, 40.7, 60.1], [-30.0, -20.0, 50.0, 30.0],
                           [80.0, 50.0, 200.0, 90.0], [20.0, 20.0, 20.0, 40.0], [33.0, 33.0, 37.0, 35.0]]),
             torch.tensor([[5.0, 5.0, 47.0, 120.0], [-100.0, -100.0, 300.0, 400.0], [60.0, 140.0, 70.0, 150.0]]),
             torch.tensor([[100.0, 200.0, 300.0, 260.0]])]
    with torch.no_grad():
        ref = tiny_model.encode_regions(images, boxes)
    out = runtime.encode_regions(_np(images), [b.numpy() for b in boxes])
    for r, o in zip(ref, out):
        assert o.shape == tuple(r.shape)
        assert np.abs(o - r.numpy()).max() <= TOL
    assert np.abs(out[0][4]).max() == 0  # zero width -> zero vector, as the official RoIAlign


def test_bad_input_is_named(tmp_path, tiny_dir, tiny_model, runtime):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        export_fgclip2_onnx(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        export_fgclip2_onnx(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown graph"):
        export_fgclip2_onnx(tiny_dir, tmp_path / "out", graphs=["text_medium"])
    with pytest.raises(ValueError, match="unknown text kind 'medium'"):
        export_text(tiny_model, "medium", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="unknown text kind"):
        runtime.encode_text(np.zeros((1, 64), np.int64), "medium")
    with pytest.raises(ValueError, match="multiples of 16"):
        runtime.encode_image([np.zeros((3, 20, 32), np.float32)])
    with pytest.raises(FileNotFoundError, match="export it with"):
        OnnxFGCLIP2(tmp_path).session("vision")


@pytest.mark.slow
def test_cli_exports_with_one_line_per_graph(tiny_dir, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "export_onnx.py"), str(tiny_dir), str(tmp_path),
                           "--graphs", "text_box", "region"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    progress = [line for line in proc.stdout.splitlines() if line.startswith("[export_onnx] (")]
    assert len(progress) == 2 and "text_box" in progress[0] and "region" in progress[1]
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["region.onnx", "text_box.onnx"]
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "export_onnx.py"), str(tmp_path / "nope"),
                          str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "checkpoint directory not found" in bad.stderr


@pytest.mark.slow
def test_benchmark_reports_onnxruntime_against_pytorch(tmp_path):
    """`tools/benchmark.py onnx` on the tiny preset: both runtimes timed in one run, ratio and
    output difference reported (the figures in docs/export.md come from the base preset)."""
    import json

    from tool_helpers import load_tool

    bench = load_tool("benchmark")
    assert bench.main(["onnx", "--onnx-preset", "tiny", "--repeats", "1", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())["benchmarks"]["onnx"]
    assert set(res["cases"]) == {"uniform_2x512", "mixed_naflex_4"}
    for case in res["cases"].values():
        assert case["ort_img_per_s"] > 0 and case["torch_img_per_s"] > 0
        assert case["speedup"] == pytest.approx(case["reference_s"] / case["ours_s"])
        assert case["max_abs_diff"] <= TOL
    assert "ratio (ort / torch)" in (tmp_path / "results.md").read_text()
