"""FG-OVD's file names and difficulties (official data/fgovd/*.jsonl read by
fgclip2/eval/fgovd_bbox_roi.py), shared by the dataset and the metric."""

#: official file name -> test_type (fgovd_bbox_roi.py)
FGOVD_FILES = {"h_attributes_llava.jsonl": "1_attributes", "m_attributes_llava.jsonl": "2_attributes",
               "e_attributes_llava.jsonl": "3_attributes", "shuffle_negatives_llava.jsonl": "shuffle_negatives"}
#: test_type -> the paper's difficulty name
FGOVD_DIFFICULTY = {"1_attributes": "hard", "2_attributes": "medium", "3_attributes": "easy",
                    "shuffle_negatives": "trivial"}
