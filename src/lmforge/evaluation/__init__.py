"""Metrics for classification, multi-label and regression tasks, and run reports."""

from lmforge.evaluation.metrics import (
    classification_metrics,
    format_table,
    metric_mode,
    multilabel_metrics,
    regression_metrics,
)
from lmforge.evaluation.report import read_metrics_log, write_report

__all__ = [
    "classification_metrics",
    "format_table",
    "metric_mode",
    "multilabel_metrics",
    "read_metrics_log",
    "regression_metrics",
    "write_report",
]
