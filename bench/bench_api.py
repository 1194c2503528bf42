"""API throughput and latency: ``POST /v1/requests`` with one IP, one uvicorn worker.

``python -m bench.bench_api [--duration S] [--connections N] [--nice -10]``

The server (``bench.api_server``: the real app over a static view) runs in its own process; the
load comes from ``wrk`` (apt-get install wrk) in another, over loopback. Each store is measured
against ``GET /healthz`` on the same server in the same run, so the ratios say what auth,
validation, the store write and the status lookup cost, whatever the machine. Bar: in-memory
≥ 2,000 requests/s with p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from api.tokens import hash_token, new_token

POST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
local counter = 0
request = function()
  counter = counter + 1
  local ip = string.format("198.18.%d.%d", math.floor(counter / 256) % 256, counter % 256)
  return wrk.format(nil, nil, nil, '{"ips": ["' .. ip .. '"], "ttl_s": 600}')
end
"""
DONE_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Run:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s

    @property
    def cpu_us(self) -> float:
        """Server CPU per request: unlike the rate, barely moved by other load on the machine."""
        return self.server_cpu_s / self.requests * 1e6


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def config_text(store_url: str, token: str) -> str:
    # Limits high enough that the bench measures the work, not the 429 path.
    return f"""
[api]
listen = "127.0.0.1:18080"
rate_limit_per_s = 1e9
rate_limit_burst = 1000000000
[store]
url = "{store_url}"
[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
fib_cap_ipv4 = 16000
fib_cap_ipv6 = 4000
max_requests_per_ap = 1000000
[[token]]
name = "bench-ap"
role = "ap"
sha256 = "{hash_token(token)}"
"""


def run_wrk(url: str, script: Path, duration_s: float, connections: int, server_pid: int,
            nice: int = 0) -> Run:
    cpu_before = cpu_seconds(server_pid)
    out = subprocess.run(
        ["nice", "-n", str(nice), "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "-s", str(script),
         url],
        capture_output=True, text=True, check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    requests, duration_us, p50, p99, status_errors, socket_errors = (int(v) for v in line.split()[1:])
    return Run(requests, duration_us / 1e6, p50 / 1000, p99 / 1000, status_errors, socket_errors,
               cpu_seconds(server_pid) - cpu_before)


def measure(store_url: str, workdir: Path, duration_s: float, connections: int,
            nice: int = 0) -> tuple[Run, Run]:
    token = new_token()
    config = workdir / "bench.toml"
    config.write_text(config_text(store_url, token))
    post_script = workdir / "post.lua"
    post_script.write_text(POST_SCRIPT.replace("TOKEN", token) + DONE_SCRIPT)
    get_script = workdir / "get.lua"
    get_script.write_text(DONE_SCRIPT)
    port = free_port()
    server = subprocess.Popen(["nice", "-n", str(nice), sys.executable, "-m", "bench.api_server",
                               "--config", str(config), "--port", str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        base = f"http://127.0.0.1:{port}"
        run_wrk(f"{base}/v1/requests", post_script, 1, connections, server.pid, nice)  # warm-up
        baseline = run_wrk(f"{base}/healthz", get_script, duration_s, connections, server.pid, nice)
        posts = run_wrk(f"{base}/v1/requests", post_script, duration_s, connections, server.pid, nice)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return baseline, posts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling niceness of server, wrk and redis (e.g. -10 on a shared machine)")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install {tool})", file=sys.stderr)
            return 2
    results: dict[str, tuple[Run, Run]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results["memory"] = measure("memory://", workdir, args.duration, args.connections, args.nice)
        redis_port = free_port()
        redis = subprocess.Popen(["nice", "-n", str(args.nice), "redis-server", "--port", str(redis_port),
                                  "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
                                 stdout=subprocess.DEVNULL)
        try:
            wait_port(redis_port)
            results["redis"] = measure(f"redis://127.0.0.1:{redis_port}/0", workdir, args.duration,
                                       args.connections, args.nice)
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    load = os.getloadavg()[0]
    print(f"POST /v1/requests (1 IP), 1 uvicorn worker, wrk -t1 -c{args.connections} -d{args.duration:g}s; "
          f"load average: {load:.1f} on {os.cpu_count()} CPUs")
    print(f"{'store':8} {'healthz/s':>10} {'POST/s':>9} {'POST/healthz':>13} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'non-2xx':>8} {'vs memory':>10} {'CPU us/POST':>12} {'CPU us/healthz':>15} "
          f"{'POST/s per CPU':>15}")
    memory_rate = results["memory"][1].rate
    for name, (baseline, posts) in results.items():
        print(f"{name:8} {baseline.rate:10.0f} {posts.rate:9.0f} {posts.rate / baseline.rate:13.2f} "
              f"{posts.p50_ms:7.1f} {posts.p99_ms:7.1f} {posts.non_2xx + posts.socket_errors:8d} "
              f"{posts.rate / memory_rate:10.2f} {posts.cpu_us:12.0f} {baseline.cpu_us:15.0f} "
              f"{1e6 / posts.cpu_us:15.0f}")
    memory = results["memory"][1]
    ok = memory.rate >= 2000 and memory.p99_ms <= 50 and memory.non_2xx == 0
    print(f"bar (memory ≥ 2000/s, p99 ≤ 50 ms, no errors): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
