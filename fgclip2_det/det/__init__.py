"""MMDetection parts, registered in mmdet's MODELS / TRANSFORMS / DATASETS / HOOKS when this package
is imported (configs name it in ``custom_imports``); the metrics are ``fgclip2_det.evaluation``."""
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
from .transforms import LoadFGCLIP2Image, NaFlexResize

__all__ = ["FGCLIP2ViT", "ViTFeatureMaps", "default_out_indices", "FGCLIP2BoxClassifier", "FGCLIP2CaptionRanker",
           "BoxClassDataset", "FGOVDDataset", "DatasetVocabularyHook", "SimplePyramid", "LayerNorm2d",
           "SequentialNeck", "OVCocoDataset", "OVLVISDataset", "FGCLIP2FViT", "CosineBBoxHead",
           "FGCLIP2OVRoIHead", "RegionScoreEnsemble",
           "LoadFGCLIP2Image", "NaFlexResize"]
