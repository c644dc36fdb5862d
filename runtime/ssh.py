"""One SSH layer for export (remote engine builds) and profile (remote measurements).

A host is ``[user@]host[:port]`` (``[user@][v6addr]:port`` for IPv6) or an ``~/.ssh/config`` alias;
anything ssh would read as an option, or that holds spaces or shell characters, is refused. Every
command is an argument list (no local shell); the port goes to ``ssh -p`` / ``scp -P``.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from compress.errors import UserInputError

SSH_OPTS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=15")
_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_HOST = re.compile(rf"(?:(?P<user>{_NAME})@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>{_NAME}))(?::(?P<port>\d+))?")

Run = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class SshHost:
    """A parsed ``--remote`` value."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def destination(self) -> str:
        """``user@host`` as ssh takes it (IPv6 bare, no port)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def scp_destination(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    def __str__(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")

    def ssh(self, remote_cmd: str) -> list[str]:
        """``ssh`` argv running ``remote_cmd`` (one string, already quoted for the remote shell)."""
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *SSH_OPTS, *port, self.destination, remote_cmd]

    def scp_to(self, local: Sequence[str | Path], remote_path: str) -> list[str]:
        port = ["-P", str(self.port)] if self.port else []
        return ["scp", *SSH_OPTS, *port, "--", *(str(p) for p in local), f"{self.scp_destination}:{remote_path}"]

    def scp_from(self, remote_paths: Sequence[str], local_dir: str | Path) -> list[str]:
        port = ["-P", str(self.port)] if self.port else []
        return ["scp", *SSH_OPTS, *port, "--", *(f"{self.scp_destination}:{p}" for p in remote_paths), str(local_dir)]


def parse_host(text: str) -> SshHost:
    """``[user@]host[:port]`` → :class:`SshHost`; a value ssh could read as an option is a UserInputError."""
    m = _HOST.fullmatch(text or "")
    port = int(m.group("port")) if m and m.group("port") else None
    if not m or (port is not None and not 0 < port < 65536):
        raise UserInputError(f"--remote '{text}' is not a host; use user@host or user@host:port (e.g. "
                             "nvidia@orin.local:2222) or a Host alias from ~/.ssh/config.")
    return SshHost(host=m.group("v6") or m.group("name"), user=m.group("user"), port=port)


def check_host(host: str) -> str:
    """The host string, validated (see :func:`parse_host`)."""
    parse_host(host)
    return host


def ssh_command(host: str, remote_cmd: str) -> list[str]:
    return parse_host(host).ssh(remote_cmd)


def scp_command(host: str, local: str | Path, remote_path: str) -> list[str]:
    return parse_host(host).scp_to([local], remote_path)


def run_command(argv: Sequence[str], timeout: float = 3600) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
