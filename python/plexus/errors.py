"""Errors of remote calls, one class per plexus error code.

    try:
        await client.call("calc", "div", 1, 0)
    except plexus.InvalidArgument as exc:  # also a plexus.RemoteError
        print(exc.message, exc.code, exc.context)

On the wire an error is ``[message, context]`` where ``context`` is a map whose
``"code"`` key names one of :data:`CODES`; a missing or unknown code reads as
``"internal"`` (docs/protocol.md section 8).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = [
    "CODES",
    "RemoteError",
    "InvalidArgument",
    "NotFound",
    "Unavailable",
    "DeadlineExceeded",
    "ResourceExhausted",
    "Unimplemented",
    "PermissionDenied",
    "Internal",
    "error_from_wire",
]

#: Every error code plexus puts in ``context["code"]``.
CODES = (
    "invalid_argument",
    "not_found",
    "unavailable",
    "deadline_exceeded",
    "resource_exhausted",
    "unimplemented",
    "permission_denied",
    "internal",
)


class RemoteError(Exception):
    """A call ended with an error (from the service, the router or this process).

    ``RemoteError(message, code=..., context=...)`` raised inside a
    :class:`plexus.Service` handler is sent to the caller with exactly that code,
    message and context (plus ``"method"``). Constructing ``RemoteError`` picks the
    subclass of ``code`` (``RemoteError("x", code="not_found")`` is a
    :class:`NotFound`).

    Attributes:
        message: text for people.
        code: one of :data:`CODES`.
        context: a dict for programs; always contains ``"code"``.
    """

    code: str = "internal"
    _by_code: dict[str, type["RemoteError"]] = {}

    def __new__(
        cls,
        message: str = "",
        code: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
    ) -> "RemoteError":
        target = cls
        if cls is RemoteError:
            if code is None and context is not None:
                code = context.get("code") if isinstance(context.get("code"), str) else None
            target = RemoteError._by_code.get(code or "internal") or RemoteError._by_code["internal"]
        return super(RemoteError, target).__new__(target)  # type: ignore[misc]

    def __init__(
        self,
        message: str = "",
        code: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.args = (message,)
        ctx = dict(context) if context else {}
        if code is None:
            code = ctx.get("code") if isinstance(ctx.get("code"), str) else None
            code = code or type(self).code
        if code not in CODES:
            code = "internal"
        ctx["code"] = code
        self.message = str(message)
        self.code = code
        self.context = ctx

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, context={self.context!r})"

    def __reduce__(self):  # picklable across processes / executors
        return (RemoteError, (self.message, self.code, self.context))

    def to_wire(self) -> list:
        """The ``[message, context]`` pair of a response's error field."""
        return [self.message, self.context]


def _subclass(code: str, name: str, doc: str, *extra: type) -> type:
    cls = type(name, (RemoteError, *extra), {"code": code, "__doc__": doc, "__module__": __name__})
    RemoteError._by_code[code] = cls
    return cls


InvalidArgument = _subclass(
    "invalid_argument", "InvalidArgument",
    "Malformed message, wrong arity or argument type, a handler refusing its input.",
    ValueError,
)
NotFound = _subclass(
    "not_found", "NotFound", "Unknown method (or unknown plexus.* method / service in describe).",
    LookupError,
)
Unavailable = _subclass(
    "unavailable", "Unavailable",
    "No route to the service, the worker went away, or the client is closed.",
    ConnectionError,
)
DeadlineExceeded = _subclass(
    "deadline_exceeded", "DeadlineExceeded",
    "No answer within the call's deadline (also a TimeoutError).",
    TimeoutError,
)
ResourceExhausted = _subclass(
    "resource_exhausted", "ResourceExhausted", "A size or count limit was hit."
)
Unimplemented = _subclass("unimplemented", "Unimplemented", "The peer does not implement this.")
PermissionDenied = _subclass(
    "permission_denied", "PermissionDenied",
    "The caller may not do this: a control method (plexus.stop, plexus.restart) called "
    "by another user, or over a transport without credentials (also a PermissionError).",
    PermissionError,
)
Internal = _subclass(
    "internal", "Internal", "A handler raised an unexpected exception, or the error had no code."
)


def error_from_wire(error: Any) -> RemoteError:
    """Build the exception for a response's non-null ``error`` field."""
    if isinstance(error, (list, tuple)) and len(error) == 2 and isinstance(error[0], str):
        message, context = error
        if not isinstance(context, dict):
            context = {"context": context}
        code = context.get("code")
        return RemoteError(message, code if code in CODES else "internal", context)
    return Internal("malformed error in response", context={"error": repr(error)})
