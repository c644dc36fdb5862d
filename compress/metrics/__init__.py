"""Evaluation metrics: classification, retrieval (four distances) and embedding clustering / kNN."""
from compress.metrics.classification import (
    ClassificationMetrics,
    classification_report,
    confusion_matrix,
    plot_confusion_png,
    write_confusion_csv,
)
from compress.metrics.clustering import (
    ClusteringMetrics,
    clustering_accuracy,
    kmeans_nmi_acc,
    knn_accuracy,
    knn_predict,
    nmi,
)
from compress.metrics.distances import DISTANCES, distance_names, pairwise_distance
from compress.metrics.retrieval import (
    PRCurve,
    RetrievalMetrics,
    plot_pr_curve_png,
    retrieval_report,
    write_pr_curve_csv,
)

__all__ = [
    "ClassificationMetrics",
    "classification_report",
    "confusion_matrix",
    "plot_confusion_png",
    "write_confusion_csv",
    "ClusteringMetrics",
    "clustering_accuracy",
    "kmeans_nmi_acc",
    "knn_accuracy",
    "knn_predict",
    "nmi",
    "DISTANCES",
    "distance_names",
    "pairwise_distance",
    "PRCurve",
    "RetrievalMetrics",
    "plot_pr_curve_png",
    "retrieval_report",
    "write_pr_curve_csv",
]
