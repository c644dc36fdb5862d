"""A Jetson behind a fake SSH for tests of remote measurement: its GPU time is set by the number of kernels
(ONNX nodes) of the file copied to it, as a Jetson's is at small inputs."""
import subprocess

import onnx

from runtime import remote as R


class FakeJetson:
    """Answers ssh/scp like a Jetson with trtexec; GPU compute median = ``per_node`` ms × the nodes of the
    last ONNX file copied to it. Any other command runs for real."""

    def __init__(self, per_node: float = 0.01, mode: str = "15W") -> None:
        self.per_node, self.mode, self.nodes, self.timed = per_node, mode, 0, []
        self.real = subprocess.run

    def __call__(self, cmd, **kw):
        if cmd[0] == "scp":
            self.nodes = len(onnx.load(cmd[-2]).graph.node)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if cmd[0] != "ssh":
            return self.real(cmd, **kw)
        if "command -v" in cmd[-1]:
            return subprocess.CompletedProcess(cmd, 0, "/usr/src/tensorrt/bin/trtexec\n", "")
        if "tegrastats" not in cmd[-1]:
            return subprocess.CompletedProcess(cmd, 0, "", "")
        ms = round(self.per_node * self.nodes, 4)
        self.timed.append(ms)
        out = ("[I] === Performance summary ===\n[I] Throughput: 1000 qps\n"
               f"[I] Latency: min = {ms + 0.05} ms, max = {ms + 0.2} ms, mean = {ms + 0.06} ms, median = {ms + 0.05} ms\n"
               f"[I] GPU Compute Time: min = {ms - 0.001} ms, max = {ms + 0.1} ms, mean = {ms + 0.002} ms, "
               f"median = {ms} ms\n" + R._MARK + "\n" + R._NVP_MARK + f"\nNV Power Mode: {self.mode}\n1\n")
        return subprocess.CompletedProcess(cmd, 0, out, "")
