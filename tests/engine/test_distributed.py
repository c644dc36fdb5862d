"""Leaving the process group: joined once, left at exit with the group's holders collected first
(gloo threads joined while Python is alive, not during finalization, pytorch/pytorch#190489)."""
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
