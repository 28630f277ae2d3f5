"""Metrics: one contract (``base``), one registry, one file per family."""
from optiqa.metrics.base import FRMetric, Metric, MetricInfo, NRMetric, check_image, check_pair
from optiqa.metrics.registry import (create_metric, list_metrics, metric_available_offline,
                                     register_metric)

__all__ = ["Metric", "FRMetric", "NRMetric", "MetricInfo", "check_pair", "check_image",
           "create_metric", "list_metrics", "metric_available_offline", "register_metric"]
