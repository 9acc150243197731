"""Pure parsing, verification and normalisation of what the senders send: no I/O, no
clock (``now`` and ``received_at`` are parameters)."""
