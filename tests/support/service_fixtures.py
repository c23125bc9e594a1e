"""A real `synth serve` process on loopback, and a tiny HTTP client, for the service and
browser tests. Nothing is mocked: the tests talk HTTP to the same command a user runs."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Server:
    def __init__(
        self,
        state_dir: Path,
        *,
        token: str | None = None,
        host: str = "127.0.0.1",
        args: tuple[str, ...] = (),
    ) -> None:
        self.state_dir, self.token, self.host, self.args = state_dir, token, host, args
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []

    def start(self, timeout: float = 30) -> Server:
        env = {k: v for k, v in os.environ.items() if k != "SYNTH_TOKEN"}
        if self.token:
            env["SYNTH_TOKEN"] = self.token
        cmd = [sys.executable, "-m", "synth", "serve", "--host", self.host, "--port", "0"]
        cmd += ["--state-dir", str(self.state_dir), "--recipes", str(ROOT / "recipes")]
        cmd += list(self.args)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.search(r"serving on http://[^:]+:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                break
            if time.monotonic() > deadline:
                break
        if not self.port:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.output))
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; `token` defaults to the server's own (pass "" for none)."""
        hdrs = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            hdrs["Authorization"] = f"Bearer {tok}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, data = self.call(method, path, body, **kw)
        return status, json.loads(data)

    def wait_for(self, job_id: str, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, job = self.json("GET", f"/v1/jobs/{job_id}")
            assert status == 200, job
            if predicate(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} never got there: {job}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def log(self) -> str:
        return "".join(self.output)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True
