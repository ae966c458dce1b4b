"""The cluster's one error kind, importable without Ray (the CLI turns it into exit 1)."""


class ClusterError(RuntimeError):
    """The cluster could not be reached or refused a request (exit 1, not an input error)."""
