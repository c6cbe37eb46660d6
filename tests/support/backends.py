"""Real backends for tests: Prometheus (Debian package) and an MLflow tracking server.

In CI (``CI`` set) a missing backend fails the test; on a laptop it skips, saying how to get it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def require(ok: bool, what: str, how: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI and was not found: {how}")
    pytest.skip(f"{what} not available; to run this test: {how}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_until(
    ok: Any, timeout_s: float, what: str, proc: subprocess.Popen[Any] | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        try:
            last = ok()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@contextmanager
def _server(
    cmd: list[str], ready_url: str, what: str, log_path: Path, timeout_s: float, **popen: Any
) -> Iterator[None]:
    """Run a server process until the block ends; wait until ``ready_url`` answers 200."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            wait_until(
                lambda: urllib.request.urlopen(ready_url, timeout=2).status == 200,
                timeout_s,
                f"{what} ready",
                proc,
            )
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def prometheus(tmp_path: Path, targets: list[str]) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping ``targets`` every second; yields its base URL."""
    binary = shutil.which("prometheus")
    require(
        binary is not None,
        "Prometheus",
        "apt-get install prometheus (bash scripts/test.sh does it)",
    )
    assert binary is not None
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: otel-energy\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n"
    )
    base = f"http://127.0.0.1:{port}"
    cmd = [
        binary,
        f"--config.file={cfg}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _server(cmd, base + "/-/ready", "Prometheus", tmp_path / "prometheus.log", 30):
        yield base


def prom_query(base: str, query: str) -> list[dict[str, Any]]:
    data = get_json(base + "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    assert data["status"] == "success", data
    return list(data["data"]["result"])


@contextmanager
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 (sqlite store); yields its base URL."""
    binary = Path(sys.executable).parent / "mlflow"
    require(binary.exists(), "MLflow", "pip install mlflow==3.17.2 (bash scripts/test.sh does it)")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    base = f"http://127.0.0.1:{port}"
    cmd = [
        str(binary),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
    ]
    with _server(
        cmd, base + "/health", "MLflow server", tmp_path / "mlflow.log", 90, env=env, cwd=tmp_path
    ):
        yield base


def write_json_in_place(path: Path, doc: Any) -> None:
    """Replace ``path``'s content atomically (a reader sees the old or the new document)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def redfish_mockup(root: Path, watts: float, schema: str = "power") -> Path:
    """A Redfish mockup tree (the ``v1`` folder sushy-static serves): one chassis whose power is
    in ``Power`` (``PowerControl[].PowerConsumedWatts``) or ``EnvironmentMetrics``
    (``PowerWatts.Reading``). Returns the file that holds the reading (rewrite it to change it)."""
    v1 = root / "v1"

    def put(rel: str, doc: dict[str, Any]) -> Path:
        d = v1 / rel if rel else v1
        d.mkdir(parents=True, exist_ok=True)
        (d / "index.json").write_text(json.dumps(doc))
        return d / "index.json"

    put("", {"@odata.id": "/redfish/v1", "Chassis": {"@odata.id": "/redfish/v1/Chassis"}})
    put("Chassis", {"Members": [{"@odata.id": "/redfish/v1/Chassis/1U"}]})
    link = "Power" if schema == "power" else "EnvironmentMetrics"
    put("Chassis/1U", {"Id": "1U", link: {"@odata.id": f"/redfish/v1/Chassis/1U/{link}"}})
    reading = put(f"Chassis/1U/{link}", {})
    set_redfish_watts(reading, watts, schema)
    return reading


def set_redfish_watts(reading: Path, watts: float, schema: str = "power") -> None:
    """What the BMC reports from now on."""
    if schema == "power":
        doc: dict[str, Any] = {
            "PowerControl": [{"MemberId": "0", "PowerConsumedWatts": watts}],
        }
    else:
        doc = {"PowerWatts": {"Reading": watts, "DataSourceUri": "/redfish/v1/Chassis/1U"}}
    write_json_in_place(reading, doc)


@contextmanager
def sushy_static(mockup: Path, tmp_path: Path) -> Iterator[str]:
    """sushy-tools' ``sushy-static`` serving ``mockup/v1`` on 127.0.0.1; yields its base URL."""
    exe = shutil.which("sushy-static", path=str(Path(sys.executable).parent))
    require(exe is not None, "sushy-static (sushy-tools)", "pip install -e '.[dev]'")
    assert exe is not None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [exe, "-i", "127.0.0.1", "-p", str(port), "-m", str(mockup / "v1")]
    with _server(cmd, base + "/redfish/v1", "sushy-static", tmp_path / "sushy.log", 30):
        yield base
