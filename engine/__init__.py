"""Turning one segment into frames. Knows nothing of Ray, queues or jobs."""
