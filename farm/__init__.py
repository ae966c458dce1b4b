"""Running plans on a cluster: scheduling, Ray runtime, ledger, delivery, CLI."""
