"""`sakuga studio`: the API and the pages served by uvicorn over one farm — an embedded one
on a local Ray, driven by a thread here, or the cluster's farm service."""
from __future__ import annotations

import getpass
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from farm.access.users import User, UserStore, check_name
from storyboard.errors import InputError

from .identity import Identities
from .studio import create_studio

logger = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def identities_for(host: str, users: UserStore) -> Identities:
    """On the loopback with nobody signed up, the local user (admin of their own farm); anywhere else, only
    the farm's users, each with their token."""
    if users.list():
        return Identities(users, None)
    if host not in LOOPBACK:
        raise InputError.single("--host", f"serving on {host} needs a sign-in: add a user first "
                                          "(`sakuga users add NAME`), or bind to 127.0.0.1")
    return Identities(users, User(check_name(getpass.getuser(), "user"), admin=True))


def _drive(farm, stop: threading.Event | None = None) -> None:
    """The embedded farm's loop, on a thread of its own (requests call in under its lock), until `stop`."""
    while stop is None or not stop.is_set():
        try:
            if not farm.step(max_wait=0.2):
                time.sleep(0.2)
        except Exception:   # noqa: BLE001 - a bad round must not stop the studio; faults end jobs in the loop
            logger.exception("farm loop")
            time.sleep(1.0)


@contextmanager
def in_background(app, farm) -> Iterator[str]:
    """The studio `app` on a free loopback port and `farm`'s loop, each on a thread, for as long as the
    block runs (screenshots, browser tests); yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    stop = threading.Event()
    threads = [threading.Thread(target=server.run, daemon=True),
               threading.Thread(target=_drive, args=(farm, stop), daemon=True)]
    for t in threads:
        t.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        server.should_exit = True
        for t in threads:
            t.join(10)


def serve(*, root: Path, host: str, port: int, address: str | None, gpus: int) -> None:
    import uvicorn

    identities = identities_for(host, UserStore())
    if not root.is_dir():
        raise InputError.single("--root", f"{root} is not a folder")
    if address:
        from farm.cluster.remote import ServiceFarm
        from farm.workers.connect import connect

        connect(address=address)
        farm = ServiceFarm()
    else:
        from farm.api.embedded import local_farm
        from farm.job.cache import SegmentCache, default_cache_dir

        farm = local_farm(gpus, cache=SegmentCache(default_cache_dir()))
        threading.Thread(target=_drive, args=(farm,), name="farm-loop", daemon=True).start()
    app = create_studio(farm, root=root.resolve(), identities=identities)
    logger.info("sakuga studio on http://%s:%d (storyboards from %s)", host, port, root)
    uvicorn.run(app, host=host, port=port, log_level="warning")
