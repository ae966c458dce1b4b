"""Auth on by default: the client asks the cluster's Job API without a token first, and refuses a
cluster that answers (anyone who reaches it could run code there) unless --insecure. Tested against
small HTTP servers on the loopback standing in for a dashboard with and without token auth; the real
head of test_cluster.py enforces auth, and every command there goes through the same check."""
from __future__ import annotations

import http.server
import threading

import pytest

from farm.cluster.client import require_token_auth
from farm.cluster.errors import ClusterError


def serve(status: int):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def open_cluster():
    server, url = serve(200)
    yield url
    server.shutdown()


@pytest.fixture
def guarded_cluster():
    server, url = serve(401)
    yield url
    server.shutdown()


def test_a_cluster_without_token_auth_is_refused_unless_insecure(open_cluster, sakuga):
    with pytest.raises(ClusterError, match="does not require a token"):
        require_token_auth(open_cluster)
    for args in (["jobs"], ["logs", "some-job"], ["cancel", "some-job"], ["status", "some-job"]):
        result = sakuga(*args, "--address", open_cluster)
        assert result.exit_code == 1 and "does not require a token" in result.stderr and "--insecure" in result.stderr
    anyway = sakuga("jobs", "--address", open_cluster, "--insecure")
    assert "does not require a token" not in anyway.stderr


def test_a_cluster_that_asks_for_a_token_passes_the_check(guarded_cluster):
    require_token_auth(guarded_cluster)


def test_an_unreachable_cluster_is_one_line_not_a_traceback(sakuga):
    result = sakuga("jobs", "--address", "http://127.0.0.1:9")
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot use the Ray cluster at")


class ProbeCluster:
    """The Job API as `check_runtime` uses it, for a cluster whose nodes answer `sakuga version` with
    `logs` and `status` (the real head of test_cluster.py answers the passing case for real)."""

    def __init__(self, status: str, logs: str):
        self.status, self.logs, self.submitted = status, logs, []

    def submit_job(self, **kwargs):
        self.submitted.append(kwargs)
        return "probe-1"

    def get_job_status(self, job):
        return self.status

    def get_job_logs(self, job):
        return self.logs


def test_submit_refuses_a_cluster_without_sakuga_or_with_another_version_saying_how_to_fix_it():
    from farm.cluster import client as cluster_client

    ours = cluster_client.sakuga_version()
    missing = ProbeCluster("FAILED", "/bin/sh: 1: sakuga: not found\n")
    with pytest.raises(ClusterError, match=f"cannot run sakuga .*sakuga: not found.*install sakuga=={ours}"):
        cluster_client.check_runtime(missing, "http://a")
    older = ProbeCluster("SUCCEEDED", "0.0.1\n")
    with pytest.raises(ClusterError, match=f"runs sakuga 0.0.1, this is sakuga {ours}"):
        cluster_client.check_runtime(older, "http://b")
    same = ProbeCluster("SUCCEEDED", f"{ours}\n")
    cluster_client.check_runtime(same, "http://c")
    cluster_client.check_runtime(same, "http://c")           # asked once per cluster
    assert len(same.submitted) == 1 and same.submitted[0]["entrypoint"] == "sakuga version"
    assert "sakuga-probe" in same.submitted[0]["metadata"]   # not listed by `sakuga jobs`
