"""A connector function typed on another workflow."""

from _typing_model import Invoice, Status, builder

from conveyor import ConnectorEvent, Workflow
from conveyor.adapters.memory import MemoryConnector


async def on_event(wf: Workflow[Invoice, Status], event: ConnectorEvent) -> None:
    await wf.trigger(event.foreign_id)


builder().add_connector("invoices", MemoryConnector(), on_event)  # E: arg-type
