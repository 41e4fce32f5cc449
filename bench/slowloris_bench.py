#!/usr/bin/env python3
"""Measures how `discreet serve` answers a normal client while others hold half-sent requests.

Starts `discreet serve` (release build) on a private folder, then for each number of
half-open sockets (each has sent half a request head and then nothing) measures the latency
of GET /healthz on fresh connections (p50, p99, worst), and checks that the half-open
sockets are closed by the server's header-read timeout. Run it with a connection cap lower
than the number of sockets (--max-connections) to see the cap and the timeout at work: a
normal request then waits for a slot (at most one header-read timeout).
Usage: python3 bench/slowloris_bench.py [--binary target/release/discreet]
         [--sockets 0,200] [--requests 200] [--max-connections 1024]
         [--header-read-timeout 10s]
"""

import argparse, math, os, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HALF_A_HEAD = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nAccept: */"


def percentile(values, fraction):
    # Nearest rank, the rule of every benchmark of the workspace (discreet_eval::percentile).
    values = sorted(values)
    rank = min(len(values), max(1, math.ceil(fraction * len(values))))
    return values[rank - 1]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthz(port):
    """One GET /healthz on a fresh connection: (status, seconds)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        answer = b""
        while True:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    elapsed = time.perf_counter() - started
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
    return status, elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "discreet"))
    parser.add_argument("--sockets", default="0,200")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-connections", default="1024")
    parser.add_argument("--header-read-timeout", default="10s")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="discreet-slowloris-")
    port = free_port()
    log = open(os.path.join(folder, "serve.log"), "w")
    server = subprocess.Popen(
        [args.binary, "serve", "--data-dir", os.path.join(folder, "data"),
         "--kek-file", os.path.join(folder, "kek"), "--listen", f"127.0.0.1:{port}",
         "--max-connections", args.max_connections,
         "--header-read-timeout", args.header_read_timeout],
        stdout=log, stderr=log)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if healthz(port)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("the server did not become ready")
            time.sleep(0.1)
        print(f"max connections {args.max_connections}, header-read timeout {args.header_read_timeout}")
        for count in [int(text) for text in args.sockets.split(",")]:
            held = []
            for _ in range(count):
                half = socket.create_connection(("127.0.0.1", port), timeout=120)
                half.sendall(HALF_A_HEAD)
                held.append(half)
            latencies, failures = [], 0
            for _ in range(args.requests):
                status, seconds = healthz(port)
                if status == 200:
                    latencies.append(seconds)
                else:
                    failures += 1
            closed = 0
            for half in held:
                try:
                    half.settimeout(120)
                    if half.recv(1) == b"":
                        closed += 1
                except OSError:
                    closed += 1
                half.close()
            print(f"{count:5d} half-open sockets: {len(latencies)} answered, {failures} failed; "
                  f"p50 {percentile(latencies, 0.5) * 1000:.2f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:.2f} ms, "
                  f"worst {max(latencies) * 1000:.2f} ms; "
                  f"{closed} of {count} half-open sockets closed by the server")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
