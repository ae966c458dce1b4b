import pytest


@pytest.fixture(scope="session")
def ray_cluster(sakuga_cache):
    """One local Ray per test session, with 8 logical GPUs on the CPU."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, num_gpus=8, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()
