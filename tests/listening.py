"""Which addresses a process tree listens on (psutil), for the loopback-only tests."""

from __future__ import annotations

import ipaddress
import socket

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and every process it started (recursively) that is still alive."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def listening_sockets(pid: int) -> list[tuple[str, str, int]]:
    """``(process name, ip, port)`` of every listening TCP socket and bound, unconnected UDP
    socket of the process tree of ``pid``."""
    found = []
    for proc in process_tree(pid):
        try:
            name = proc.name()
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for conn in conns:
            tcp_listen = conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN
            udp_bound = conn.type == socket.SOCK_DGRAM and not conn.raddr
            if tcp_listen or udp_bound:
                found.append((name, conn.laddr.ip, conn.laddr.port))
    return found


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback
