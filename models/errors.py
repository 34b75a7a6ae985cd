"""Errors that reach the operator as one clear line (CLI exit code 2)."""


class DomainError(Exception):
    """A refused request: names the field (or the current state and allowed actions).

    Raised before anything is committed, so a refused request changes nothing.
    """

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        self.message = f"{field}: {message}" if field else message
        super().__init__(self.message)


class ConcurrentUpdate(DomainError):
    """Another action changed the same case first (optimistic lock)."""
