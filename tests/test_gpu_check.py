"""``bench/gpu_check.py --smoke``: every section of the GPU check, in miniature on the CPU, end to end."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    p = subprocess.run([sys.executable, "bench/gpu_check.py", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {k: v["status"] for k, v in report["sections"].items()}
    assert status == {"environment": "pass", "gpu-tests": "pass", "distill": "pass", "ddp": "pass",
                      "throughput": "pass", "latency": "pass"}
    ddp = report["sections"]["ddp"]
    assert ddp["resume"]["epoch1_kept"] and ddp["resume"]["killed_after_epoch"] < 3
    assert "| ddp | pass |" in (tmp_path / "gpu_check.md").read_text()


def test_a_missing_package_is_one_line_before_anything_runs(tmp_path):
    code = ("import sys, importlib.util; sys.argv = ['gpu_check', '--smoke', '--out', sys.argv[1]]; "
            "real = importlib.util.find_spec; "
            "importlib.util.find_spec = lambda m, *a: None if m == 'timm' else real(m, *a); "
            "sys.path.insert(0, 'bench'); import gpu_check; raise SystemExit(gpu_check.main())")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "missing Python packages: timm" in p.stderr and not (tmp_path / "o").exists()
