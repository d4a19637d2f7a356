"""The ports servers of the tests listen on (tests/ports.py) and `scripts/cluster up --ports`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import ports
from processes import cluster_script

HERE = Path(__file__).resolve().parent


def test_blocks_are_consecutive_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    first, second = ports.free_ports(35), ports.free_ports(35)
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for block in (first, second):
        assert block == list(range(block[0], block[0] + 35))
        assert block[0] >= ports.LOWEST and block[-1] < low
    assert not set(first) & set(second)


def test_processes_at_once_get_disjoint_ports() -> None:
    code = "import ports; print(*[ports.free_port() for _ in range(50)], *ports.free_ports(20))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=HERE, stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    handed = [int(port) for proc in procs for port in proc.communicate(timeout=60)[0].split()]
    assert [proc.returncode for proc in procs] == [0] * 4
    assert len(handed) == 4 * 70 == len(set(handed))


def test_a_port_in_use_is_skipped() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        ports.free_port()
        next_up = int(ports.COUNTER.read_text())  # the next port handed out, unless another test takes it first
        listener.bind(("127.0.0.1", next_up))
        listener.listen()
        assert next_up not in ports.free_ports(3)


def test_cluster_up_refuses_a_port_range_it_cannot_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        busy = ports.free_port()
        listener.bind(("127.0.0.1", busy))
        listener.listen()
        for span, says in [
            ("20000", "give FIRST-LAST"),
            ("30000-20000", "give FIRST-LAST"),
            ("20000-20009", "the cluster needs 35 ports, that range has 10"),
            (f"{busy}-{busy + 40}", f"port {busy} is in use"),
        ]:
            up = cluster_script("up", "--dir", str(tmp_path / "cluster"), "--ports", span)
            assert (up.returncode, up.stdout) == (1, ""), up.stderr
            assert says in up.stderr
            assert not (tmp_path / "cluster" / "state.json").exists()
