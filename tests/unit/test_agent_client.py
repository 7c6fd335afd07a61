"""The load side of the agent against a stand-in HTTP agent whose clock runs 100 s ahead: samples
land at our time (offset measured and corrected), events are merged once and closed, a token is
sent, and an agent that disappears becomes a collector gap, not an exception."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loadtest.agent.client import AgentSampler, best_offset, check_agent_url
from loadtest.collectors import CollectorConfig, CollectorSet, SeriesStore
from loadtest.errors import UsageError

AHEAD_S = 100.0


class FakeAgent(BaseHTTPRequestHandler):
    seen_auth: list[str] = []
    gap_end: float | None = None

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        FakeAgent.seen_auth.append(self.headers.get("Authorization", ""))
        now = time.time() + AHEAD_S
        body = json.dumps({
            "now": now, "instance": "mail", "cursor": 1,
            "samples": [{"t": now - 0.5, "signal": "ready_workers", "instance": "mail",
                         "value": 2.0, "labels": {"service": "imap"}}],
            "events": [{"id": 7, "t": now - 3, "end": FakeAgent.gap_end, "kind": "heartbeat_gap",
                        "instance": "mail", "detail": {"master_stall": True}}],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def agent_url() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAgent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.server_close()


def test_offset_corrected_events_merged_and_gap_when_gone(agent_url: tuple[str, Any]) -> None:
    url, server = agent_url
    store = SeriesStore()
    collectors = CollectorSet([], store, CollectorConfig(collectors=("machine",)))
    sampler = AgentSampler(collectors.ctx, "127.0.0.1:143", url, "secret-token")
    sampler._run(time.time())
    (ready,) = store.samples("ready_workers")
    assert ready.instance == "127.0.0.1:143" and ready.labels == {"service": "imap"}
    assert abs(ready.t - (time.time() - 0.5)) < 0.5  # not 100 s in the future
    assert sampler.offset == pytest.approx(AHEAD_S, abs=0.5)
    assert FakeAgent.seen_auth[-1] == "Bearer secret-token"
    (gap,) = store.events("heartbeat_gap")
    assert gap.end is None and gap.detail["source"] == "agent"
    FakeAgent.gap_end = time.time() + AHEAD_S - 1
    sampler._run(time.time())
    sampler._run(time.time())
    (gap,) = store.events("heartbeat_gap")  # still one: updated, not added again
    assert gap.end is not None and abs(gap.end - (time.time() - 1)) < 0.5

    server.shutdown()
    server.server_close()
    sampler._run(time.time())
    (lost,) = store.events("collector_gap")
    assert lost.detail["collector"] == "agent" and "unreachable" in lost.detail["why"]
    collectors.runtime.close()


def test_best_offset_prefers_shortest_round_trip() -> None:
    polls = [(0.0, 2.0, 11.5), (10.0, 10.2, 20.2), (20.0, 21.0, 30.0)]
    assert best_offset(polls) == pytest.approx((10.1, 0.2))


def test_agent_url_must_be_http() -> None:
    with pytest.raises(UsageError, match="bad value 'ftp://x' for --agent-url \\(from flag\\)"):
        check_agent_url("ftp://x", "from flag")


def test_log_error_sampler_counts_new_lines_across_rotation(tmp_path: Any) -> None:
    from loadtest.agent.logerrors import LogErrorSampler

    log = tmp_path / "mail.log"
    log.write_text("old: cyrus/imap[1]: IOERROR: before the agent started\n")
    store = SeriesStore()
    collectors = CollectorSet([], store, CollectorConfig(collectors=("machine",)))
    sampler = LogErrorSampler(collectors.ctx, "mail", str(log), "cyrus/")
    sampler._run(1.0)  # starts at the end of the file
    with log.open("a") as fh:
        fh.write("x cyrus/imap[2]: IOERROR: fsync failed\nx cyrus/lmtp[3]: DBERROR: db5\n"
                 "x postfix/smtpd[4]: IOERROR: not Cyrus\nx cyrus/imap[5]: Fatal error: half")
    sampler._run(2.0)  # the unterminated last line waits for its end
    log.rename(tmp_path / "mail.log.1")
    log.write_text(" line\nx cyrus/imap[6]: IOERROR: after rotation\n")
    sampler._run(3.0)

    def totals(t: float) -> dict[str, float | None]:
        return {s.labels["kind"]: s.value for s in store.samples("log_errors_total") if s.t == t}

    assert totals(2.0) == {"IOERROR": 1, "DBERROR": 1, "fatal": 0}
    assert totals(3.0) == {"IOERROR": 2, "DBERROR": 1, "fatal": 0}
    log.unlink()
    sampler._run(4.0)
    (gap,) = store.events("collector_gap")
    assert "cannot read log file" in gap.detail["why"]
    collectors.runtime.close()
