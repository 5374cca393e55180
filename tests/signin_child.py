"""Runs the ztwizard CLI in this process for tests/test_signin.py, optionally with the loopback of
a fresh network namespace brought up (`unshare -n` starts with it down) and with identity
endpoints that accept connections and never answer.

    python signin_child.py [--loopback] [--silent NAME=URL_WITH_{port}]... -- ZTWIZARD_ARGS…

`--silent IDENTITY_ENDPOINT=http://127.0.0.1:{port}/msi/token` starts one silent socket on
127.0.0.1 and sets NAME to the URL with its port."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys
import threading

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def silent_endpoint() -> int:
    """A listening socket that accepts every connection and never reads or answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            held.append(conn)  # kept open: the client waits for an answer that never comes

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1])


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    options, args = argv[:sep], argv[sep + 1:]
    port = None
    i = 0
    while i < len(options):
        if options[i] == "--loopback":
            loopback_up()
        elif options[i] == "--silent":
            i += 1
            name, _, template = options[i].partition("=")
            port = port or silent_endpoint()
            os.environ[name] = template.format(port=port)
        i += 1
    from ztwizard.cli import main as ztwizard

    return ztwizard(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
