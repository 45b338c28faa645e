"""Which background processes a workflow runs, with the original's role and process names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ._connector import ConnectorReceiver
from ._consumers._consume import Batch, consume, sequential
from ._consumers._lifecycle import DeleteHandler, HookHandler, PauseRetryHandler, run_state_is
from ._consumers._outbox import relay_outbox
from ._consumers._step import StepHandler
from ._consumers._timeout import TimeoutInserter, TimeoutPoller
from ._engine import Engine
from ._event import Event, delete_topic, make_role, run_state_change_topic, topic
from ._options import Options, ResolvedOptions
from ._runstate import RunState
from ._supervisor import Body, Process, ProcessContext

__all__ = ["plan_processes"]


class _Planner:
    def __init__(self, engine: Engine[Any, Any]) -> None:
        self.engine = engine
        self.cfg = engine.config
        self.defaults = self.cfg.default_options.resolve()
        self.procs: list[Process] = []

    def add(self, name: str, role: str, body: Body, err_backoff: float) -> None:
        metrics = self.engine.metrics.process(name)
        self.procs.append(Process(name, role, body, err_backoff, metrics))

    def consumer(
        self,
        name: str,
        role: str,
        topic_name: str,
        handler: Batch,
        opts: ResolvedOptions,
        *,
        shard: int = 1,
        shards: int = 1,
        accept: Callable[[Event], bool] | None = None,
        consume_lag: float | None = None,
        lag_alert: float | None = None,
        open_receiver: Callable[[ProcessContext], Awaitable[Any]] | None = None,
    ) -> None:
        engine = self.engine

        async def body(ctx: ProcessContext) -> None:
            opener = None if open_receiver is None else (lambda: open_receiver(ctx))
            await consume(
                ctx,
                engine,
                topic=topic_name,
                handler=handler,
                shard=shard,
                shards=shards,
                consume_lag=opts.consume_lag if consume_lag is None else consume_lag,
                poll_interval=opts.polling_frequency,
                accept=accept,
                lag_alert=opts.lag_alert if lag_alert is None else lag_alert,
                open_receiver=opener,
            )

        self.add(name, role, body, opts.err_backoff)

    def skip_counter(self, name: str) -> Callable[[str], None]:
        return self.engine.metrics.process(name).skipped

    # ------------------------------------------------------------------ processes

    def outbox(self) -> None:
        engine = self.engine

        async def body(ctx: ProcessContext) -> None:
            await relay_outbox(engine, ctx)

        role = make_role(self.cfg.name, "outbox-consumer")
        self.add("outbox-consumer", role, body, self.cfg.outbox.err_backoff)

    def steps(self, wrap: Callable[[Any], Callable[..., Awaitable[Any]]]) -> None:
        wf = self.cfg.name
        for status, spec in self.cfg.steps.items():
            opts = spec.options.over(self.cfg.default_options).resolve()
            n = opts.parallel_count
            fn = wrap(spec.fn)
            for i in range(1, n + 1):
                name = make_role(self.engine.status_name(status), "consumer", i, "of", n)
                skip = self.skip_counter(name)
                handler = StepHandler(
                    self.engine, name, status, fn, opts.pause_after_err_count, skip
                )
                self.consumer(
                    name,
                    make_role(wf, status, "consumer", i, "of", n),
                    topic(wf, status),
                    handler,
                    opts,
                    shard=i,
                    shards=n,
                )

    def hooks(self) -> None:
        wf = self.cfg.name
        for state, hook in self.cfg.hooks.items():
            name = make_role(str(state), "run-state-change-hook-consumer")
            handler = HookHandler(self.engine, self.engine.threads.wrap(hook))
            self.consumer(
                name,
                make_role(wf, str(state), "run-state-change-hook-consumer"),
                run_state_change_topic(wf),
                sequential(handler, self.skip_counter(name)),
                self.defaults,
                accept=run_state_is(state),
            )

    def timeouts(self) -> None:
        wf = self.cfg.name
        engine = self.engine
        for status, specs in self.cfg.timeouts.items():
            opts = self.cfg.timeout_options.get(status, Options()).over(self.cfg.default_options)
            resolved = opts.resolve()
            label = engine.status_name(status)
            name = make_role(label, "timeout-auto-inserter-consumer")
            inserter = TimeoutInserter(
                engine,
                name,
                status,
                [(spec.index, engine.threads.wrap(spec.timer)) for spec in specs],
                resolved.pause_after_err_count,
            )
            self.consumer(
                name,
                make_role(wf, status, "timeout-auto-inserter-consumer"),
                topic(wf, status),
                sequential(inserter, self.skip_counter(name)),
                resolved,
            )
            poller = TimeoutPoller(
                engine,
                status,
                {spec.index: engine.threads.wrap(spec.fn) for spec in specs},
                resolved.pause_after_err_count,
                resolved.polling_frequency,
            )
            self.add(
                make_role(label, "timeout-consumer"),
                make_role(wf, status, "timeout-consumer"),
                poller,
                resolved.err_backoff,
            )

    def connectors(self, api: Any) -> None:
        engine = self.engine
        for spec in self.cfg.connectors:
            opts = spec.options.over(self.cfg.default_options).resolve()
            n = opts.parallel_count
            fn = engine.threads.wrap(spec.fn)
            for i in range(1, n + 1):
                name = make_role(spec.name, "connector-to", self.cfg.name, "consumer", i, "of", n)
                receivers: dict[str, ConnectorReceiver] = {}

                async def open_receiver(
                    ctx: ProcessContext, spec: Any = spec, receivers: Any = receivers
                ) -> ConnectorReceiver:
                    consumer = await spec.constructor.make(ctx.role)
                    rx = receivers["current"] = ConnectorReceiver(consumer, engine.clock)
                    return rx

                async def handle(event: Event, fn: Any = fn, receivers: Any = receivers) -> None:
                    await fn(api, receivers["current"].connector_event(event))

                self.consumer(
                    name,
                    name,
                    "",
                    sequential(handle),
                    opts,
                    shard=i,
                    shards=n,
                    open_receiver=open_receiver,
                )

    def delete(self) -> None:
        cfg = self.cfg
        custom = self.engine.threads.wrap(cfg.custom_delete) if cfg.custom_delete else None
        name = "delete-consumer"
        self.consumer(
            name,
            make_role(cfg.name, name),
            delete_topic(cfg.name),
            sequential(DeleteHandler(self.engine, custom), self.skip_counter(name)),
            self.defaults,
        )

    def pause_retry(self) -> None:
        cfg = self.cfg
        if cfg.pause_retry is None:
            return
        name = "paused-records-retry-consumer"
        handler = PauseRetryHandler(self.engine, cfg.pause_retry)
        self.consumer(
            name,
            make_role(cfg.name, name),
            run_state_change_topic(cfg.name),
            sequential(handler, self.skip_counter(name)),
            self.defaults,
            accept=run_state_is(RunState.PAUSED),
            consume_lag=cfg.pause_retry,
            lag_alert=self.defaults.lag_alert + cfg.pause_retry,
        )


def plan_processes(engine: Engine[Any, Any], api: Any) -> list[Process]:
    """Every background process of the workflow, in a stable order (``api``: the Workflow
    handed to connector functions)."""
    planner = _Planner(engine)
    planner.outbox()
    planner.steps(engine.threads.wrap)
    planner.hooks()
    planner.timeouts()
    planner.connectors(api)
    planner.delete()
    planner.pause_retry()
    return planner.procs
