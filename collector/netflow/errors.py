"""The one error NetFlow v5/v9 and IPFIX decoding raises: a malformed datagram, with a short reason.

The reason is a stable, low-cardinality token (``"short-header"``, ``"set-length"``…) so it can be a
counter label; details for a log line go in the message.
"""

from __future__ import annotations


class FlowDecodeError(ValueError):
    """A NetFlow/IPFIX datagram (or one of its sets) that cannot be decoded."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
