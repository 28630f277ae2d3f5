"""Full-reference fidelity metrics: one contract (``base``), one registry, one file per family."""
from optiqa.metrics.base import FRMetric, MetricInfo, check_pair
from optiqa.metrics.registry import create_metric, list_metrics, metric_available_offline

__all__ = ["FRMetric", "MetricInfo", "check_pair", "create_metric", "list_metrics",
           "metric_available_offline"]
