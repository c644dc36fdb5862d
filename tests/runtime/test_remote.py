"""Remote trtexec over SSH: output parsing on a recorded summary, argument lists, quoting, failures."""
import shlex
import subprocess

import pytest

from compress.errors import DeviceError, UserInputError
from runtime import remote as R

TRTEXEC_OUT = """\
[11/20/2023-10:01:02] [I] === Performance summary ===
[11/20/2023-10:01:02] [I] Throughput: 1186.64 qps
[11/20/2023-10:01:02] [I] Latency: min = 0.853027 ms, max = 1.73608 ms, mean = 0.86986 ms, median = 0.865234 ms, percentile(90%) = 0.875 ms, percentile(95%) = 0.879883 ms, percentile(99%) = 0.911133 ms
[11/20/2023-10:01:02] [I] Enqueue Time: min = 0.323242 ms, max = 0.92627 ms, mean = 0.337891 ms, median = 0.333984 ms, percentile(90%) = 0.344727 ms, percentile(95%) = 0.349609 ms, percentile(99%) = 0.398438 ms
[11/20/2023-10:01:02] [I] H2D Latency: min = 0.0439453 ms, max = 0.0888672 ms, mean = 0.0468018 ms, median = 0.0458984 ms, percentile(90%) = 0.0483398 ms, percentile(95%) = 0.0493164 ms, percentile(99%) = 0.0585938 ms
[11/20/2023-10:01:02] [I] GPU Compute Time: min = 0.795898 ms, max = 1.67065 ms, mean = 0.812485 ms, median = 0.807617 ms, percentile(90%) = 0.817139 ms, percentile(95%) = 0.821289 ms, percentile(99%) = 0.851929 ms
[11/20/2023-10:01:02] [I] D2H Latency: min = 0.00830078 ms, max = 0.0253906 ms, mean = 0.0105725 ms, median = 0.0102539 ms, percentile(90%) = 0.0112305 ms, percentile(95%) = 0.0117188 ms, percentile(99%) = 0.0146484 ms
[11/20/2023-10:01:02] [I] Total Host Walltime: 3.00175 s
"""
TEGRA = "RAM 2904/30536MB GR3D_FREQ 97%@[1300,1300] VDD_GPU_SOC 9000mW/8000mW VDD_CPU_CV 1000mW/1000mW VIN_SYS_5V0 4000mW/4000mW"


def test_parse_trtexec():
    r = R.parse_trtexec(TRTEXEC_OUT, batch=8)
    assert r.throughput_qps == 1186.64 and r.throughput_ips == pytest.approx(1186.64 * 8)
    assert r.latency["mean"] == 0.86986 and r.latency["p99"] == 0.911133 and r.latency["median"] == 0.865234
    assert r.gpu_compute["p90"] == 0.817139 and r.h2d["mean"] == 0.0468018 and r.d2h["max"] == 0.0253906
    # trtexec's Latency = H2D + GPU compute + D2H (means add up to within rounding)
    assert r.h2d["mean"] + r.gpu_compute["mean"] + r.d2h["mean"] == pytest.approx(r.latency["mean"], rel=2e-3)
    s = r.to_latency_stats({"backend": "tensorrt (trtexec)"}, iters=200)
    assert s.p50_ms == 0.865234 and s.p90_ms == 0.875 and s.h2d_included and s.runner["gpu_compute_ms"]["mean"] == 0.812485
    with pytest.raises(DeviceError, match="no performance summary.*Error"):
        R.parse_trtexec("[E] Error[1]: engine plan file is incompatible\n")


def test_args_and_quoting():
    a = R.trtexec_args("model.onnx", "int8", "input", (8, 3, 224, 224), iterations=100, trtexec="/usr/src/tensorrt/bin/trtexec")
    assert a == ["/usr/src/tensorrt/bin/trtexec", "--onnx=model.onnx", "--int8", "--fp16", "--shapes=input:8x3x224x224",
                 "--iterations=100", "--warmUp=500", "--useSpinWait"]
    assert R.trtexec_args("model.engine", "fp16")[1] == "--loadEngine=model.engine"
    evil = "/tmp/x'; rm -rf ~; echo '"
    script = R.remote_script(evil, ["trtexec", "--onnx=a b;c.onnx"])
    assert script.startswith("cd " + shlex.quote(evil) + " && ")
    assert shlex.quote("--onnx=a b;c.onnx") in script
    assert R.remote_dir_for("/home/me/my model; rm.onnx").startswith("/tmp/compress-profile-")
    assert R.ssh_command("nvidia@orin.local", "ls")[:1] == ["ssh"] and R.ssh_command("nvidia@orin.local", "ls")[-1] == "ls"
    assert R.scp_command("orin", "/a b/m.onnx", "/tmp/d/model.onnx")[-2:] == ["/a b/m.onnx", "orin:/tmp/d/model.onnx"]
    for bad in ("-oProxyCommand=evil", "a b", "x;y", ""):
        with pytest.raises(UserInputError, match="is not a host"):
            R.check_host(bad)
    with pytest.raises(UserInputError, match="Unknown precision"):
        R.trtexec_args("m.onnx", "fp8")


class FakeSSH:
    """Records every command; answers like ssh/scp on a Jetson would."""

    def __init__(self, unreachable=False, trtexec=True):
        self.cmds, self.unreachable, self.trtexec = [], unreachable, trtexec

    def __call__(self, cmd, **kw):
        assert isinstance(cmd, list) and kw.get("check") is False
        self.cmds.append(cmd)
        if self.unreachable:
            return subprocess.CompletedProcess(cmd, 255, "", "ssh: connect to host orin port 22: No route to host")
        remote = cmd[-1]
        if "command -v" in remote:
            return subprocess.CompletedProcess(cmd, 0 if self.trtexec else 1,
                                               "/usr/src/tensorrt/bin/trtexec\n" if self.trtexec else "", "")
        if "tegrastats" in remote:
            out = TRTEXEC_OUT + R._MARK + "\n" + TEGRA + "\n" + TEGRA + "\n" + R._NVP_MARK + "\nNV Power Mode: MODE_30W\n2\n"
            return subprocess.CompletedProcess(cmd, 0, out, "")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_profile_remote_with_fake_ssh(tmp_path):
    model = tmp_path / "student.onnx"
    model.write_bytes(b"onnx")
    fake = FakeSSH()
    res = R.profile_remote("nvidia@orin", model, "fp16", "input", (1, 3, 224, 224), iterations=100, run=fake)
    assert res.latency.mean_ms == 0.86986 and res.latency.throughput_ips == pytest.approx(1186.64)
    assert res.power_mode == {"name": "MODE_30W", "id": 2}
    assert res.power.mean_total_mw == 14000 and res.power.energy_per_inference_mj == pytest.approx(14000 * 0.86986 / 1000)
    assert [c[0] for c in fake.cmds] == ["ssh", "ssh", "scp", "ssh"]
    assert "/usr/src/tensorrt/bin/trtexec --onnx=model.onnx --fp16" in fake.cmds[-1][-1]


def test_unreachable_and_missing_trtexec(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(DeviceError, match="cannot reach orin over SSH.*No route to host"):
        R.profile_remote("orin", model, run=FakeSSH(unreachable=True))
    with pytest.raises(DeviceError, match="orin has no trtexec"):
        R.profile_remote("orin", model, run=FakeSSH(trtexec=False))
    with pytest.raises(UserInputError, match="does not exist"):
        R.profile_remote("orin", tmp_path / "none.onnx", run=FakeSSH())
