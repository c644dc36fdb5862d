"""Model analysis (params, MACs/FLOPs, memory), device profiles and the per-kernel latency ESTIMATE."""
from profiles.counting.analysis import LayerStats, ModelAnalysis
from profiles.device import DeviceProfile, PowerMode, list_device_profiles, load_device_profile

__all__ = ["DeviceProfile", "LayerStats", "ModelAnalysis", "PowerMode", "list_device_profiles", "load_device_profile"]
