"""FG-OVD benchmark files (the official data/fgovd/*.jsonl, read by fgclip2/eval/fgovd_bbox_roi.py):
one jsonl per difficulty, one item per (box, captions).

Each line: ``img_path`` (relative to ``data_prefix['img']``, e.g. ``val2017/...jpg``), ``bbox``
[x, y, w, h] in pixels, ``pos_expression`` [one caption], ``neg_expression`` [k captions]. An item
becomes one data sample with one GT box (label 0) and ``box_captions = [[pos, neg_1, ..., neg_k]]``
(one caption list per box: index 0 is the positive). ``test_type`` names the file's difficulty;
by default it is read from the official file name.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path
from mmdet.registry import DATASETS

from ..datasets.fgovd import FGOVD_DIFFICULTY, FGOVD_FILES

@DATASETS.register_module()
class FGOVDDataset(BaseDataset):
    """Reads one FG-OVD jsonl; ``test_type`` None -> from the file name (``FGOVD_FILES``)."""

    METAINFO = dict(classes=("positive caption",))

    def __init__(self, *args, test_type: str | None = None, **kwargs):
        self.test_type = test_type
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        test_type = self.test_type or FGOVD_FILES.get(Path(self.ann_file).name)
        if test_type is None:
            raise ValueError(f"{self.ann_file}: unknown FG-OVD file name; set test_type= (one of "
                             f"{sorted(FGOVD_DIFFICULTY)} or your own name)")
        data_list = []
        with get_local_path(self.ann_file, backend_args=None) as local:
            lines = Path(local).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if line.strip():
                data_list.append(self._parse(line, f"{self.ann_file}:{number}", test_type))
        return data_list

    def _parse(self, line: str, where: str, test_type: str) -> dict:
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err})") from err
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(item).__name__}")
        missing = [k for k in ("img_path", "bbox", "pos_expression", "neg_expression") if k not in item]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        bbox, pos, neg = item["bbox"], item["pos_expression"], item["neg_expression"]
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
                and bbox[2] >= 0 and bbox[3] >= 0):
            raise ValueError(f"{where}: bbox must be [x, y, w, h] with finite numbers and w, h >= 0, got {bbox!r}")
        if not (isinstance(pos, list) and len(pos) == 1 and isinstance(pos[0], str)):
            raise ValueError(f"{where}: pos_expression must be a list with one caption, got {pos!r}")
        if not (isinstance(neg, list) and neg and all(isinstance(t, str) for t in neg)):
            raise ValueError(f"{where}: neg_expression must be a non-empty list of captions, got {neg!r}")
        x, y, w, h = bbox
        img_path = str(Path(self.data_prefix.get("img", "")) / item["img_path"])
        return dict(img_path=img_path, img_id=where, instances=[dict(bbox=[x, y, x + w, y + h], bbox_label=0,
                                                                     ignore_flag=0)],
                    box_captions=[[pos[0], *neg]], test_type=test_type)
