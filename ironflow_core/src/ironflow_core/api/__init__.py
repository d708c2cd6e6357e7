"""The REST API behind ``ironflow serve`` (semantics.md#api).

Modules, outside in: ``server`` (the only one that knows Hypercorn: binding,
signals, draining), ``app`` (routes and middleware), ``auth``, ``errors``,
``handlers`` and ``sse`` (the endpoints), ``runs`` (admission and the nursery
runs execute in), ``sources`` (where a flow comes from, loading it),
``idempotency``, ``webhooks``, ``events`` (the in-memory event store),
``settings`` and ``openapi``. Nothing here is imported by ``ironflow --help``.
"""
