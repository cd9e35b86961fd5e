import random
import socket
from pathlib import Path

# Ports are chosen below the kernel's ephemeral range: a port from that range (what
# binding port 0 hands out) can be taken by any outgoing connection on the machine
# between the choice and the service binding it ("address already in use"); outside
# it, only another listener can take it.
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def _below_ephemeral() -> tuple[int, int]:
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low <= 11024:  # an unusual range: keep to ports most systems leave free
        return 20000, 29999
    return low - 12000, low - 1


def free_port() -> int:
    """A TCP port nobody listens on right now (aiosmtpd refuses port 0), not handed out
    before by this process."""
    low, high = _below_ephemeral()
    for _ in range(200):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port between {low} and {high}")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0
