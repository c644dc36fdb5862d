"""TensorRT targets, the trtexec command per version, build_engine.sh + sidecar (with a fake trtexec)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from compress.errors import UserInputError
from export.opsets import choose_ir_version, choose_opset
from runtime.trtexec import resolve_trt_version as resolve_target
from export.tensorrt import TrtBuildConfig, sidecar_path, trtexec_command, write_build_script


def test_targets_opset_and_ir():
    t82, t85, t103, t11 = (resolve_target(v) for v in ("8.2", "8.5.2", "10.3", "11"))
    assert (t82.max_opset, t82.max_ir_version, t82.jetpack, t82.tensor_api) == (13, 7, "4.6", False)
    assert (t85.max_opset, t85.max_ir_version, t85.jetpack) == (17, 8, "5.1")
    assert (t103.max_opset, t103.precision_flags) == (20, True)
    assert (t11.precision_flags, t11.dla) == (False, False)
    assert choose_opset(None, None) == 17 and choose_opset(None, t82) == 13 and choose_opset(None, t103) == 17
    assert choose_ir_version(13, t82) == 7 and choose_ir_version(17, t85) == 8 and choose_ir_version(20, t103) == 9
    with pytest.raises(UserInputError, match=r"newer than TensorRT 8.5.2 \(JetPack 5.1\) parses \(at most 17\)"):
        choose_opset(18, t85)
    with pytest.raises(UserInputError, match="older than the oldest supported target 8.2"):
        resolve_target("7.1")
    with pytest.raises(UserInputError, match="not a version number"):
        resolve_target("latest")


def _cfg(version, **kw):
    return TrtBuildConfig(target=resolve_target(version), input_shape=(4, 3, 32, 32), **kw)


def test_trtexec_8_2_dynamic_fp16():
    cmd = trtexec_command(_cfg("8.2", precision="fp16", dynamic_batch=True, min_batch=1, max_batch=16,
                               workspace_mb=512), "model.onnx")
    assert cmd == ["trtexec", "--onnx=model.onnx", "--saveEngine=model.engine", "--timingCacheFile=timing.cache",
                   "--workspace=512", "--minShapes=input:1x3x32x32", "--optShapes=input:4x3x32x32",
                   "--maxShapes=input:16x3x32x32", "--fp16"]


def test_trtexec_10_3_int8_dla():
    cmd = trtexec_command(_cfg("10.3", precision="int8", dla_core=1), "model_int8.onnx")
    assert cmd == ["trtexec", "--onnx=model_int8.onnx", "--saveEngine=model.engine",
                   "--timingCacheFile=timing.cache", "--memPoolSize=workspace:1024", "--int8", "--fp16",
                   "--useDLACore=1", "--allowGPUFallback"]


def test_trtexec_11_has_no_precision_flags():
    cmd = trtexec_command(_cfg("11", precision="fp16"), "model_fp16.onnx")
    assert cmd == ["trtexec", "--onnx=model_fp16.onnx", "--saveEngine=model.engine",
                   "--timingCacheFile=timing.cache", "--memPoolSize=workspace:1024"]
    assert not any(a in cmd for a in ("--fp16", "--int8"))


def test_build_config_validation():
    with pytest.raises(UserInputError, match="DLA runs only FP16 or INT8"):
        _cfg("10.3", dla_core=0)
    with pytest.raises(UserInputError, match="TensorRT 11 cannot target DLA"):
        _cfg("11", precision="fp16", dla_core=0)
    with pytest.raises(UserInputError, match="cores 0 and 1"):
        _cfg("8.5", precision="fp16", dla_core=2)
    with pytest.raises(UserInputError, match=r"1 <= min \(1\) <= opt \(4\) <= max \(2\)"):
        _cfg("8.5", dynamic_batch=True, max_batch=2)


FAKE_TRTEXEC = """#!/usr/bin/env bash
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v{code}] # trtexec $*"
{extra}
for a in "$@"; do case "$a" in --saveEngine=*) printf 'PLAN' > "${{a#--saveEngine=}}";; esac; done
echo "&&&& PASSED"
"""


@pytest.mark.parametrize("code,extra,version", [
    ("8502", 'echo "[I] Selected Device: Xavier"; echo "[I] Compute Capability: 7.2"', "8.5.2"),
    ("100300", 'echo "[I] TensorRT version: 10.3.0"; echo "[I] Selected Device: Orin"; '
               'echo "[I] Compute Capability: 8.7"', "10.3.0"),
])
def test_build_script_runs_and_writes_sidecar(tmp_path, code, extra, version):
    out = tmp_path / "dir with 'quotes'; and spaces"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"onnx")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "trtexec"
    fake.write_text(FAKE_TRTEXEC.format(code=code, extra=extra))
    fake.chmod(0o755)
    cfg = _cfg("10.3", precision="fp16")
    script = write_build_script(out / "build_engine.sh", cfg, "model.onnx", {"precision": "fp16", "onnx": "model.onnx"})
    assert os.access(script, os.X_OK)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    res = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert (out / "model.engine").read_bytes() == b"PLAN"  # no metadata glued onto the engine
    meta = json.loads(sidecar_path(out / "model.engine").read_text())
    assert meta["tensorrt_version"] == version and meta["precision"] == "fp16"
    assert meta["gpu_name"] in ("Xavier", "Orin") and meta["built_with"] == "trtexec"
    assert "--fp16" in (out / "build.log").read_text()


def _trt_usable() -> bool:
    from export.tensorrt import tensorrt_status

    return tensorrt_status()[0]


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.skipif(not _trt_usable(), reason="needs TensorRT and a CUDA GPU")
def test_build_engine_and_run(tmp_path, digits_ckpt, digits_samples):
    import numpy as np
    import tensorrt as trt
    import torch

    from compress.models.restore import load_checkpoint
    from export.onnx import OnnxOptions, export_module, export_onnx, metadata_props
    from export.tensorrt import build_engine
    from runtime.tensorrt_runner import TrtRunner

    c = load_checkpoint(digits_ckpt)
    opts = OnnxOptions(image_size=16, in_chans=1, batch=4, dynamic_batch=True)
    export_onnx(export_module(c.model, "classify", False, (0.5,), (0.25,)), tmp_path / "m.onnx", opts,
                metadata_props(c.manifest, "0", opts))
    cfg = TrtBuildConfig(target=resolve_target(trt.__version__), input_shape=(4, 1, 16, 16), dynamic_batch=True,
                         min_batch=1, max_batch=64)
    info = build_engine(tmp_path / "m.onnx", tmp_path / "model.engine", cfg)
    assert info.meta["tensorrt_version"] == trt.__version__ and (tmp_path / "timing.cache").stat().st_size > 0
    x = digits_samples.images.numpy()
    with TrtRunner(info.engine) as r:
        out = r.infer({"input": x})["logits"]
    with torch.no_grad():
        ref = c.model(torch.from_numpy(x)).numpy()
    assert np.abs(out - ref).max() < 1e-3


def test_an_engine_built_here_is_a_parity_candidate_that_names_its_file(tmp_path, monkeypatch):
    """The TensorRT step hands back the engine's parity candidate (it used to append to its caller's list)."""
    from types import SimpleNamespace

    import export.tensorrt as trt_mod
    import runtime.tensorrt_runner as runner_mod
    from export.chain import _tensorrt_step

    (tmp_path / "model.onnx").write_bytes(b"onnx")
    cfg = _cfg("10.3", precision="fp16")
    assert _tensorrt_step(tmp_path, cfg, build_here=False) == ("script-only", "to be built on the remote target",
                                                              "model.onnx", None)
    monkeypatch.setattr(trt_mod, "tensorrt_status", lambda: (True, ""))
    monkeypatch.setattr(trt_mod, "build_engine", lambda src, dst, c: SimpleNamespace(
        engine=dst, meta={"tensorrt_version": "10.3.0", "gpu_name": "Orin"}))
    monkeypatch.setattr(runner_mod, "TrtRunner", lambda engine: ("runner", engine.name))
    status, note, onnx_name, engine = _tensorrt_step(tmp_path, cfg, build_here=True)
    assert (status, note, onnx_name) == ("built", "TensorRT 10.3.0 on Orin", "model.onnx")
    assert engine == ("tensorrt-fp16", ("runner", "model.engine"), "fp16", "model.engine")
