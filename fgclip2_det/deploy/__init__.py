"""Deployment: FG-CLIP 2 and the open-vocabulary detector as ONNX graphs, run with onnxruntime
(docs/export.md). Importing this package needs torch only; exporting needs onnx + onnxscript,
running needs onnxruntime, the detector graphs need MMDetection."""
from .onnx_export import GRAPH_FILES, GRAPHS, OPSET, export_fgclip2_onnx
from .runtime import OnnxFGCLIP2, pack_images, patchify_np

__all__ = ["GRAPHS", "GRAPH_FILES", "OPSET", "export_fgclip2_onnx", "OnnxFGCLIP2", "pack_images", "patchify_np"]
