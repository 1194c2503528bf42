"""API throughput and latency through ``topfib run``, as access points use it: kept-alive connections.

``python -m bench.bench_api [--duration S] [--connections N] [--replicas R] [--nice -10] [--memory-posts]``

Each store (memory, then a fresh ``redis-server``) gets its own ``topfib run`` (the whole
process: collector thread, switch control loop with a stand-in ExaBGP that sleeps, API) and is
measured over loopback with:

- ``wrk -t1 -cN`` (kept-alive connections) on ``GET /healthz``: the baseline of the same run;
- ``wrk -t1 -cN`` ``POST /v1/requests`` with one IP, then with 100 IPs per POST (IPs/s);
- one kept-alive ``http.client`` connection, 200 sequential one-IP POSTs: p50 / p99.

With ``--replicas R`` (R ≥ 2) R ``topfib run`` share the Redis (one holds the switch's lease) and
each gets its own wrk at once: the total is what R API processes sustain together.
``--memory-posts`` runs only the first bar's load (in memory, one-IP POSTs), to iterate on it.

Bars (issue 16): in memory, ≥ 3,000 POST/s with p99 ≤ 20 ms over 16 connections and a sequential
p99 ≤ 5 ms; with Redis ≥ 2,000 IPs/s per process and ≥ 20,000 IPs/s in 100-IP POSTs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from topfib.api.tokens import hash_token, new_token

POST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
local counter = 0
local per_post = PER_POST
request = function()
  local ips = {}
  for i = 1, per_post do
    counter = counter + 1
    ips[i] = string.format('"198.18.%d.%d"', math.floor(counter / 256) % 256, counter % 256)
  end
  return wrk.format(nil, nil, nil, '{"ips": [' .. table.concat(ips, ",") .. '], "ttl_s": 600}')
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
    errors: int
    server_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s

    @property
    def cpu_us(self) -> float:
        """Server CPU per request: unlike the rate, barely moved by other load on the machine."""
        return self.server_cpu_s / max(1, self.requests) * 1e6


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"topfib run exited ({process.returncode})")
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


def config_text(store_url: str, token: str, api_port: int, workdir: Path) -> str:
    # Limits high enough that the bench measures the work, not the 429 path.
    return f"""
