"""The adapter kit: plumbing the built-in adapters share, for third-party adapters too.

Each piece is small, knows no driver, and takes the storage side as a callback:

- ``AckTracker`` (and ``NotHandedOut``): a receiver's cursor, which advances only over an
  unbroken run of acknowledged positions, so an event whose handler failed holds it back
  and is delivered again.
- ``CursorFlusher`` (with ``CursorKey`` and ``WriteCursors``): makes ``ack`` cheap; marked
  cursor positions are written in batches soon after, retried on failure, and on close.
- ``DeadlineLease``: a held role that counts as lost at its deadline unless renewed
  (``_extend``), with a timer so ``wait_lost`` returns then; subclass it to add a fencing
  token.
- ``EventSenderBase``: subclass it and implement ``deliver``; ``send``, the closed check
  (``AdapterError``) and an idempotent ``close`` are done.
- ``QueuedTail``: the hand-out side of a ``Tail`` that a shared reader feeds (``push``
  events and gaps, ``fail``): batches of what waits, the iteration and an idempotent
  ``close``; subclass it to keep where the tail starts and implement ``_on_close``.
- ``Signal``: a broadcast wake-up with a generation count, so a waiter never sleeps
  through a change that happened between its last look and its wait.
- ``assign_roles``: the one algorithm that spreads roles fairly and stably over live
  members, the same in every process, busy roles first (``is_light_role`` tells the
  engine's light ones); a role scheduler decides only when to act on it.
- ``fnv1a64``: the string hash that every process agrees on (shards, role spreading,
  lock keys), unlike ``hash()``.
"""

from .._kit._acks import AckTracker as AckTracker
from .._kit._acks import NotHandedOut as NotHandedOut
from .._kit._flusher import CursorFlusher as CursorFlusher
from .._kit._flusher import CursorKey as CursorKey
from .._kit._flusher import WriteCursors as WriteCursors
from .._kit._hash import fnv1a64 as fnv1a64
from .._kit._lease import DeadlineLease as DeadlineLease
from .._kit._sender import EventSenderBase as EventSenderBase
from .._kit._signal import Signal as Signal
from .._kit._spread import assign_roles as assign_roles
from .._kit._spread import is_light_role as is_light_role
from .._kit._tail import QueuedTail as QueuedTail

__all__ = (
    "AckTracker",
    "CursorFlusher",
    "CursorKey",
    "DeadlineLease",
    "EventSenderBase",
    "NotHandedOut",
    "QueuedTail",
    "Signal",
    "WriteCursors",
    "assign_roles",
    "fnv1a64",
    "is_light_role",
)
