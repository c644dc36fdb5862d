"""compress: distillation, export and profiling of compact image classifiers for edge devices."""
__version__ = "0.1.0"
