"""The per-kernel latency ESTIMATE for a device profile: what TensorRT fuses (``kernels``), the roofline
per kernel with fitted efficiencies (``estimate``), the cross-validated error band (``bands``) and rank
agreement with published tables (``ranking``)."""
