"""Why a webhook is refused, each error saying which field of which event."""

from __future__ import annotations


class IngestError(Exception):
    """A request that must not reach Kafka."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignatureInvalid(IngestError):
    """Missing, malformed, expired or wrong signature: 401."""

    status = 401


class SenderNotAllowed(IngestError):
    """A sender we do not accept (organisation or address): 403."""

    status = 403


class UnparsableBody(IngestError):
    """Not JSON / not XML at all, or forbidden XML constructs: 400."""

    status = 400


class MalformedEvent(IngestError):
    """Well-formed but invalid content: 422, naming the field and the event's index."""

    status = 422

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        where = f"event {index}: " if index is not None else ""
        super().__init__(f"{where}{field}: {message}")
        self.field = field
        self.index = index
