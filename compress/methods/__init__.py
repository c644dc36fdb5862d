"""Training/distillation methods, one file each, registered in ``METHODS``."""
import importlib

from compress.methods.base import METHODS, Method, StepOutput, build_method, build_method_params

# Importing a module registers its methods; the list is the single place that names them.
_MODULES = ["ce", "ce_vsm", "kd", "dkd", "dist", "at", "sp", "rkd", "fitnet", "pskd", "erkt", "joc", "hr_s2dml", "cross_source"]
for _m in _MODULES:
    importlib.import_module(f"compress.methods.{_m}")

__all__ = ["METHODS", "Method", "StepOutput", "build_method", "build_method_params"]
