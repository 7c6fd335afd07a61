"""``cyrus-loadtest audit RUN [--deployment D]``: audit a run's ledger against the mailboxes,
and :func:`audit_at_end`, the same audit when the run ends (before the gate).

Exit codes: 0 clean, 1 problems (each named on stdout), 2 usage, 3 incomplete (a mailbox could
not be read: a connection or login failed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.core.credentials import Credential
from loadtest.errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, UsageError
from loadtest.imap.transport import Target
from loadtest.integrity.audit import PROBLEM_KINDS, AuditResult, audit
from loadtest.integrity.ledger import LEDGER_FILE, MailboxLedger, fold, read_ledger
from loadtest.integrity.reader import read_mailboxes

AUDIT_FILE = "audit.json"
SIGNAL_PREFIX = "integrity_"  # series signals integrity_checked, integrity_lost, ...
SHOWN_PROBLEMS = 50


def run_audit(entries: list[dict[str, Any]], credentials: list[Credential],
              targets: dict[str | None, Target], with_seeds: bool) -> AuditResult:
    """Fold the ledger, read its mailboxes (each as its own user) and compare."""
    from loadtest.deploy.provision import seed_messages

    boxes = fold(entries)
    by_user = {c.username: c for c in credentials}

    def target_of(box: MailboxLedger) -> Target:
        return targets.get(box.instance) or Target(box.host, box.port, box.instance)

    views, seeds = read_mailboxes(boxes.values(), lambda _instance, user: by_user.get(user),
                                  seed_messages if with_seeds else None, target_of)
    return audit(boxes, views, seeds)


def exit_code(result: AuditResult) -> int:
    return {"clean": EXIT_PASS, "problems": EXIT_FAIL, "incomplete": EXIT_INCONCLUSIVE}[result.status]


def print_result(result: AuditResult, out: Callable[[str], None] = print) -> None:
    counts = result.counts()
    out(f"integrity audit: {counts['checked']} messages checked in {result.mailboxes} mailboxes, "
        + ", ".join(f"{counts[k]} {k}" for k in PROBLEM_KINDS) + f": {result.status}")
    for p in result.problems[:SHOWN_PROBLEMS]:
        out(f"  {p.describe()}")
    if len(result.problems) > SHOWN_PROBLEMS:
        out(f"  ... and {len(result.problems) - SHOWN_PROBLEMS} more (see {AUDIT_FILE})")
    for reason in result.incomplete:
        out(f"  not read: {reason}")


def record_samples(store: Any, result: AuditResult) -> None:
    """The gate's integrity metrics: one sample per count. An incomplete audit without problems
    writes null samples (labels.why), so rules on it are inconclusive rather than clean."""
    incomplete = result.status == "incomplete"
    for name, value in result.counts().items():
        if incomplete and name != "checked":
            store.add(SIGNAL_PREFIX + name, None, why="audit incomplete")
        else:
            store.add(SIGNAL_PREFIX + name, value)


def audit_at_end(entries: list[dict[str, Any]], imap_config: Any, folder: Path, store: Any) -> AuditResult:
    """The audit when the run ends: credentials and targets of the run's own configuration."""
    credentials = [c for _, c in imap_config.slots if c is not None]
    targets = {t.instance: t for t, _ in imap_config.slots}
    try:
        result = run_audit(entries, credentials, targets, with_seeds=bool(imap_config.instances))
    except Exception as exc:  # the run's verdict must still be written
        result = AuditResult(incomplete=[f"audit failed: {exc.__class__.__name__}: {exc}"])
    (Path(folder) / AUDIT_FILE).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    record_samples(store, result)
    print_result(result, lambda line: print(f"cyrus-loadtest: {line}", file=sys.stderr, flush=True))
    return result


# -- the subcommand ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", metavar="RUN", help="a run's artifacts folder (with ledger.jsonl)")
    parser.add_argument("--deployment", metavar="D",
                        help="deployment.json (or its directory) whose users file has the "
                             "passwords (default: env LOADTEST_DEPLOYMENT, then the default "
                             "location)")
    parser.add_argument("--users-file", metavar="FILE",
                        help="CSV username,password[,instance] instead of a deployment's "
                             "(a target that is not a deployment of ours; no seed check)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON here")


def run(args: argparse.Namespace) -> int:
    from loadtest.core.credentials import read_users_file
    from loadtest.deploy.deployment import load_deployment

    folder = Path(args.run_folder)
    if not folder.is_dir():
        raise UsageError(f"run folder {folder} (from argument RUN) does not exist")
    try:
        entries = read_ledger(folder)
    except FileNotFoundError:
        raise UsageError(f"run folder {folder} has no {LEDGER_FILE}: the run had no integrity "
                         "user") from None
    targets: dict[str | None, Target] = {}
    if args.users_file:
        credentials = read_users_file(args.users_file, "flag --users-file")
        with_seeds = False
    else:
        source = "flag --deployment" if args.deployment else "default deployment"
        deployment = load_deployment(args.deployment, source)
        credentials = read_users_file(deployment.users_file, str(deployment.path))
        targets = {i.name: Target(i.host, i.port, i.name) for i in deployment.instances}
        with_seeds = True
    result = run_audit(entries, credentials, targets, with_seeds)
    print_result(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return exit_code(result)
