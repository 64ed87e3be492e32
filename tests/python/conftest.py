"""Starts `m365sync sim serve --https` once per session and hands tests its coordinates.

Real, unmodified client libraries are pointed at it. Trust in the simulator's CA comes only from
the environment (SSL_CERT_FILE for httpx/aiohttp/ssl, REQUESTS_CA_BUNDLE for requests), which is
set here before any client is built. aiohttp reads SSL_CERT_FILE once, at its import, so test
modules import the client libraries lazily (inside tests or helpers).
"""

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sim:
    info: dict  # the ready file
    truth_at_start: dict  # the --ground-truth file
    ssl_context: ssl.SSLContext

    @property
    def tenant(self) -> dict:
        return self.info["tenants"][0]

    @property
    def tenant_id(self) -> str:
        return self.tenant["id"]

    @property
    def client_id(self) -> str:
        return self.tenant["apps"][0]["client_id"]

    @property
    def secret(self) -> str:
        return self.tenant["apps"][0]["secrets"][0]

    def control(self, method: str, path: str, body=None):
        """Calls the control API (`/_sim/...`) and returns the decoded JSON answer."""
        url = self.info["control_url"] + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ssl_context, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {url} -> {e.code}: {e.read()[:2000]!r}") from None
        return json.loads(raw) if raw.strip() else None

    def truth(self) -> dict:
        """The current ground truth of the first tenant."""
        return self.control("GET", "/ground-truth")["tenants"][0]

    def mailbox(self, kind: str, index: int = 0, at_start: bool = False) -> dict:
        """The index-th mailbox of a kind, from the live ground truth or the --ground-truth file."""
        truth = self.truth_at_start["tenants"][0] if at_start else self.truth()
        boxes = [m for m in truth["mailboxes"] if m["kind"] == kind]
        assert len(boxes) > index, f"ground truth has {len(boxes)} {kind} mailboxes"
        return boxes[index]


def _wait_ready(proc: subprocess.Popen, ready: Path, log: Path, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            try:
                return json.loads(ready.read_text())
            except json.JSONDecodeError:
                pass  # written atomically per contract, but be patient anyway
        if proc.poll() is not None:
            pytest.fail(f"simulator exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)
    pytest.fail(f"no ready file after {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    binary = Path(os.environ.get("M365SYNC_BIN", REPO / "target" / "debug" / "m365sync"))
    if not binary.is_absolute():
        binary = REPO / binary
    assert binary.exists(), f"simulator binary not found at {binary} (set M365SYNC_BIN)"
    tmp = tmp_path_factory.mktemp("sim")
    ready, truth, log = tmp / "ready.json", tmp / "truth.json", tmp / "sim.log"
    args = [str(binary), "sim", "serve", "--https", "--bind", "127.0.0.1:0",
            "--tls-dir", str(tmp / "tls"), "--users", "3", "--shared", "1",
            "--messages", "25", "--events", "6", "--seed", "7",
            "--ready-file", str(ready), "--ground-truth", str(truth)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        info = _wait_ready(proc, ready, log)
        ca = info["ca_cert"]
        assert ca and Path(ca).is_file(), f"ready file has no usable ca_cert: {info}"
        assert "aiohttp" not in sys.modules, "aiohttp imported before SSL_CERT_FILE was set"
        os.environ["SSL_CERT_FILE"] = ca
        os.environ["REQUESTS_CA_BUNDLE"] = ca
        deadline = time.monotonic() + 30
        while not truth.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield Sim(info, json.loads(truth.read_text()), ssl.create_default_context(cafile=ca))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
