"""Bridges to other frameworks. Each submodule imports its framework lazily, so importing one never
requires that framework (e.g. :mod:`fgclip2_det.integrations.detectron2` without detectron2)."""
