"""Ways to find an address of this machine that workers can reach (as ``parsl.addresses``)."""

from __future__ import annotations

import socket


def address_by_hostname() -> str:
    """This machine's fully qualified host name."""
    return socket.getfqdn()


def address_by_route(target: str = "8.8.8.8") -> str:
    """The local IP address the kernel would use to reach ``target``.

    Connecting a UDP socket sends nothing; it only asks the routing table. Falls back to the
    loopback address on a machine without a route.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((target, 80))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def address_by_interface(ifname: str) -> str:
    """The IPv4 address of network interface ``ifname`` (Linux)."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", ifname[:15].encode()))
        except OSError as e:
            raise ValueError(f"no IPv4 address for interface {ifname!r}: {e}") from None
    return socket.inet_ntoa(packed[20:24])


def get_all_addresses() -> set[str]:
    """Every address above that could be found."""
    found = {address_by_hostname(), address_by_route()}
    try:
        found.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    return found
