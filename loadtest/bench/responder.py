"""A minimal IMAP responder for the benchmark: answers just enough IMAP4rev1, as cheaply as it
can, in a process of its own (asyncio protocol callbacks, no per-connection task or thread), so
the generator's figures are the generator's. Not a test double for behaviour (that is
``loadtest.imap.testing``): it never misbehaves and accepts any LOGIN.

    python -m loadtest.bench.responder [--port 0]   # prints the port; stops at stdin EOF
                                                    # (when a pipe) or after --max-seconds

Loopback only. It raises its own RLIMIT_NOFILE to the hard limit, so it can hold as many
connections as the generator opens (see ``raise_nofile``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import resource
import socket
import stat
import sys
import threading
from typing import cast

GREETING = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE IDLE AUTH=PLAIN SASL-IR] bench responder ready\r\n"
_UNTAGGED = {
    b"CAPABILITY": b"* CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE IDLE AUTH=PLAIN SASL-IR\r\n",
    b"LIST": b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
    b"SELECT": b"* 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n",
    b"EXAMINE": b"* 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n",
    b"STATUS": b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1 UNSEEN 0)\r\n",
}
_DONE = b" OK Completed\r\n"


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def answer(line: bytes) -> tuple[bytes, bool]:
    """The response to one command line (without CRLF), and whether to close afterwards."""
    tag, _, rest = line.partition(b" ")
    name = rest.split(b" ", 1)[0].upper()
    if name == b"UID":
        name = rest.split(b" ", 2)[1].upper() if rest.count(b" ") else name
    if name == b"LOGOUT":
        return b"* BYE bye\r\n" + tag + _DONE, True
    if name == b"IDLE":
        return b"+ idling\r\n", False
    return _UNTAGGED.get(name, b"") + tag + _DONE, False


class ImapResponder(asyncio.Protocol):
    __slots__ = ("transport", "buffer", "idle_tag")

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's transports are
        self.transport = transport
        self.buffer = b""
        self.idle_tag: bytes | None = None
        transport.write(GREETING)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = b""
        close = False
        while True:
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            line, buffer = buffer[:end], buffer[end + 2 :]
            if self.idle_tag is not None:
                if line.upper() == b"DONE":
                    out += self.idle_tag + _DONE
                    self.idle_tag = None
                continue
            response, close = answer(line)
            if response.startswith(b"+ idling"):
                self.idle_tag = line.partition(b" ")[0]
            out += response
            if close:
                break
        self.buffer = buffer
        if out:
            self.transport.write(out)
        if close:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.buffer = b""


async def serve(port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    server = await loop.create_server(ImapResponder, sock=sock, backlog=4096)
    print(sock.getsockname()[1], flush=True)
    done = loop.create_future()
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        # The parent holds the other end of our stdin: its EOF (or the parent's death) stops us.
        def watch_stdin() -> None:
            while cast(io.BufferedReader, sys.stdin.buffer).read1(4096):
                pass
            loop.call_soon_threadsafe(lambda: None if done.done() else done.set_result(None))

        threading.Thread(target=watch_stdin, daemon=True).start()
    async with server:
        await asyncio.wait_for(done, max_seconds) if max_seconds else await done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="stop after this long whatever happens (default 900)")
    args = parser.parse_args(argv)
    raise_nofile()
    with contextlib.suppress(TimeoutError, KeyboardInterrupt):
        asyncio.run(serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
