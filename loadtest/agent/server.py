"""`cyrus-loadtest agent`: the server-side collectors on the Cyrus host, over HTTP.

    GET /metrics               Prometheus text: latest value of every signal (any Prometheus can
                               scrape it)
    GET /series?since=CURSOR   JSON for the load side: {"now": agent time, "cursor": next cursor,
                               "samples": [...], "events": [...]}; ``since`` omitted = only the
                               current cursor; ``events_since=T`` = events open or touched since T

Read-only towards Cyrus: it reads /proc, master's stats file and the log file, and writes only
its own canary files (created and removed in the partition and proc directories). Anything
but a loopback bind address needs --token-file (bearer token, compared in constant time).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loadtest.agent.discover import discover
from loadtest.agent.logerrors import LogErrorSampler
from loadtest.agent.store import RingStore, prometheus_text, series_payload
from loadtest.collectors import CollectorConfig, CollectorSet
from loadtest.core.signals import AGENT_COLLECTORS
from loadtest.errors import UsageError

log = logging.getLogger("loadtest.agent")
DEFAULT_PORT = 9143


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS",
                        help="address to listen on (default 127.0.0.1; anything else needs "
                        "--token-file)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="file holding the bearer token clients must send")
    parser.add_argument("--imapd-conf", metavar="FILE", help="Cyrus's imapd.conf "
                        "(default: master's -C, else /etc/imapd.conf)")
    parser.add_argument("--cyrus-conf", metavar="FILE", help="Cyrus's cyrus.conf "
                        "(default: master's -M, else /etc/cyrus.conf)")
    parser.add_argument("--master-pid", type=int, metavar="PID",
                        help="a running master: its command line gives -C, -M, -p and -l")
    parser.add_argument("--pid-file", metavar="FILE", help="master's pid file (default: "
                        "master's -p, imapd.conf master_pid_file, else /run/cyrus-master.pid)")
    parser.add_argument("--name", help="instance name in the series (default: servername)")
    parser.add_argument("--log-file", metavar="FILE",
                        help="syslog file with Cyrus's lines: count IOERROR/DBERROR/fatal")
    parser.add_argument("--log-prefix", metavar="TEXT", help="count only lines containing "
                        "this (default: imapd.conf syslog_prefix, else 'cyrus/')")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between samples (default 1)")
    parser.add_argument("--collectors", default=",".join(AGENT_COLLECTORS),
                        help=f"which collectors (default {','.join(AGENT_COLLECTORS)})")


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def read_token(path: str, source: str) -> str:
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read token file {path} ({source}): {exc.strerror}") from None
    if st.st_mode & 0o077:
        raise UsageError(f"token file {path} ({source}) is readable by others: chmod 600 it")
    if len(token) < 16:
        raise UsageError(f"token file {path} ({source}): token shorter than 16 characters")
    return token


class Agent:
    """The collectors and the HTTP server; ``start`` returns at once, ``stop`` ends both."""

    def __init__(self, args: argparse.Namespace) -> None:
        if not is_loopback(args.bind) and not args.token_file:
            raise UsageError(f"--bind {args.bind} is not loopback: give --token-file")
        self.token = read_token(args.token_file, "flag --token-file") if args.token_file else None
        prefix_given = args.log_prefix
        self.target, imapd = discover(imapd_conf=args.imapd_conf, cyrus_conf=args.cyrus_conf,
                               master_pid=args.master_pid, pid_file=args.pid_file, name=args.name)
        config = CollectorConfig().updated({"collectors": args.collectors,
                                            "interval": args.interval}, "agent flags")
        if "probe" in config.collectors:
            raise UsageError("--collectors: the probe runs on the load side, not in the agent")
        self.store = RingStore(self.target.name)
        self.collectors = CollectorSet([self.target], self.store, config)
        if args.log_file:
            prefix = prefix_given or imapd.get("syslog_prefix") or "cyrus/"
            self.collectors.samplers.append(
                LogErrorSampler(self.collectors.ctx, self.target.name, args.log_file, prefix))
        self.window_s = max(5.0, 3 * config.interval)
        self.server = ThreadingHTTPServer((args.bind, args.port), self._handler())
        self.server.daemon_threads = True

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.collectors.start()
        threading.Thread(target=self.server.serve_forever, name="agent-http",
                         daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.collectors.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "cyrus-loadtest-agent"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.client_address[0], *args)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if not agent.authorised(self.headers.get("Authorization", "")):
                    self._send(401, b"bearer token required\n", "text/plain",
                               {"WWW-Authenticate": "Bearer"})
                    return
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                try:
                    if url.path == "/metrics":
                        self._send(200, prometheus_text(agent.store, agent.window_s),
                                   "text/plain; version=0.0.4; charset=utf-8")
                    elif url.path == "/series":
                        since = _number(query, "since", int)
                        events_since = _number(query, "events_since", float)
                        body = json.dumps(series_payload(agent.store, since, events_since,
                                                         agent.target.name),
                                          separators=(",", ":")).encode()
                        self._send(200, body, "application/json")
                    else:
                        self._send(404, b"try /metrics or /series\n", "text/plain")
                except ValueError as exc:
                    self._send(400, f"{exc}\n".encode(), "text/plain")

            def _send(self, code: int, body: bytes, ctype: str,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def authorised(self, header: str) -> bool:
        if self.token is None:
            return True
        return hmac.compare_digest(header.encode(), f"Bearer {self.token}".encode())


def _number(query: dict[str, list[str]], key: str, kind: Any) -> Any:
    if key not in query:
        return None
    raw = query[key][-1]
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"bad value {raw!r} for {key}") from None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    agent = Agent(args)
    agent.start()
    host, port = agent.address
    t = agent.target
    print(f"cyrus-loadtest agent: serving http://{host}:{port}/metrics and /series for "
          f"{t.name} (port {t.port}, pid file {t.pid_file}, stats {t.stats_file})", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    agent.stop()
    return 0
