"""Runner checkpoint -> official FG-CLIP 2 layout (config.json + model.safetensors + tokenizer files)."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..model import FGCLIP2, FGCLIP2Config
from ..model.checkpoint import CheckpointError, check_state_dict
from ..model.tokenizer import TOKENIZER_FILES
from .model import decode_extra_state


def export_runner_checkpoint(checkpoint: str | Path, out_dir: str | Path,
                             tokenizer_dir: str | Path | None = None, copy_region_heads: bool = False) -> Path:
    """Writes the ``fgclip.*`` weights of an :class:`FGCLIP2Pretrainer` runner checkpoint in the
    official layout; the training-only temperatures and the CMR threshold stay behind. Tokenizer
    files come from ``tokenizer_dir``, else from the checkpoint the run started from; without
    them no config can load the export, so finding none is an error raised before anything is written.

    ``copy_region_heads``: for a stage-1 model, whose dense and box heads were never trained, copy
    the trained MAP head into ``dense_feature_head`` and the text head into ``boxtext_head`` (what
    the official SigLIP 2 conversion does, and what stage 2 starts from)."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"runner checkpoint not found: {checkpoint}")
    ckpt = torch.load(checkpoint, map_location="cpu")  # weights-only; fgclip2_det's allow-list applies
    state = ckpt.get("state_dict", ckpt)
    extra = state.get("_extra_state")
    extra = decode_extra_state(extra) if isinstance(extra, torch.Tensor) else None
    if not extra or "fgclip2_config" not in extra:
        raise CheckpointError(f"{checkpoint}: not an FGCLIP2Pretrainer checkpoint (no FG-CLIP 2 config in "
                              "its '_extra_state')")
    weights = {k[len("fgclip."):]: v for k, v in state.items() if k.startswith("fgclip.")}
    model = FGCLIP2(FGCLIP2Config.from_dict(extra["fgclip2_config"]))
    check_state_dict(model, weights, source=str(checkpoint))
    model.load_state_dict(weights)
    if copy_region_heads:
        model.dense_feature_head.load_state_dict(model.vision_model.head.state_dict())
        model.boxtext_head.load_state_dict(model.text_model.head.state_dict())
    source = Path(tokenizer_dir) if tokenizer_dir else (Path(extra["source_checkpoint"])
                                                        if extra.get("source_checkpoint") else None)
    found = [n for n in TOKENIZER_FILES if source and (source / n).is_file()]
    if not found:
        where = (f"--tokenizer {source}" if tokenizer_dir else
                 f"{source}, the folder the run started from (moved or deleted?)" if source else
                 "the checkpoint (it names no folder the run started from)")
        raise FileNotFoundError(f"{checkpoint}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}) in "
                                f"{where}; pass --tokenizer DIR with the run's tokenizer")
    model.save_pretrained(out_dir)
    for name in found:
        shutil.copy2(source / name, out_dir / name)
    return out_dir
