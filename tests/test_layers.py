"""Import layers of the package, checked on the source (no import runs): a lower layer never
imports a higher one. Today it covers the layers that are already clean; det/, seg/, evaluation/,
apps/ and integrations/ are still entangled (issue 20) and get their rows when they are not."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fgclip2_det"
# subpackage -> the subpackages it may import (besides itself)
ALLOWED = {
    "utils": set(),
    "model": {"utils"},
    "datasets": {"utils", "model"},
    "pretrain": {"utils", "model", "datasets"},
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
