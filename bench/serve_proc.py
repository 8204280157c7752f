"""`maas serve` as a child process on an embedded data dir: cold start, peak RSS, clean stop.

The harness measures the service as an operator runs it: its own process (so the benchmark's
clients do not share its event loop or its memory), embedded Postgres in its data dir, offline
mode, no embeddings, extensions loaded as `maas serve` loads them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import ADMIN_KEY

START_TIMEOUT_S = 120.0


def serve_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without its MAAS_* settings, plus the harness's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAAS_")}
    env |= {
        "MAAS_EMBEDDER": "none",
        "MAAS_ADMIN_KEY": ADMIN_KEY,
        "MAAS_RATE_LIMIT_PER_MIN": "0",  # one key sends as fast as it can
        "MAAS_LOG_LEVEL": "WARNING",
        "MAAS_IDLE_SCAN_S": "3600",  # the benchmark's chat threads are not archived meanwhile
    }
    return env | (extra or {})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(data_dir: Path) -> float:
    """CPU time so far of the embedded postmaster and its live children (backends, walwriter...)."""
    postmaster = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += cpu_seconds(int(stat.parent.name))
        except (OSError, ValueError):  # the process ended meanwhile
            continue
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServeProcess:
    proc: asyncio.subprocess.Process
    base_url: str
    log_path: Path
    data_dir: Path

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def peak_rss_mb(self) -> float:
        """VmHWM: the largest resident set the process has had so far."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status (Linux only)")

    async def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def start_serve(data_dir: Path, env: dict[str, str]) -> tuple[ServeProcess, float]:
    """Start `maas serve` and return it with the seconds until GET /health said ok."""
    port = free_port()
    log_path = data_dir.parent / f"serve-{port}.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "maas", "serve", "--data-dir", str(data_dir), "--port", str(port),
            env=env, cwd=str(data_dir.parent), stdout=log, stderr=log,
        )  # fmt: skip
    served = ServeProcess(proc, f"http://127.0.0.1:{port}", log_path, data_dir)
    try:
        await until_healthy(served)
    except BaseException:
        await served.stop(5.0)
        raise
    return served, time.perf_counter() - started


async def until_healthy(served: ServeProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(base_url=served.base_url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if served.proc.returncode is not None:
                tail = served.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"maas serve exited ({served.proc.returncode}):\n{tail}")
            try:
                resp = await http.get("/health")
                if resp.status_code == 200 and resp.json().get("status") == "ok":
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.01)
    raise TimeoutError(f"maas serve not healthy within {START_TIMEOUT_S:.0f}s")
