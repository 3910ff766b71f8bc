"""The processes of a Triton server and their resident memory: tritonserver and the python
backend stubs it starts (one per model instance), found in the server's process group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"


@dataclass(frozen=True)
class Member:
    pid: int
    name: str  # the executable's name, e.g. tritonserver, triton_python_backend_stub
    rss_kib: int


def _rss_kib(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def group_members(process_group: int) -> list[Member]:
    """Every live process of `process_group` (read from /proc), by pid."""
    members = []
    for proc in sorted(Path("/proc").iterdir(), key=lambda p: p.name):
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            # After the name in parentheses, which may itself hold spaces and parentheses.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != process_group:
                continue
            command = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
            rss = _rss_kib((proc / "status").read_text())
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue  # it exited while being read
        members.append(Member(int(proc.name), Path(command).name, rss))
    return members


def stub_pids(process_group: int) -> list[int]:
    """The live python backend stubs of the server whose process group this is."""
    return [m.pid for m in group_members(process_group) if m.name == STUB_NAME]


def child_pids(parent: int) -> list[int]:
    """The live processes whose parent is `parent` (e.g. the tritonserver of a launcher)."""
    children = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                children.append(int(proc.name))
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
    return sorted(children)
