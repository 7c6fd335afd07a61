"""`cyrus-loadtest bench`: what the load generator itself costs (CPU, memory, lateness).

- :mod:`loadtest.bench.responder`: a minimal IMAP responder, run in a process of its own so
  that only the generator is measured.
- :mod:`loadtest.bench.generator`: one measurement in a process of its own: Locust's
  Environment and LocalRunner with the project's users, CPU from getrusage over a window.
- :mod:`loadtest.bench.figures`: pure: figures, methods and targets from raw measurements.
- :mod:`loadtest.bench.cli`: the subcommand that runs them all and prints a table and JSON.
"""
