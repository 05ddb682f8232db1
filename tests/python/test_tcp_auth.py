"""Native tcp authentication end to end (docs/security.md, "TCP authentication"):
``plexus router --secret-file`` and the ``plexus`` CLI with ``PLEXUS_SECRET_FILE``."""

from __future__ import annotations

import os
import re

import pytest

from conftest import PLEXUS
from support.procs import Proc, run


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXUS_SECRET")}
    env.update(extra)
    return env


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(os.urandom(24).hex().encode() + b"\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def tcp_router(secret_file):
    p = Proc([PLEXUS, "router", "--listen", "tcp://127.0.0.1:0", "--secret-file", secret_file],
             name="router", env=_env())
    try:
        line = p.wait_for("stderr", "plexus router listening on", 10.0)[0]
        yield re.search(r"tcp://\S+", line).group(0)
    finally:
        p.kill()


def test_the_cli_with_the_secret_file_is_answered(tcp_router, secret_file) -> None:
    r = run([PLEXUS, "call", "--router", tcp_router, "plexus", "ping"], timeout=20,
            env=_env(PLEXUS_SECRET_FILE=str(secret_file)))
    assert r.returncode == 0, r.stderr
    assert "pong" in r.stdout


def test_the_cli_without_a_secret_or_with_another_is_refused(tcp_router, tmp_path) -> None:
    r = run([PLEXUS, "call", "--router", tcp_router, "plexus", "ping"], timeout=20, env=_env())
    assert r.returncode != 0
    assert "authentication failed" in r.stderr and "permission_denied" in r.stderr, r.stderr
    r = run([PLEXUS, "call", "--router", tcp_router, "plexus", "ping"], timeout=20,
            env=_env(PLEXUS_SECRET="some other secret, long enough"))
    assert r.returncode != 0
    assert "secrets differ" in r.stderr, r.stderr
    assert "some other secret" not in r.stderr


def test_a_secret_file_readable_by_others_stops_the_router(secret_file) -> None:
    secret_file.chmod(0o644)
    r = run([PLEXUS, "router", "--listen", "tcp://127.0.0.1:0", "--secret-file", secret_file],
            timeout=10, env=_env())
    assert r.returncode != 0
    assert "0644" in r.stderr and "chmod 600" in r.stderr, r.stderr
    assert secret_file.read_text().strip() not in r.stderr
