"""FG-CLIP 2 pretraining losses (official FG2, docs/official_code.md), one module each."""
from .cross_modal_rank import CrossModalRankLoss
from .hard_negative import (BatchHardContrastiveLoss, HardNegativeLoss, check_hard_negative_inputs,
                            hard_negative_logits)
from .region_contrastive import RegionTextContrastiveLoss
from .sigmoid import SigmoidContrastiveLoss, sigmoid_pair_loss
from .text_intra import TextIntraModalLoss
from .total import DEFAULT_LOSS_WEIGHTS, LOSS_TERMS, official_loss_weights, weighted_losses

__all__ = ["SigmoidContrastiveLoss", "sigmoid_pair_loss", "RegionTextContrastiveLoss", "TextIntraModalLoss",
           "HardNegativeLoss", "BatchHardContrastiveLoss", "hard_negative_logits", "check_hard_negative_inputs",
           "CrossModalRankLoss", "weighted_losses", "official_loss_weights", "DEFAULT_LOSS_WEIGHTS",
           "LOSS_TERMS"]
