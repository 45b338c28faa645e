"""The plumbing the built-in adapters share; public as ``conveyor.abc.kit``.

One small module per concept (see ``conveyor.abc.kit`` for what each is for). Nothing
here knows a driver: adapters pass their storage writes in as callbacks.
"""
