"""The web UI over seeded runs: some waiting, some completed, one paused, two cancelled.

The port of luno/workflow's ``_examples/webui``. ``seed(url)`` runs a parcel workflow on a
SQLite file until its runs rest; ``conveyor.web.create_app(store, token=...)`` is the UI at
``/`` and the JSON API at ``/api``, to mount in any ASGI server. Run it with::

    pip install 'conveyor[web]'
    python examples/web_ui.py                # seeds a file in a temp folder, prints the runs
    python examples/web_ui.py --serve        # seeds ./web_ui.db and serves it on :8000

or seed once and serve with the command line: ``conveyor ui --store sqlite:///web_ui.db``.
One run is cancelled while still Initiated: the RunState table has no edge from Initiated
to Cancelled, so it is paused first, then cancelled.
"""

import asyncio
import enum
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import conveyor
from conveyor import Builder, Run, RunState
from conveyor.web import create_app, new_token


class Parcel(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 1
    PACKED = 2
    SHIPPED = 3


@dataclass
class Contents:
    item: str = ""
    weight_kg: float = 1.0


async def pack(run: Run[Contents, Parcel]) -> Parcel:
    return Parcel.PACKED


def courier(run: Run[Contents, Parcel], payload: bytes) -> Parcel:
    return Parcel.SHIPPED


def builder() -> Builder[Contents, Parcel]:
    b = Builder("parcels", Contents, Parcel)
    b.add_step(Parcel.PLACED, pack, Parcel.PACKED)
    b.add_callback(Parcel.PACKED, courier, Parcel.SHIPPED)
    return b


ITEMS = ["teapot", "kettle", "lamp", "rug", "chair", "desk"]


async def seed(url: str) -> dict[str, RunState]:
    """Runs that end shipped, waiting for the courier, paused and cancelled; returns
    each run's ID and run state."""
    out: dict[str, RunState] = {}
    async with conveyor.connect(url) as backend:
        wf = builder().build(
            backend.streamer, backend.record_store, backend.role_scheduler, pause_retry=None
        )
        async with wf, asyncio.timeout(30):
            ids = {}
            for n, item in enumerate(ITEMS):
                ids[item] = await wf.trigger(f"parcel-{n}", initial=Contents(item, n + 0.5))
            for n, item in enumerate(ITEMS):
                await wf.wait(f"parcel-{n}", ids[item], Parcel.PACKED)
            await wf.callback("parcel-0", Parcel.PACKED)  # teapot: shipped
            await wf.callback("parcel-1", Parcel.PACKED)  # kettle: shipped
            await wf.pause(ids["lamp"], "customer asked to hold it")
            await wf.cancel(ids["rug"], "out of stock after all")
        # A run no worker has moved yet stays Initiated: pause it, then cancel it.
        async with wf.client() as client:
            late = await client.trigger("parcel-late", initial=Contents("mirror"))
            await client.pause(late, "address missing")
            await client.cancel(late, "duplicate of parcel-3")
            ids["mirror"] = late
            for run_id in ids.values():
                run = await client.lookup(run_id)
                out[run_id] = run.run_state
                print(
                    f"{run.foreign_id:<12} {run.object.item:<7} {run.status.name:<8} "
                    f"{run.run_state} {run.meta.run_state_reason}"
                )
    return out


async def serve(path: Path) -> None:
    import uvicorn

    url = f"sqlite:///{path}"
    await seed(url)
    token = new_token()
    print(f"token for actions: {token}; open http://127.0.0.1:8000/")
    async with conveyor.connect(url) as backend:
        app = create_app(backend.record_store, token=token, title="parcels")
        config = uvicorn.Config(app, host="127.0.0.1", port=8000)
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        asyncio.run(serve(Path("web_ui.db").resolve()))
    else:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(seed(f"sqlite:///{Path(folder) / 'web_ui.db'}"))
