"""The fence around the landing layer's uses of Prefect internals (docs/upstream.md, U9).

Every private upstream name this layer touches is here and nowhere else (tests/unit/test_upstream.py).
"""

from __future__ import annotations


async def force_checkpoint(client) -> None:
    """U10: wait until the server has read every event this Prefect events client sent (a ping answered after them);
    the public `emit` only queues them."""
    await client._force_checkpoint()
