"""cyrus-loadtest: load generation and stress testing for Cyrus IMAP deployments."""

__version__ = "0.1.0"

# Artifacts and deployment.json carry this; readers refuse other versions with a clear error.
FORMAT_VERSION = 1
