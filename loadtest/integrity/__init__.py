"""Nothing lost under stress: messages written with a unique id and checksum, a ledger of what
the server acknowledged, and the audit that compares the two afterwards.

- :mod:`loadtest.integrity.message` (pure): building and recognising the test messages.
- :mod:`loadtest.integrity.ledger` (pure + file appends): the ledger entries, ``ledger.jsonl``.
- :mod:`loadtest.integrity.audit` (pure): comparing the ledger with what the mailboxes hold.
- :mod:`loadtest.integrity.reader` (sockets): reading the mailboxes over IMAP.
- :mod:`loadtest.integrity.cli` (entry point): ``cyrus-loadtest audit RUN``.

The Locust user is in :mod:`loadtest.integrity_user`.
"""