[api]
listen = "127.0.0.1:{api_port}"
rate_limit_per_s = 1e9
rate_limit_burst = 1000000000
[collector]
sflow_listen = ["127.0.0.1:{free_port(socket.SOCK_DGRAM)}"]
[store]
url = "{store_url}"
[exabgp]
executable = "{workdir / 'stand-in-exabgp'}"
runtime_dir = "{workdir / f'run-{api_port}'}"
[[switch]]
name = "edge1"
neighbor = "10.0.0.2"
local_address = "10.0.0.1"
local_as = 65000
peer_as = 65000
fib_cap_ipv4 = 16000
fib_cap_ipv6 = 4000
max_requests_per_ap = 100000000
[[token]]
name = "bench-ap"
role = "ap"
sha256 = "{hash_token(token)}"
"""


def start_topfib(store_url: str, token: str, workdir: Path, nice: int) -> tuple[subprocess.Popen[bytes], int]:
    stand_in = workdir / "stand-in-exabgp"
    stand_in.write_text("#!/bin/sh\nexec sleep 3600\n")
    stand_in.chmod(0o755)
    port = free_port()
    config = workdir / f"topfib-{port}.toml"
    config.write_text(config_text(store_url, token, port, workdir))
    command = ["nice", "-n", str(nice), sys.executable, "-m", "topfib.controller.cli.app", "run",
               "--config", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wrk(url: str, script: Path, duration_s: float, connections: int, nice: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["nice", "-n", str(nice), "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s",
                             "-s", str(script), url], stdout=subprocess.PIPE, text=True)


def wrk_result(process: subprocess.Popen[str], cpu: tuple[int, float]) -> Run:
    out, _ = process.communicate()
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    requests, duration_us, p50, p99, status_errors, socket_errors = (int(v) for v in line.split()[1:])
    return Run(requests, duration_us / 1e6, p50 / 1000, p99 / 1000, status_errors + socket_errors,
               cpu_seconds(cpu[0]) - cpu[1])


def run_wrk(pid: int, port: int, path: str, script: Path, duration_s: float, connections: int,
            nice: int) -> Run:
    cpu = (pid, cpu_seconds(pid))
    return wrk_result(wrk(f"http://127.0.0.1:{port}{path}", script, duration_s, connections, nice), cpu)


def sequential_posts(port: int, token: str, count: int = 200) -> Run:
    """One kept-alive connection, ``count`` one-IP POSTs one after the other."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    times, errors = [], 0
    started = time.perf_counter()
    for i in range(count):
        body = json.dumps({"ips": [f"198.19.{i // 256}.{i % 256}"], "ttl_s": 600})
        sent = time.perf_counter()
        connection.request("POST", "/v1/requests", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        times.append((time.perf_counter() - sent) * 1000)
        errors += response.status != 200
    elapsed = time.perf_counter() - started
    connection.close()
    times.sort()
    return Run(count, elapsed, statistics.median(times), times[int(0.99 * (count - 1))], errors)


def scripts(workdir: Path, token: str) -> dict[str, Path]:
    paths = {}
    for name, text in (("healthz", DONE_SCRIPT),
                       ("post1", POST_SCRIPT.replace("PER_POST", "1") + DONE_SCRIPT),
                       ("post100", POST_SCRIPT.replace("PER_POST", "100") + DONE_SCRIPT)):
        path = workdir / f"{name}.lua"
        path.write_text(text.replace("TOKEN", token))
        paths[name] = path
    return paths


def flush_redis(store_url: str) -> None:
    """Empty the bench's Redis: each phase starts without the requests the previous one stored."""
    if store_url.startswith("redis://"):
        host, port = store_url.removeprefix("redis://").split("/")[0].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"*1\r\n$7\r\nFLUSHDB\r\n")
            if not sock.recv(16).startswith(b"+OK"):
                raise RuntimeError("FLUSHDB failed")


def measure(store_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Run]:
    """Each load on a fresh ``topfib run`` (and an empty Redis): the active requests a phase leaves
    (100k after the 100-IP one) would otherwise weigh on the next through the control loop's reads."""
    token = new_token()
    lua = scripts(workdir, token)
    phases = {"healthz": ("/healthz", "healthz"), "post 1 IP": ("/v1/requests", "post1"),
              "post 100 IPs": ("/v1/requests", "post100"), "sequential": ("", "")}
    runs = {}
    for name, (path, script) in phases.items():
        flush_redis(store_url)
        process, port = start_topfib(store_url, token, workdir, args.nice)
        try:
            run_wrk(process.pid, port, "/v1/requests", lua["post1"], 1, args.connections, args.nice)  # warm
            if name == "sequential":
                runs[name] = sequential_posts(port, token)
            else:
                runs[name] = run_wrk(process.pid, port, path, lua[script], args.duration, args.connections,
                                     args.nice)
        finally:
            stop(process)
    return runs


def measure_replicas(store_url: str, workdir: Path, args: argparse.Namespace) -> list[Run]:
    """R ``topfib run`` on one Redis, each loaded by its own wrk at the same time (one-IP POSTs)."""
    token = new_token()
    lua = scripts(workdir, token)
    flush_redis(store_url)
    started = [start_topfib(store_url, token, workdir, args.nice) for _ in range(args.replicas)]
    try:
        loads = [(wrk(f"http://127.0.0.1:{port}/v1/requests", lua["post1"], args.duration, args.connections,
                      args.nice), (process.pid, cpu_seconds(process.pid))) for process, port in started]
        return [wrk_result(load, cpu) for load, cpu in loads]
    finally:
        for process, _ in started:
            stop(process)


