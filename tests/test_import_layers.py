"""Import layers of the package: a lower layer never imports a higher one (checked on the source, no
import runs), and the plain-PyTorch layers (model, openvocab, the detectron2 bridge) import and run
with mmdet / mmengine / mmcv made unimportable."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fgclip2_det"
# subpackage -> the subpackages it may import (besides itself)
_CORE = {"utils", "model", "datasets", "openvocab"}
ALLOWED = {
    "utils": set(),
    "model": {"utils"},
    "datasets": {"utils", "model"},
    "openvocab": {"utils", "model"},
    "pretrain": {"utils", "model", "datasets"},
    "evaluation": {"utils", "model", "datasets"},
    "det": _CORE,
    "seg": _CORE,
    "integrations": {"utils", "model", "openvocab"},
    "apis": _CORE | {"det", "seg", "evaluation"},
    "apps": _CORE | {"apis"},  # the web demo goes through the public API only
    "deploy": _CORE | {"det"},  # ONNX export: FG-CLIP 2 graphs (model) and the detector's (det)
}


def package_imports(path: Path) -> set[str]:
    """The fgclip2_det subpackages a module imports (absolute or relative imports)."""
    rel = path.relative_to(PACKAGE)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = list(rel.parent.parts)[: len(rel.parent.parts) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
                names = [target[0]] if target else [a.name.split(".")[0] for a in node.names]
            elif node.module and node.module.split(".")[0] == "fgclip2_det":
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            else:
                continue
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("fgclip2_det.") and len(a.name.split(".")) > 1)
    return {n for n in found if (PACKAGE / n).is_dir()}


def test_every_subpackage_has_a_layer():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages <= set(ALLOWED), f"give {sorted(subpackages - set(ALLOWED))} a row in ALLOWED"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_do_not_import_higher_ones(layer):
    bad = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        extra = package_imports(path) - ALLOWED[layer] - {layer}
        if extra:
            bad[str(path.relative_to(PACKAGE))] = sorted(extra)
    assert not bad, f"{layer}/ may import only {sorted(ALLOWED[layer])}: {bad}"


def test_the_check_sees_relative_and_absolute_imports(tmp_path, monkeypatch):
    """The checker itself: both import forms are found, so an empty result means something."""
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    for name in ("model", "det"):
        (tmp_path / name).mkdir()
    module = tmp_path / "model" / "x.py"
    module.write_text("from ..det import backbone\nimport fgclip2_det.det.neck\nfrom . import layers\n")
    assert package_imports(module) == {"det", "model"}


_BLOCK_OPENMMLAB = """
import sys
BLOCKED = ("mmdet", "mmengine", "mmcv")
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, Refuse())
"""


def _run_blocked(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _BLOCK_OPENMMLAB + code + _NOTHING_LOADED],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


_NOTHING_LOADED = """
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("ok")
"""


def test_model_imports_without_openmmlab(tiny_dir):
    """fgclip2_det.model is plain PyTorch: with mmdet, mmengine and mmcv made unimportable it imports,
    loads a checkpoint and encodes, and none of them gets imported."""
    _run_blocked(f"""
import torch
from fgclip2_det.model import FGCLIP2, FGCLIP2Tokenizer
model = FGCLIP2.from_pretrained({str(tiny_dir)!r})
tok = FGCLIP2Tokenizer.from_pretrained({str(tiny_dir)!r})
with torch.no_grad():
    img = model.encode_image([torch.zeros(3, 32, 48)])
    txt = model.encode_text(tok(["a red circle"], kind="box"), "box")
assert img.shape == txt.shape == (1, model.config.embed_dim)
""")


def test_openvocab_core_runs_without_openmmlab(tiny_dir, tmp_path):
    """The open-vocabulary core: class embeddings (cached), the feature backbone, scoring and the
    detectron2 bridge's adapter, all with OpenMMLab unimportable."""
    _run_blocked(f"""
import torch
from fgclip2_det.openvocab import FGCLIP2ViT, TextClassifier, zero_shot_probs
from fgclip2_det.integrations.detectron2 import FGCLIP2Detectron2Backbone
text = TextClassifier({str(tiny_dir)!r}, cache_dir={str(tmp_path)!r}, progress=False)(["circle", "红色的星星"])
vit = FGCLIP2ViT({str(tiny_dir)!r})
with torch.no_grad():
    feats = vit(torch.zeros(1, 3, 64, 96))
regions = feats.dense[0, :, 0, :3].t()  # three locations (pooling boxes needs mmcv's RoIAlign)
probs = zero_shot_probs(regions, text)
assert probs.shape == (3, 2) and torch.allclose(probs.sum(-1), torch.ones(3))
assert set(FGCLIP2Detectron2Backbone({str(tiny_dir)!r})(torch.zeros(1, 3, 32, 32))) >= {{"dense"}}
""")


def test_plain_import_does_not_load_openmmlab_even_where_installed(tiny_dir):
    """Outside an OpenMMLab program ``import fgclip2_det`` stays plain PyTorch (package doc)."""
    code = """
import sys
import fgclip2_det.model, fgclip2_det.openvocab
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mmdet", "mmengine", "mmcv"))
assert not loaded, loaded
import mmengine, fgclip2_det.det
from mmdet.registry import MODELS
assert MODELS.get("FGCLIP2FViT") is not None
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_tests_mirror_the_package_layout():
    """Every subpackage has its folder of tests (tests/<subpackage>/test_*.py)."""
    tests = Path(__file__).resolve().parent
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    missing = sorted(s for s in subpackages if not any((tests / s).glob("test_*.py")))
    assert not missing, f"no tests/<name>/test_*.py for {missing}"
