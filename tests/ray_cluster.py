"""A real local Ray cluster for the tests, inside a private network namespace so every packet stays on loopback.

A Ray head node rebinds 127.0.0.1 to the machine's network address; inside ``unshare -n`` (with only ``lo``
up) there is no other address (and in its own PID namespace, ending the head ends the whole cluster), so the cluster and its clients talk over loopback alone. One cluster serves
the whole test session: ``private_ray_cluster.run(script)`` runs a Python script inside the same namespace
(``nsenter --net``) with ``RAY_ADDRESS`` set, so the script's ``address="auto"`` finds the cluster.

Without ``unshare``/``nsenter`` (or without root) the tests that use it are skipped with the reason,
except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PORT = 6379
START_SECONDS = 180
VENV_BIN = Path(sys.executable).parent


def _unavailable() -> str | None:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "unshare/nsenter (util-linux) are not installed: cannot start a Ray cluster in a private network namespace"
    if not (VENV_BIN / "ray").exists():
        return "Ray is not installed (pip install 'explainer[ray]')"
    probe = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is not permitted here ({probe.stderr.strip() or 'needs root'})"
    return None


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail under CI=true where the real cluster test must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires the Ray cluster test, but {reason}")
    pytest.skip(reason)


@dataclass
class PrivateRayCluster:
    """A Ray head node with ``num_cpus`` CPUs in its own network namespace."""

    process: subprocess.Popen
    temp_dir: str
    num_cpus: int

    @property
    def namespace(self) -> str:
        return f"/proc/{self.process.pid}/ns/net"

    def command(self, *args: str) -> list[str]:
        """A command line that runs inside the cluster's namespace."""
        return ["nsenter", f"--net={self.namespace}", "--", *args]

    def run(self, script: str | Path, *args: str, timeout: float = 300, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
        """Run a Python script (a path, or source text) inside the namespace; its output is captured."""
        if not isinstance(script, Path):
            handle = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, dir=self.temp_dir)
            handle.write(script)
            handle.close()
            script = Path(handle.name)
        env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{PORT}", "RAY_USAGE_STATS_ENABLED": "0",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
        return subprocess.run(self.command(sys.executable, str(script), *args), capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd)

    def ready(self) -> bool:
        status = subprocess.run(self.command(str(VENV_BIN / "ray"), "status", f"--address=127.0.0.1:{PORT}"),
                                capture_output=True, text=True, timeout=60)
        return status.returncode == 0

    def stop(self) -> None:
        """End the cluster: the head is PID 1 of its own PID namespace, so killing it ends every Ray process
        of this cluster and none of anybody else's (``ray stop`` would kill every Ray process on the machine)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_private_cluster(num_cpus: int = 2) -> PrivateRayCluster:
    """Start ``ray start --head --block`` inside ``unshare -n`` and wait until it answers."""
    temp_dir = tempfile.mkdtemp(prefix="rt_", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    head = (
        f"ip link set lo up && exec {VENV_BIN / 'ray'} start --head --block --node-ip-address=127.0.0.1 "
        f"--port={PORT} --num-cpus={num_cpus} --num-gpus=0 --include-dashboard=false --disable-usage-stats "
        f"--temp-dir={temp_dir}"
    )
    log = open(Path(temp_dir) / "head.log", "w")  # lives as long as the cluster
    process = subprocess.Popen(["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", head], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    cluster = PrivateRayCluster(process, temp_dir, num_cpus)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (Path(temp_dir) / "head.log").read_text()[-2000:]
            cluster.stop()
            raise RuntimeError(f"ray start exited with {process.returncode}:\n{text}")
        if cluster.ready():
            return cluster
        time.sleep(1.0)
    cluster.stop()
    raise RuntimeError(f"the Ray head did not answer within {START_SECONDS} s")


@pytest.fixture(scope="session")
def private_ray_cluster() -> Iterator[PrivateRayCluster]:
    """One real 2-CPU Ray cluster for the session, on loopback only (skipped with a reason where impossible)."""
    reason = _unavailable()
    if reason:
        skip_or_fail(reason)
    cluster = start_private_cluster(num_cpus=2)
    try:
        yield cluster
    finally:
        cluster.stop()
