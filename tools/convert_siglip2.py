#!/usr/bin/env python
"""Turns a SigLIP 2 NaFlex checkpoint (Hugging Face ``Siglip2Model`` layout) into an FG-CLIP 2
initialisation, as the official ``--from_siglip2`` does (TRN:L557-564, docs/official_code.md):

    python tools/convert_siglip2.py SIGLIP2_DIR OUT_DIR [--keep-len 20]

Text positions are stretched 64 -> 196 for long captions, the text head is copied into the box and
long heads, the MAP head into ``dense_feature_head``. Tokenizer / processor files are copied along.
"""
import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.model import FGCLIP2  # noqa: E402
from fgclip2_det.model.checkpoint import CheckpointError, siglip2_source_config  # noqa: E402
from fgclip2_det.model.tokenizer import TOKENIZER_FILES  # noqa: E402

SIDE_FILES = TOKENIZER_FILES + ("preprocessor_config.json",)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("siglip2_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--keep-len", type=int, default=20)
    args = parser.parse_args(argv)
    src, out = Path(args.siglip2_dir), Path(args.out_dir)
    if siglip2_source_config(src) is None:
        raise CheckpointError(f"{src}: not a SigLIP 2 folder (its config.json needs model_type 'siglip2')")
    FGCLIP2.from_pretrained(src, keep_len=args.keep_len).save_pretrained(out)  # one conversion path
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    print(f"converted {src} -> {out}")


if __name__ == "__main__":
    main()
