#!/usr/bin/env bash
# Creates .venv/ in the repo root with the verified stack (README "Installation") and installs the
# package in editable mode. Idempotent: a step whose packages are present is a no-op for pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/pip --disable-pip-version-check"
$PIP install -q torch==2.13.0
$PIP install -q numpy "setuptools<70" wheel ninja psutil
# mmcv 2.1.0 has no wheel for torch 2.13: it compiles its ops against the installed torch
# (~15 min cold on 2 cores; pip caches the wheel afterwards).
if ! .venv/bin/python -c "import mmcv, mmcv.ops" 2>/dev/null; then
  echo "[setup_env] building mmcv 2.1.0 with ops (first time only, ~15 min)"
  MAX_JOBS=${MAX_JOBS:-2} $PIP install -q --no-build-isolation mmcv==2.1.0
fi
$PIP install -q --no-build-isolation -e ".[dev]"
# Headless Chromium (Debian's package, no browser download) and a CJK font for the web demo's browser
# test; without root or apt-get that test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "[setup_env] installing Debian chromium + fonts-wqy-zenhei (web demo browser test)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null) \
    || echo "[setup_env] warning: chromium could not be installed; the browser test will be skipped"
fi
touch .venv/.installed
echo "[setup_env] ready: $(.venv/bin/python -c 'import torch, mmcv, mmdet, mmengine; print("torch", torch.__version__, "mmcv", mmcv.__version__, "mmdet", mmdet.__version__, "mmengine", mmengine.__version__)')"
