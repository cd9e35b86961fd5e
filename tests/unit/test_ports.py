"""Ports for the processes the dev stack and the tests start."""

from __future__ import annotations

import socket
from pathlib import Path

from lotse_devstack.ports import free_port


def test_free_ports_lie_below_the_ephemeral_range_and_are_not_handed_out_twice() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(1024 < p < low for p in ports)  # no outgoing connection can take them
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # and they were free
