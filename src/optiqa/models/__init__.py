"""The models layer (DESIGN.md): what turns pixels into features and numbers.

- :mod:`optiqa.models.backbones`: timm-based feature extractors (``create``, ``Backbone``); also
  importable as :mod:`optiqa.backbones`, the public name, which re-exports the three modules
  beside it: :mod:`~optiqa.models.backbone_specs` (the table, one spec row per backbone),
  :mod:`~optiqa.models.backbone_weights` (where the weights come from) and
  :mod:`~optiqa.models.backbone_trunks` (building the network, loading weights into it), plus
  :mod:`~optiqa.models.alexnet` (torchvision's AlexNet features, LPIPS's network);
- :mod:`optiqa.models.testing`: tiny stand-in networks and weights for tests;
- :mod:`optiqa.metrics` (the FR/NR metric contract, registry, one file per family) and
  :mod:`optiqa.nets` (generators and discriminators) belong to the same layer.
"""
