"""The models layer (DESIGN.md): what turns pixels into features and numbers.

- :mod:`optiqa.models.backbones`: timm-based feature extractors and where their weights come from
  (one spec row per backbone); also importable as :mod:`optiqa.backbones`, the public name;
- :mod:`optiqa.models.testing`: tiny stand-in networks and weights for tests;
- :mod:`optiqa.metrics` (the FR/NR metric contract, registry, one file per family) and
  :mod:`optiqa.nets` (generators and discriminators) belong to the same layer.
"""
