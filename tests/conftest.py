"""Shared fixtures: tiny class-per-folder data sets written on the fly (no external data)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

# bench/mutation.py runs two test processes at once on two cores and asks for one thread each
torch.set_num_threads(int(os.environ.get("COMPRESS_TEST_THREADS", "0")) or max(1, min(2, os.cpu_count() or 1)))

# estimates in tests never read this machine's own device calibration (~/.config/compress-edge): a store
# that does not exist (tests that calibrate name their own)
os.environ["COMPRESS_CALIBRATION"] = os.path.join(tempfile.gettempdir(), f"compress-tests-{os.getpid()}-none.json")

# ``@pytest.mark.cpu(kind)``: the result depends on this CPU's instructions (the CPU model changes from
# machine to machine); a test marked with a kind the CPU lacks is skipped and says which CPU it ran on
CPU_KINDS = {"int8_exact": lambda c: not c.int8_saturates, "bf16": lambda c: c.native_bf16, "amx": lambda c: c.amx}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("cpu"):
        from compress.hardware import cpu_info

        kind = mark.args[0]
        if kind not in CPU_KINDS:
            raise pytest.UsageError(f"unknown CPU kind {kind!r} in {item.nodeid}; one of {sorted(CPU_KINDS)}")
        if not CPU_KINDS[kind](cpu_info()):
            pytest.skip(f"needs a CPU with {kind}; this one is {cpu_info().describe()}")


def write_folder(root: Path, classes: int = 3, per_class: int = 6, size: int = 12, bands: int = 3,
                 fmt: str = "png", seed: int = 0) -> Path:
    """Class-per-folder images whose mean brightness depends on the class (learnable)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = 40 + 80 * c
            arr = np.clip(rng.normal(base, 20, size=(size, size, bands)), 0, 255).astype(np.uint8)
            if fmt == "tif":
                import tifffile

                tifffile.imwrite(d / f"img_{i}.tif", arr)
            else:
                Image.fromarray(arr[:, :, 0] if bands == 1 else arr).save(d / f"img_{i}.{fmt}")
    return root


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "data")


def fake_jetson(root: Path, model: bytes = b"NVIDIA Jetson AGX Orin Developer Kit\x00", mem_kb: int = 31268916) -> Path:
    """A root folder that looks like a Jetson's (device tree, L4T release, meminfo)."""
    (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    (root / "proc/device-tree/model").write_bytes(model)
    (root / "etc/nv_tegra_release").write_text("# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref\n")
    (root / "proc/meminfo").write_text(f"MemTotal:       {mem_kb} kB\n")
    return root


class TransformerBlock(torch.nn.Module):
    """A pre-norm transformer block as timm writes it: explicit scale, Q·Kᵀ, softmax, P·V (or SDPA)."""

    def __init__(self, dim: int = 64, heads: int = 2, sdpa: bool = False):
        super().__init__()
        nn = torch.nn
        self.heads, self.sdpa, self.norm, self.qkv = heads, sdpa, nn.LayerNorm(dim), nn.Linear(dim, 3 * dim)
        self.proj, self.fc1, self.fc2 = nn.Linear(dim, dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.sdpa:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            out = ((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))

def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    has_cuda = torch.cuda.is_available()
    for item in items:
        if ("gpu" in item.keywords or "trt" in item.keywords) and not has_cuda:
            item.add_marker(skip_gpu)
