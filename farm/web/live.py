"""`GET /api/events`: the signed-in user's jobs' events as server-sent events, one `data: {JobEvent}`
each. The farm is polled server-side (`FarmAPI.events(job, since)`: a cursor per job, counted from the
job's start), so a farm service on the cluster streams the same way as the embedded one."""
from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from .api import Mine

POLL_S = 0.25
KEEPALIVE_S = 15.0
router = APIRouter(prefix="/api")


def _poll(farm, cursors: dict[str, int], replay: bool) -> list[str]:
    """The events since each job's cursor; a job first seen starts at its end unless `replay`."""
    out = []
    for summary in farm.jobs():
        start = cursors.get(summary.id)
        events = farm.farm.events(summary.id, start or 0)   # already checked: these are the user's jobs
        if start is None and not replay:
            cursors[summary.id] = len(events)
            continue
        cursors[summary.id] = (start or 0) + len(events)
        out.extend(json.dumps(e.to_json()) for e in events)
    return out


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, farm: Mine, since: int | None = None) -> StreamingResponse:
    """`?since=0` replays every event the farm still holds (any value does: cursors are per job); by
    default the stream starts now (a page renders the present state, then follows it)."""
    cursors: dict[str, int] = {}
    if since is None:
        await run_in_threadpool(_poll, farm, cursors, False)   # the present: only what happens from now is sent

    async def stream():
        quiet = time.monotonic()
        yield ": connected\n\n"
        while not await request.is_disconnected():
            batch = await run_in_threadpool(_poll, farm, cursors, True)
            if batch:
                quiet = time.monotonic()
                yield "".join(f"data: {line}\n\n" for line in batch)
            elif time.monotonic() - quiet > KEEPALIVE_S:
                quiet = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
