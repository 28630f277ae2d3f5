"""Transfer: IQA models on backbones initialised randomly, from ImageNet or from a trained
discriminator, and discriminators as zero-shot quality models.

- :mod:`.models`: the no-reference (pooled mean/std -> head) and full-reference (DISTS terms with
  learnable weights) models;
- :mod:`.init`: ``random`` | ``imagenet`` | ``gan:<run-dir-or-checkpoint>`` initialisations;
- :mod:`.features`: descriptors extracted once and cached for the frozen (linear-probe) mode;
- :mod:`.protocol`: content splits, repeats, the correlation-aware loss, early stopping, statistics;
- :mod:`.fitting`: one repeat's training (cached head or fine-tuning);
- :mod:`.experiment`: :func:`run_transfer`, results into the study store;
- :mod:`.zeroshot`: a discriminator's logit as a no-reference score.
"""
from optiqa.transfer.experiment import TransferOptions, run_transfer
from optiqa.transfer.fitting import TrainSettings
from optiqa.transfer.init import create_backbone, parse_init
from optiqa.transfer.models import FRModel, NRModel, create_model
from optiqa.transfer.zeroshot import run_zero_shot

__all__ = ["TransferOptions", "TrainSettings", "run_transfer", "run_zero_shot", "create_backbone",
           "parse_init", "create_model", "NRModel", "FRModel"]
