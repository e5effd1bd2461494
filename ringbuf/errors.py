"""Exceptions raised by the ring buffer. Every failure mode has its own type."""


class RingError(Exception):
    """Base class for every ring buffer error."""


class RingNotFound(RingError, FileNotFoundError):
    """No shared-memory segment exists under the requested name."""


class RingExists(RingError, FileExistsError):
    """A segment with this name already exists and creation was exclusive."""


class RingVersionMismatch(RingError):
    """The segment was written by an incompatible layout version."""


class RingSizeMismatch(RingError):
    """The segment's capacity or file size is not what the caller expects."""


class RingCorrupted(RingError):
    """The header or a record violates the layout invariants.

    Raised instead of looping, reading outside the ring or handing out stale records;
    the message starts with the ring's name: `ring 'NAME': ...`.
    """


class RingSchemaMismatch(RingError):
    """Producer and consumer disagree on the message schema fingerprint."""


class RingBusy(RingError):
    """Another live process already holds this end of the ring."""


class RecordTooLarge(RingError, ValueError):
    """A record can never fit in the ring, whatever the consumer does."""


class UnknownRecordType(RingError, LookupError):
    """A record's type id has no decoder (or, with a handler table, no handler) in the
    consumer's tables. The record is not handled: it stays the next one."""


class RingFull(RingError):
    """A blocking write timed out waiting for the consumer to free space."""


class RingClosed(RingError):
    """The ring end was closed."""


class DoorbellMissing(RingError):
    """The ring needs an eventfd doorbell for parking, and none was given."""
