"""HTTP requests and responses for routes a :class:`plexus.Service` declares.

    @svc.http("GET", "/api/counter/{id}")
    def counter(request: plexus.Request):
        return {"id": request.params["id"], "count": counts[request.params["id"]]}

The gateway of ``plexus run`` calls the route's method (``"http GET /api/counter/{id}"``)
with one argument, the request as a map; the handler's result becomes the response
(docs/gateway.md, docs/protocol.md §5 "HTTP routes"). A handler may return a
:class:`Response`, a ``str`` (text/plain), ``bytes`` (application/octet-stream), or
anything else JSON can encode (application/json).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Optional

__all__ = ["Request", "Response"]


class Request:
    """One HTTP request, as the gateway forwards it.

    Attributes: ``verb``, ``path`` (percent-encoded, as sent), ``query`` (the text
    after ``?``, undecoded), ``params`` (the pattern's ``{name}`` parameters,
    decoded), ``headers`` (``[(name, value)]``, names in lower case, in the order sent)
    and ``body`` (bytes).
    """

    __slots__ = ("verb", "path", "query", "params", "headers", "body")

    def __init__(self, verb: str = "GET", path: str = "/", query: str = "",
                 params: Optional[dict] = None, headers: Optional[list] = None,
                 body: bytes = b"") -> None:
        self.verb = verb
        self.path = path
        self.query = query
        self.params = dict(params or {})
        self.headers = [(str(n), str(v)) for n, v in (headers or [])]
        self.body = bytes(body)

    @classmethod
    def from_wire(cls, value: Any) -> "Request":
        if not isinstance(value, dict):
            raise TypeError("an HTTP request must be a map")
        body = value.get("body", b"")
        if isinstance(body, str):
            body = body.encode()
        return cls(value.get("verb", "GET"), value.get("path", "/"), value.get("query", ""),
                   value.get("params"), value.get("headers"), body or b"")

    def header(self, name: str, default: str = "") -> str:
        """The first header ``name`` (any case), else ``default``."""
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return default

    def query_param(self, name: str, default: str = "") -> str:
        """The first query parameter ``name``, decoded (``+`` as a space)."""
        for n, v in urllib.parse.parse_qsl(self.query, keep_blank_values=True):
            if n == name:
                return v
        return default

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError if it is not)."""
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"Request({self.verb} {self.path}{'?' + self.query if self.query else ''})"


class Response:
    """A response: status, headers (``[(name, value)]``) and body (bytes or str)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, body: Any = b"", status: int = 200, headers: Optional[list] = None,
                 content_type: Optional[str] = None) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"an HTTP status is an integer from 100 to 599, got {status!r}")
        self.status = status
        self.headers = [(str(n), str(v)) for n, v in (headers or [])]
        if isinstance(body, str):
            body = body.encode()
        self.body = bytes(body)
        if content_type is not None:
            self.headers.append(("content-type", content_type))

    @classmethod
    def text(cls, text: str, status: int = 200) -> "Response":
        return cls(text, status, content_type="text/plain; charset=utf-8")

    @classmethod
    def json(cls, value: Any, status: int = 200) -> "Response":
        return cls(json.dumps(value, separators=(",", ":")), status,
                   content_type="application/json")

    @classmethod
    def of(cls, result: Any) -> "Response":
        """What a handler returned, as a Response."""
        if isinstance(result, Response):
            return result
        if isinstance(result, str):
            return cls.text(result)
        if isinstance(result, (bytes, bytearray, memoryview)):
            return cls(bytes(result), content_type="application/octet-stream")
        return cls.json(result)

    def to_wire(self) -> dict:
        return {"status": self.status, "headers": [[n, v] for n, v in self.headers],
                "body": self.body}

    def __repr__(self) -> str:
        return f"Response({self.status}, {len(self.body)} bytes)"
