"""Leaving the process group: joined once, left at exit with the group's holders collected first
(gloo threads joined while Python is alive, not during finalization, pytorch/pytorch#190489)."""
import pytest
import torch

from compress.engine import distributed as dist


def test_leave_without_a_group_is_a_no_op():
    assert not torch.distributed.is_initialized()
    dist.leave()
    dist.leave()


def test_init_registers_leave_and_leave_collects_before_destroying(monkeypatch):
    calls: list[str] = []
    joined = {"on": False}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: joined["on"])
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda backend: (calls.append(f"init {backend}"), joined.update(on=True)))
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist.atexit, "register", lambda f: calls.append(f"atexit {f.__name__}"))
    monkeypatch.setattr(dist.gc, "collect", lambda: calls.append("gc"))
    monkeypatch.setattr(torch.distributed, "destroy_process_group",
                        lambda: (calls.append("destroy"), joined.update(on=False)))
    ctx = dist.init(torch.device("cpu"))
    assert ctx.backend == "gloo" and ctx.world == 2
    dist.init(torch.device("cpu"))  # joined already: nothing again
    dist.leave()
    dist.leave()  # left already
    assert calls == ["init gloo", "atexit leave", "gc", "destroy"]


def test_finish_runs_exit_handlers_flushes_then_exits_without_finalization(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(dist.atexit, "_run_exitfuncs", lambda: calls.append("atexit"))

    class Stream:
        def __init__(self, name):
            self.name = name

        def flush(self):
            calls.append(f"flush {self.name}")
            if self.name == "err":
                raise ValueError("I/O operation on closed file")

    monkeypatch.setattr(dist.sys, "stdout", Stream("out"))
    monkeypatch.setattr(dist.sys, "stderr", Stream("err"))

    def fake_exit(code):
        calls.append(f"_exit {code}")
        raise SystemExit(code)

    monkeypatch.setattr(dist.os, "_exit", fake_exit)
    with pytest.raises(SystemExit):
        dist.finish(3)
    assert calls == ["atexit", "flush out", "flush err", "_exit 3"]


def test_main_under_torchrun_finishes_with_the_commands_exit_code(monkeypatch):
    import compress.cli as cli

    codes: list[int] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "finish", lambda code: codes.append(code))
    for exc, want in ((None, 0), (SystemExit(0), 0), (SystemExit(2), 2), (SystemExit("bad"), 1)):
        def app(exc=exc):
            if exc is not None:
                raise exc
        monkeypatch.setattr(cli, "app", app)
        cli.main()
    assert codes == [0, 0, 2, 1]


def test_ranks_sharing_a_gpu_use_gloo_and_each_owning_one_nccl(monkeypatch):
    import torch

    from compress.engine.distributed import choose_backend
    from compress.errors import UserInputError

    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.delenv("COMPRESS_DIST_BACKEND", raising=False)
    assert choose_backend(gpu, local_world=2, gpus=2) == "nccl"
    assert choose_backend(gpu, local_world=2, gpus=1) == "gloo"  # NCCL refuses two ranks on one GPU
    assert choose_backend(cpu, local_world=2, gpus=0) == "gloo"
    monkeypatch.setenv("COMPRESS_DIST_BACKEND", "NCCL")
    assert choose_backend(gpu, local_world=2, gpus=1) == "nccl"
    with pytest.raises(UserInputError, match="COMPRESS_DIST_BACKEND=nccl needs CUDA devices"):
        choose_backend(cpu, local_world=2, gpus=0)
    monkeypatch.setenv("COMPRESS_DIST_BACKEND", "mpi")
    with pytest.raises(UserInputError, match="'mpi': use nccl or gloo"):
        choose_backend(gpu, local_world=2, gpus=1)
