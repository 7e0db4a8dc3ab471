"""MMDetection parts (registered on import in mmdet's MODELS / TRANSFORMS / DATASETS / HOOKS), and
the metrics of ``fgclip2_det.evaluation`` (METRICS): ``import fgclip2_det`` registers them all."""
from .backbone import FGCLIP2ViT, ViTFeatureMaps, default_out_indices
from .box_classifier import FGCLIP2BoxClassifier
from .boxclass_dataset import BoxClassDataset
from .caption_ranker import FGCLIP2CaptionRanker
from .fgovd_dataset import FGOVDDataset
from .hooks import DatasetVocabularyHook
from .neck import LayerNorm2d, SequentialNeck, SimplePyramid
from .ov_datasets import OVCocoDataset, OVLVISDataset
from .ov_detector import FGCLIP2FViT
from .ov_heads import CosineBBoxHead, FGCLIP2OVRoIHead, RegionScoreEnsemble
from .text_classifier import TextClassifier
from .transforms import LoadFGCLIP2Image, NaFlexResize
from .. import evaluation  # noqa: F401  (registers the metrics)

__all__ = ["FGCLIP2ViT", "ViTFeatureMaps", "default_out_indices", "FGCLIP2BoxClassifier", "FGCLIP2CaptionRanker",
           "BoxClassDataset", "FGOVDDataset", "DatasetVocabularyHook", "SimplePyramid", "LayerNorm2d",
           "SequentialNeck", "OVCocoDataset", "OVLVISDataset", "FGCLIP2FViT", "CosineBBoxHead",
           "FGCLIP2OVRoIHead", "RegionScoreEnsemble",
           "TextClassifier", "LoadFGCLIP2Image", "NaFlexResize"]
