"""Which background processes a workflow runs, with the original's role and process names.

The planner reads the ``Engine`` and hands each consumer only the parts it uses.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from ._attempts import Policy
from ._capabilities import PublishesEvents
from ._connector import ConnectorEvent, ConnectorReceiver
from ._consumers._consume import Batch, OpenReceiver, Pending, consume, sequential
from ._consumers._lifecycle import DeleteHandler, HookHandler, PauseRetryHandler, run_state_is
from ._consumers._outbox import relay_outbox
from ._consumers._retry import retry_event
from ._consumers._step import StepHandler
from ._consumers._timeout import AsyncTimeout, AsyncTimer, TimeoutInserter, TimeoutPoller
from ._definition import ConnectorSpec
from ._engine import Engine
from ._errors import BuildError
from ._event import Event, delete_topic, make_role, run_state_change_topic, topic
from ._options import Options, ResolvedOptions
from ._protocols import EventReceiver, TimeoutStore
from ._record import TypedRecord
from ._runstate import RunState
from ._supervisor import Body, Process, ProcessContext
from ._types import AsyncStep

__all__ = ["plan_processes", "relay_needed"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


def relay_needed(engine: Engine[T, S]) -> bool:
    """Whether the workflow needs an outbox relay: not when its store appends every write's
    event to the workflow's own streamer itself (the ``PublishesEvents`` capability).

    Raises ``BuildError`` when the store appends its events to another streamer.
    """
    store = engine.store
    if not isinstance(store, PublishesEvents):
        return True
    target = store.publishes_to
    if target is None:
        return True
    if target is not engine.streamer:
        raise BuildError(
            f"the record store of workflow {engine.name!r} appends its events to another "
            "event streamer than the one the workflow was built with: build it on that "
            "streamer (or on a record store that keeps an outbox)"
        )
    return False


class _Planner(Generic[T, S]):
    def __init__(self, engine: Engine[T, S]) -> None:
        self.engine = engine
        self.definition = engine.definition
        self.defaults = self.definition.default_options.resolve()
        self.procs: list[Process] = []

    def add(self, name: str, role: str, body: Body, err_backoff: float) -> None:
        metrics = self.engine.telemetry.metrics.process(name)
        self.procs.append(Process(name, role, body, err_backoff, metrics))

    def opener(self, topic_name: str, opts: ResolvedOptions) -> OpenReceiver:
        streamer = self.engine.streamer
        poll = opts.polling_frequency

        async def open_receiver(ctx: ProcessContext) -> EventReceiver:
            return await streamer.new_receiver(topic_name, ctx.role, poll_interval=poll)

        return open_receiver

    def consumer(
        self,
        name: str,
        role: str,
        open_receiver: OpenReceiver,
        handler: Batch,
        opts: ResolvedOptions,
        *,
        shard: int = 1,
        shards: int = 1,
        accept: Callable[[Event], bool] | None = None,
        consume_lag: float | None = None,
        lag_alert: float | None = None,
        retries_of: int | None = None,
    ) -> None:
        clock = self.engine.clock
        lag = opts.consume_lag if consume_lag is None else consume_lag
        alert = opts.lag_alert if lag_alert is None else lag_alert
        pending = None if retries_of is None else self.pending(retries_of)

        async def body(ctx: ProcessContext) -> None:
            await consume(
                ctx,
                open_receiver=open_receiver,
                clock=clock,
                handler=handler,
                shard=shard,
                shards=shards,
                consume_lag=lag,
                accept=accept,
                lag_alert=alert,
                pending=pending,
            )

        self.add(name, role, body, opts.err_backoff)

    def pending(self, status: int) -> Pending | None:
        """What a consumer of ``status`` left to retry (when the store records failures)."""
        failures = self.engine.runs.attempts.failures
        if failures is None:
            return None
        workflow = self.engine.name

        async def due(process: str) -> list[tuple[Event, float]]:
            return [retry_event(f, status) for f in await failures.retries_due(workflow, process)]

        return due

    def skip_counter(self, name: str) -> Callable[[str], None]:
        return self.engine.telemetry.metrics.process(name).skipped

    # ------------------------------------------------------------------ processes

    def outbox(self) -> None:
        engine = self.engine
        options = self.definition.outbox

        async def body(ctx: ProcessContext) -> None:
            await relay_outbox(
                ctx,
                store=engine.store,
                streamer=engine.streamer,
                clock=engine.clock,
                workflow_name=engine.name,
                options=options,
                rebuild=engine.writer.outbox_event,
                logger=engine.telemetry.logger,
            )

        role = make_role(engine.name, "outbox-consumer")
        self.add("outbox-consumer", role, body, options.err_backoff)

    def steps(self) -> None:
        engine = self.engine
        wf = engine.name
        for status, spec in self.definition.steps.items():
            opts = spec.options.over(self.definition.default_options).resolve()
            n = opts.parallel_count
            fn: AsyncStep[T, S] = engine.threads.wrap(spec.fn)
            for i in range(1, n + 1):
                name = make_role(self.definition.status_name(status), "consumer", i, "of", n)
                handler = StepHandler(
                    engine.runs,
                    engine.writer,
                    engine.telemetry,
                    process=name,
                    status=status,
                    fn=fn,
                    policy=Policy.of(opts),
                    on_skip=self.skip_counter(name),
                )
                self.consumer(
                    name,
                    make_role(wf, status, "consumer", i, "of", n),
                    self.opener(topic(wf, status), opts),
                    handler,
                    opts,
                    shard=i,
                    shards=n,
                    retries_of=status,
                )

    def hooks(self) -> None:
        engine = self.engine
        wf = engine.name
        for state, hook in self.definition.hooks.items():
            name = make_role(str(state), "run-state-change-hook-consumer")
            call: Callable[[TypedRecord[T, S]], Awaitable[None]] = engine.threads.wrap(hook)
            handler = HookHandler(
                engine.runs, call, process=name, policy=Policy.of(self.defaults, can_pause=False)
            )
            self.consumer(
                name,
                make_role(wf, str(state), "run-state-change-hook-consumer"),
                self.opener(run_state_change_topic(wf), self.defaults),
                sequential(handler, self.skip_counter(name)),
                self.defaults,
                accept=run_state_is(state),
                retries_of=0,  # a hook reads the run as it is, whatever its status
            )

    def timeouts(self, store: TimeoutStore) -> None:
        engine = self.engine
        d = self.definition
        wf = engine.name
        wrap = engine.threads.wrap
        for status, specs in d.timeouts.items():
            opts = d.timeout_options.get(status, Options()).over(d.default_options).resolve()
            label = d.status_name(status)
            name = make_role(label, "timeout-auto-inserter-consumer")
            timers: list[tuple[int, AsyncTimer[T, S]]] = []
            fns: dict[int, AsyncTimeout[T, S]] = {}
            for spec in specs:
                timer: AsyncTimer[T, S] = wrap(spec.timer)
                on_timeout: AsyncTimeout[T, S] = wrap(spec.fn)
                timers.append((spec.index, timer))
                fns[spec.index] = on_timeout
            inserter = TimeoutInserter(
                engine.runs,
                store,
                engine.clock,
                process=name,
                status=status,
                timers=timers,
                policy=Policy.of(opts),
            )
            self.consumer(
                name,
                make_role(wf, status, "timeout-auto-inserter-consumer"),
                self.opener(topic(wf, status), opts),
                sequential(inserter, self.skip_counter(name)),
                opts,
            )
            poller = TimeoutPoller(
                engine.runs,
                store,
                engine.clock,
                engine.telemetry,
                status=status,
                fns=fns,
                policy=Policy.of(opts),
                polling_frequency=opts.polling_frequency,
            )
            self.add(
                make_role(label, "timeout-consumer"),
                make_role(wf, status, "timeout-consumer"),
                poller,
                opts.err_backoff,
            )

    def connectors(self, api: object) -> None:
        for spec in self.definition.connectors:
            self.connector(spec, api)

    def connector(self, spec: ConnectorSpec, api: object) -> None:
        engine = self.engine
        opts = spec.options.over(self.definition.default_options).resolve()
        n = opts.parallel_count
        fn: Callable[[object, ConnectorEvent], Awaitable[None]] = engine.threads.wrap(spec.fn)
        for i in range(1, n + 1):
            name = make_role(spec.name, "connector-to", engine.name, "consumer", i, "of", n)
            current: dict[str, ConnectorReceiver] = {}

            async def open_receiver(
                ctx: ProcessContext, current: dict[str, ConnectorReceiver] = current
            ) -> EventReceiver:
                consumer = await spec.constructor.make(ctx.role)
                rx = current["rx"] = ConnectorReceiver(consumer, engine.clock)
                return rx

            async def handle(
                event: Event, current: Mapping[str, ConnectorReceiver] = current
            ) -> None:
                await fn(api, current["rx"].connector_event(event))

            self.consumer(name, name, open_receiver, sequential(handle), opts, shard=i, shards=n)

    def delete(self) -> None:
        engine = self.engine
        d = self.definition
        custom = engine.threads.wrap(d.custom_delete) if d.custom_delete is not None else None
        name = "delete-consumer"
        self.consumer(
            name,
            make_role(d.name, name),
            self.opener(delete_topic(d.name), self.defaults),
            sequential(
                DeleteHandler(engine.writer, engine.runs.codec, custom), self.skip_counter(name)
            ),
            self.defaults,
        )

    def pause_retry(self) -> None:
        engine = self.engine
        d = self.definition
        if d.pause_retry is None:
            return
        name = "paused-records-retry-consumer"
        handler = PauseRetryHandler(engine.writer, engine.runs.errors, engine.clock, d.pause_retry)
        self.consumer(
            name,
            make_role(d.name, name),
            self.opener(run_state_change_topic(d.name), self.defaults),
            sequential(handler, self.skip_counter(name)),
            self.defaults,
            accept=run_state_is(RunState.PAUSED),
            consume_lag=d.pause_retry,
            lag_alert=self.defaults.lag_alert + d.pause_retry,
        )


def plan_processes(engine: Engine[T, S], api: object) -> list[Process]:
    """Every background process of the workflow, in a stable order (``api``: the Workflow
    handed to connector functions).

    No outbox relay runs when the store publishes its own events (``relay_needed``).
    """
    planner = _Planner(engine)
    if relay_needed(engine):
        planner.outbox()
    planner.steps()
    planner.hooks()
    if engine.timeouts is not None:
        planner.timeouts(engine.timeouts)
    planner.connectors(api)
    planner.delete()
    planner.pause_retry()
    return planner.procs
