"""The collector agent: server-side collectors on the Cyrus host, served over HTTP
(`cyrus-loadtest agent`, loadtest.agent.server), and the load side's client that merges its
series into a run (loadtest.agent.client). ``discover`` and ``store`` are pure."""
