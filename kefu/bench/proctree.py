"""Memory of a process and all its descendants, read from /proc (no psutil).

Batch scoring with Ray runs many processes (driver, raylet, workers) that share pages, so the
peak is reported twice: summed RSS (counts a shared page once per process, an upper bound) and
summed PSS (shares each page out between the processes using it, which adds up correctly).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PROC = Path("/proc")


def descendants(root_pid: int) -> list[int]:
    """Pids of every live descendant of `root_pid` (not including it)."""
    children: dict[int, list[int]] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # Field 4 is the parent pid; the command name (field 2) may hold spaces and parens.
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, stack = [], list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds one process has used so far; 0.0 once it has gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the command name: state is field 3, utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    return sum(process_cpu_seconds(pid) for pid in [root_pid, *descendants(root_pid)])


def process_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of one process; (0, 0) once it has gone."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return _rss_from_status(pid), 0
    values = {"Rss:": 0, "Pss:": 0}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in values:
            values[parts[0]] = int(parts[1]) * 1024
    return values["Rss:"], values["Pss:"]


def _rss_from_status(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory(root_pid: int) -> dict[str, int]:
    """Summed RSS and PSS (bytes) and the process count of `root_pid` and its descendants."""
    pids = [root_pid, *descendants(root_pid)]
    rss = pss = 0
    for pid in pids:
        one_rss, one_pss = process_memory(pid)
        rss += one_rss
        pss += one_pss
    return {"rss": rss, "pss": pss, "processes": len(pids)}


class PeakMemory:
    """Polls `tree_memory(pid)` on a thread every `interval` seconds and keeps the peaks."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid = pid
        self.interval = interval
        self.peak_rss = self.peak_pss = self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            memory = tree_memory(self.pid)
            self.peak_rss = max(self.peak_rss, memory["rss"])
            self.peak_pss = max(self.peak_pss, memory["pss"])
            self.peak_processes = max(self.peak_processes, memory["processes"])
            self._stop.wait(self.interval)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "peak_rss_mb": round(self.peak_rss / 1e6, 1),
            "peak_pss_mb": round(self.peak_pss / 1e6, 1),
            "peak_processes": self.peak_processes,
        }
