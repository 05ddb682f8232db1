"""HTTP routes declared by a Python Service (docs/gateway.md):

- the route table learns them over the ZeroMQ backend (plexus.declare_routes), with
  the handler's file and line; a duplicate of another live service's route makes the
  second service's serve() raise, naming both declarations;
- under `plexus run`, the gateway serves them: JSON, text, an async handler, the
  request's params, query, headers and body, a handler error as a 500 with its message
  and code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import plexus
from conftest import PLEXUS, Proc, run
from support.aio import arun, unique_name

REPO = Path(__file__).resolve().parents[2]
PY_PATH = str(REPO / "python")
PYTHON = "/usr/bin/python3"


def routes(native: str) -> list:
    r = run([PLEXUS, "routes", "--json", "--router", native], timeout=15)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


async def _declared(native: str, service: str, timeout: float = 10.0) -> list:
    """The table's routes of ``service``, once it has some."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        mine = [r for r in await loop.run_in_executor(None, routes, native)
                if r["service"] == service]
        if mine or loop.time() > deadline:
            return mine
        await asyncio.sleep(0.02)


async def _count(native: str, n: int, timeout: float = 10.0) -> int:
    """How many routes the table has, once it has ``n`` (or at the deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        have = len(await loop.run_in_executor(None, routes, native))
        if have >= n or loop.time() > deadline:
            return have
        await asyncio.sleep(0.02)


def test_routes_reach_the_table_and_a_duplicate_is_refused_naming_both(router) -> None:
    first, second = unique_name("web"), unique_name("web")
    pattern = f"/api/{first}/{{id}}"

    async def main() -> None:
        a = plexus.Service(router.backend, first)

        @a.http("GET", pattern)
        def get(request):  # the first declaration
            return {"id": request.params["id"]}

        first_line = get.__code__.co_firstlineno
        async with a:
            mine = await _declared(router.native, first)
            assert len(mine) == 1, mine
            assert mine[0]["pattern"] == pattern and mine[0]["verb"] == "GET"
            assert mine[0]["where"].endswith(f"test_http.py:{first_line}"), mine[0]
            assert mine[0]["replicas"] == 1

            b = plexus.Service(router.backend, second)

            @b.http("GET", f"/api/{first}/{{other}}")
            def clash(request):
                return "never"

            second_line = clash.__code__.co_firstlineno
            with pytest.raises(plexus.InvalidArgument) as refused:
                await asyncio.wait_for(b.serve(), 10)
            text = str(refused.value)
            assert "duplicate route" in text, text
            assert f"test_http.py:{first_line}" in text, text
            assert f"test_http.py:{second_line}" in text, text
            assert b.refused is not None
            # The first keeps its route.
            assert [r["service"] for r in routes(router.native)
                    if r["pattern"].startswith(f"/api/{first}/")] == [first]

    arun(main())


# A Service with routes of each shape, run by plexus run: `python3 -c WEB BACKEND NAME`.
WEB = r"""
import asyncio, signal, sys
import plexus

async def main():
    svc = plexus.Service(sys.argv[1], sys.argv[2])

    @svc.http("POST", "/api/py/{name}")
    def echo(request):
        return {"name": request.params["name"], "q": request.query_param("q"),
                "type": request.header("Content-Type"), "body": request.text(),
                "verb": request.verb}

    @svc.http("GET", "/api/py-text", inline=True)
    def text(request):
        return plexus.Response.text("hi from python", 201)

    @svc.http("GET", "/api/py-async")
    async def later(request):
        await asyncio.sleep(0)
        return plexus.Response(b"\x00\x01", headers=[("x-kind", "async")],
                               content_type="application/octet-stream")

    @svc.http("GET", "/api/py-fail")
    def fail(request):
        raise plexus.NotFound("nothing here")

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(svc.serve())
    await stop.wait()
    task.cancel()

asyncio.run(main())
"""


def http(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_plexus_run_serves_a_python_services_routes(tmp_path: Path) -> None:
    native = f"ipc://{tmp_path}/native.sock"
    backend = f"ipc://{tmp_path}/back.sock"
    config = tmp_path / "app.toml"
    config.write_text(f"""\
[router]
listen = {json.dumps(native)}
zmq_backend = {json.dumps(backend)}

[gateway]
listen = "127.0.0.1:0"

[log]
dir = {json.dumps(str(tmp_path / "logs"))}
echo = false

[[process]]
name = "pyweb"
command = {json.dumps(PYTHON)}
args = {json.dumps(["-c", WEB, backend, "pyweb"])}
env = {{ PYTHONPATH = {json.dumps(PY_PATH)} }}
ready_timeout = 15
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXUS_")}
    sup = Proc([PLEXUS, "run", str(config)], name="plexus run", env=env, cwd=str(tmp_path))
    try:
        line = sup.wait_for("stdout", "HTTP gateway on http://", 15)[0]
        m = re.search(r"HTTP gateway on (http://127\.0\.0\.1:\d+)/", line)
        assert m, line
        base = m.group(1)
        # Ready once the routes are in the table (declared after the connection).
        assert arun(_count(native, 4)) == 4, routes(native)

        status, headers, body = http(f"{base}/api/py/a%20b?q=x+y", "POST", b"payload",
                                     {"Content-Type": "text/plain"})
        assert status == 200, body
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"name": "a b", "q": "x y", "type": "text/plain",
                                    "body": "payload", "verb": "POST"}
        status, headers, body = http(f"{base}/api/py-text")
        assert (status, body) == (201, b"hi from python")
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        status, headers, body = http(f"{base}/api/py-async")
        assert (status, body, headers["x-kind"]) == (200, b"\x00\x01", "async")
        status, _, body = http(f"{base}/api/py-fail")
        assert status == 500
        assert json.loads(body) == {"message": "nothing here", "code": "not_found"}
        status, headers, _ = http(f"{base}/api/py/a")  # GET on a POST route
        assert status == 405 and headers["Allow"] == "POST"
    finally:
        sup.kill()
