"""fgclip2_det: open-vocabulary detection and segmentation with FG-CLIP 2 on OpenMMLab."""
from setuptools import find_packages, setup

# The verified stack (see README "Installation"): mmdet 3.3.0 refuses mmcv >= 2.2, mmcv 2.1.0 is
# source-only and must be built against the installed torch (tools/setup_env.sh does it in order).
INSTALL_REQUIRES = [
    "torch==2.13.0",
    "mmcv==2.1.0",
    "mmengine==0.10.7",
    "mmdet==3.3.0",
    "numpy",
    "pycocotools",
    "lvis",
    "transformers",
    "safetensors",
    "tokenizers",
    "pillow",
    "tqdm",
]
WEB = ["gradio>=6,<7"]
# ONNX export (tools/export_onnx.py, docs/export.md): the versions checked with torch 2.13.0's dynamo
# exporter (onnxscript is what torch.onnx.export(dynamo=True) translates with).
EXPORT = ["onnx==1.23.2", "onnxruntime==1.32.0", "onnxscript==0.7.2"]

setup(
    name="fgclip2_det",
    version="0.1.0",
    description="FG-CLIP 2 in plain PyTorch + open-vocabulary detection/segmentation on MMDetection",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fgclip2_det", "fgclip2_det.*"]),
    package_data={"fgclip2_det": ["model/presets/*.json", "data/*.txt"]},
    install_requires=INSTALL_REQUIRES,
    # pylopdf-fonts-zh-cn: Noto Sans SC (OFL, 17 MB, no dependencies) for the demo's Chinese labels.
    # web: the Gradio app of tools/serve_demo.py; playwright (driver only, with Debian's chromium)
    # runs its browser test.
    # export: ONNX export and onnxruntime (tools/export_onnx.py).
    extras_require={"web": WEB, "export": EXPORT,
                    "dev": ["pytest", "pytest-timeout", "imgviz", "scikit-image", "pylopdf-fonts-zh-cn==0.1.1",
                            *WEB, "playwright", *EXPORT]},
)
