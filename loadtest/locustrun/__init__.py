"""A run under Locust, by concern; `loadtest.plugin` wires these to Locust's events.

- `options`: the declared options on Locust's parser, their sources, the web UI form's check,
- `assembly`: what the options configure (collectors, remote target, baseline, agent, faults)
  and the `loadtest.run.Run` built from them at init,
- `workers`: step statistics from the workers to the master, the phase from the master,
- `lifecycle`: a run's start, stop and end (gate, measurements, Locust's stats as CSV and HTML),
- `controller`: `RunController`, one environment's state, registered on it.
"""
