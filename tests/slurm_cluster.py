"""A real single-node SLURM on this machine, for the tests (a helper module, not a test file).

Debian's packages (slurmctld, slurmd, slurm-client, munge) install with their daemons stopped
where there is no systemd, so `start()` runs munged, slurmctld and slurmd itself, in the
foreground as its own child processes, with everything (config, key, sockets, state, logs) in
one folder and on free ports: it touches neither /etc/slurm nor a SLURM that may already run
here. Clients (sbatch, squeue, ... and the jobs) find this cluster through SLURM_CONF.
Whatever stops it from running raises `Unavailable`, whose message says what was missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
COMMANDS = (
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "srun",
    "squeue",
    "sinfo",
    "scontrol",
    "scancel",
)
# The daemons live in sbin, which a non-login PATH may lack.
SEARCH_PATH = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin"))
PARTITION = "debug"


class Unavailable(Exception):
    """SLURM cannot run here; the message says exactly why."""


def _which(command: str) -> str | None:
    return shutil.which(command, path=SEARCH_PATH)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as err:
        raise Unavailable(f"`{' '.join(command)}` did not finish within {timeout:.0f} s") from err


def ensure_installed(timeout: float = 900) -> None:
    """Install Debian's SLURM and munge packages when their commands are missing (root + apt)."""
    missing = [command for command in COMMANDS if _which(command) is None]
    if not missing:
        return
    what = f"SLURM is not installed (missing {', '.join(missing)})"
    if os.geteuid() != 0:
        raise Unavailable(f"{what} and installing it needs root (running as uid {os.geteuid()})")
    apt = _which("apt-get")
    if apt is None:
        raise Unavailable(f"{what} and there is no apt-get to install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    result = _run(install, timeout, env=env)
    if result.returncode != 0:  # stale or missing package lists: update once and retry
        _run([apt, "update", "-qq"], timeout, env=env)
        result = _run(install, timeout, env=env)
    if result.returncode != 0:
        raise Unavailable(
            f"{what} and `apt-get install {' '.join(PACKAGES)}` failed "
            f"(exit {result.returncode}):\n{_tail(result.stdout + result.stderr)}"
        )
    still = [command for command in COMMANDS if _which(command) is None]
    if still:
        raise Unavailable(f"after installing {' '.join(PACKAGES)}, still missing {still}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_hardware(timeout: float) -> dict[str, str]:
    """`slurmd -C`: this machine as SLURM sees it (NodeName, CPUs, ..., RealMemory)."""
    result = _run([_which("slurmd"), "-C"], timeout)
    if result.returncode != 0 or not result.stdout.startswith("NodeName="):
        raise Unavailable(f"`slurmd -C` failed (exit {result.returncode}): {_tail(result.stderr)}")
    line = result.stdout.splitlines()[0]
    return dict(item.split("=", 1) for item in line.split())


@dataclass
class Cluster:
    """A running cluster; `stop()` ends every job and daemon it started."""

    root: Path
    conf: Path
    node: str
    cpus: int
    memory_mb: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """What a client (and, since sbatch exports it, every job) needs to find this cluster."""
        bin_dir = str(self.root / "bin")  # the srun shim, see start()
        return {"SLURM_CONF": str(self.conf), "PATH": os.pathsep.join((bin_dir, SEARCH_PATH))}

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def command(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return _run([_which(args[0]) or args[0], *args[1:]], timeout, env=self._client_env())

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _start(self, name: str, command: list[str]) -> None:
        output = (self.root / "log" / f"{name}.out").open("w")
        self.processes[name] = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._client_env(),
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not the daemons
        )
        output.close()

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                output = (self.root / "log" / f"{name}.out").read_text(errors="replace")
                raise Unavailable(
                    f"{name} exited with code {process.returncode} on start:\n"
                    f"{_tail(output + self.log(name))}"
                )

    def _wait(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if ready():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {name}:\n{_tail(self.log(name))}" for name in self.processes)
                raise Unavailable(f"{what} within {timeout:.0f} s\n{logs}")
            time.sleep(0.5)

    def jobs(self) -> list[str]:
        """Ids of this cluster's jobs that slurmctld still knows (pending, running or ended)."""
        result = self.command("squeue", "--noheader", "--states=all", "--format=%i|%T")
        return [line for line in result.stdout.splitlines() if line.strip()]

    def stop(self, timeout: float = 30) -> None:
        """Cancel the jobs still running, then end the daemons by PID (TERM, then KILL)."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                self.command("scancel", "--full", f"--partition={PARTITION}", timeout=10)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    states = self.command("squeue", "--noheader", "--format=%T", timeout=10)
                    if states.returncode != 0 or not states.stdout.strip():
                        break
                    time.sleep(0.5)
            except Unavailable:
                pass  # the daemons go anyway
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)


def _slurm_conf(cluster: Cluster, hardware: dict[str, str], munge_socket: Path) -> str:
    root = cluster.root
    node_hardware = " ".join(
        f"{key}={hardware[key]}"
        for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        if key in hardware
    )
    return f"""\
# A throwaway single-node cluster for facetviz's tests (tests/slurm_cluster.py).
ClusterName=facetviz-test
SlurmctldHost={cluster.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
# Root runs everything: the daemons and the test's jobs.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (a container may not delegate them), no accounting database (so no sacct).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it a job without --mem gets the whole node's memory.
DefMemPerCPU=1024
# Ended jobs stay visible to `squeue --states=all` for this long: the executor's status check.
MinJobAge=600
ReturnToService=2
SchedulerParameters=sched_interval=2
# The node's memory is the larger of this machine's and the profile's largest request, so the
# profile's requests fit on a small machine too; it is not enforced (no cgroups).
SlurmdParameters=config_overrides
# A fake GPU (gres.conf), so that a rule with `resources: gpu=1` (sbatch --gpus=1) is accepted.
GresTypes=gpu
NodeName={cluster.node} NodeAddr=127.0.0.1 {node_hardware} RealMemory={cluster.memory_mb} \
Gres=gpu:1 State=UNKNOWN
PartitionName={PARTITION} Nodes={cluster.node} Default=YES MaxTime=INFINITE State=UP
"""


def start(root: Path, min_memory_mb: int = 0, timeout: float = 60) -> Cluster:
    """Install SLURM if needed and start a single-node cluster under `root`; it is idle on return.

    `min_memory_mb`: the node offers at least this much memory (see SlurmdParameters above).
    """
    ensure_installed()
    hardware = _node_hardware(timeout)
    for folder in ("state", "spool", "log", "munge"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        root=root,
        conf=root / "slurm.conf",
        node=hardware["NodeName"],
        cpus=int(hardware["CPUs"]),
        memory_mb=max(int(hardware["RealMemory"]), min_memory_mb),
    )
    munge = root / "munge"
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)  # munged refuses a key that others can read
    munge_socket = munge / "munge.socket"
    cluster.conf.write_text(_slurm_conf(cluster, hardware, munge_socket))
    (root / "gres.conf").write_text(f"NodeName={cluster.node} Name=gpu File=/dev/null\n")
    # A job's snakemake runs its step with srun but drops SLURM_* variables from srun's
    # environment (snakemake-executor-plugin-slurm-jobstep 0.6), SLURM_CONF included. A real
    # cluster's srun finds /etc/slurm/slurm.conf; this one's finds SLURM_CONF again through
    # this shim, first on the PATH that the jobs inherit.
    shim = root / "bin" / "srun"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nSLURM_CONF="{cluster.conf}" exec "{_which("srun")}" "$@"\n')
    shim.chmod(0o755)
    try:
        cluster._start(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",  # as root, and with the socket in a test's temp folder
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
        )
        cluster._wait("munged did not open its socket", munge_socket.exists, timeout)
        cluster._start("slurmctld", [_which("slurmctld"), "-D", "-f", str(cluster.conf)])
        cluster._wait(
            "slurmctld did not answer `scontrol ping`",
            lambda: "UP" in cluster.command("scontrol", "ping").stdout,
            timeout,
        )
        cluster._start(
            "slurmd", [_which("slurmd"), "-D", "-f", str(cluster.conf), "-N", cluster.node]
        )

        def node_idle() -> bool:
            state = cluster.command("sinfo", "--noheader", "--Node", "--format=%t").stdout
            return state.strip() == "idle"

        cluster._wait(f"node {cluster.node} did not become idle", node_idle, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
