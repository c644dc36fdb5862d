"""Counting what a model costs: parameters, MACs/FLOPs and activation memory per layer, from a PyTorch
module (``torch_count``) or an ONNX graph (``onnx_count``), as one ``ModelAnalysis`` (``analysis``)."""