def memory_posts(args: argparse.Namespace) -> int:
    """The first bar alone: one ``topfib run`` on the memory store, one-IP POSTs."""
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        token = new_token()
        lua = scripts(workdir, token)
        process, port = start_topfib("memory://", token, workdir, args.nice)
        try:
            run_wrk(process.pid, port, "/v1/requests", lua["post1"], 1, args.connections, args.nice)  # warm
            run = run_wrk(process.pid, port, "/v1/requests", lua["post1"], args.duration, args.connections,
                          args.nice)
        finally:
            stop(process)
    report("memory", {"post 1 IP": run})
    met = run.rate >= 3000 and run.p99_ms <= 20 and run.errors == 0
    print(f"bar memory ≥ 3000 POST/s, p99 ≤ 20 ms: {'met' if met else 'NOT met'}")
    return 0 if met else 1


def report(name: str, runs: dict[str, Run]) -> None:
    for what, run in runs.items():
        ips = run.rate * (100 if what == "post 100 IPs" else 1)
        print(f"{name:7} {what:13} {run.rate:9.0f} {ips:9.0f} {run.p50_ms:7.1f} {run.p99_ms:7.1f} "
              f"{run.errors:7d} {run.cpu_us:12.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk measurement")
    parser.add_argument("--connections", type=int, default=16, help="kept-alive connections per wrk")
    parser.add_argument("--replicas", type=int, default=2,
                        help="topfib run processes sharing Redis (0: skip)")
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling niceness of topfib, wrk and redis (e.g. -10 on a shared machine)")
    parser.add_argument("--memory-posts", action="store_true",
                        help="only the in-memory one-IP POSTs (the first bar), to iterate on it")
    args = parser.parse_args()
    if args.memory_posts:
        return memory_posts(args)
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install {tool})", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        memory = measure("memory://", workdir, args)
        redis_port = free_port()
        redis = subprocess.Popen(["nice", "-n", str(args.nice), "redis-server", "--port", str(redis_port),
                                  "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
                                 stdout=subprocess.DEVNULL)
        try:
            wait_port(redis_port)
            url = f"redis://127.0.0.1:{redis_port}/0"
            redis_runs = measure(url, workdir, args)
            replicas = measure_replicas(url, workdir, args) if args.replicas >= 2 else []
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    print(f"topfib run, kept-alive: wrk -t1 -c{args.connections} -d{args.duration:g}s, sequential: one "
          f"http.client connection; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'store':7} {'load':13} {'req/s':>9} {'IPs/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7} "
          f"{'CPU us/req':>12}")
    report("memory", memory)
    report("redis", redis_runs)
    if replicas:
        total = sum(run.rate for run in replicas)
        print(f"redis, {len(replicas)} topfib run on one Redis, one-IP POSTs at once: "
              + ", ".join(f"{run.rate:.0f}/s (p99 {run.p99_ms:.1f} ms)" for run in replicas)
              + f"; total {total:.0f}/s, errors {sum(run.errors for run in replicas)}")
    posts = memory["post 1 IP"]
    bars = {
        "memory ≥ 3000 POST/s, p99 ≤ 20 ms": posts.rate >= 3000 and posts.p99_ms <= 20,
        "memory sequential p99 ≤ 5 ms": memory["sequential"].p99_ms <= 5,
        "redis ≥ 2000 IPs/s per process": redis_runs["post 1 IP"].rate >= 2000,
        "redis ≥ 20000 IPs/s in 100-IP POSTs": redis_runs["post 100 IPs"].rate * 100 >= 20000,
        "no errors": all(run.errors == 0 for run in (*memory.values(), *redis_runs.values(), *replicas)),
    }
    for bar, met in bars.items():
        print(f"bar {bar}: {'met' if met else 'NOT met'}")
    return 0 if all(bars.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
