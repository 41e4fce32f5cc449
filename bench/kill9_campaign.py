#!/usr/bin/env python3
"""Crash campaign: kill -9 the real server at random moments during ingest and during
forgets, restart it on the same data folder, and check what DESIGN.md promises (invariant 8,
"nothing acknowledged is lost"):

- every event whose batch was acknowledged (HTTP 200 read by the client before the kill) is
  in the subject's export after the restart;
- a batch sent but not answered is stored whole or not at all;
- no subject is half-forgotten: after the restart a subject whose forget was under way is
  either gone (export 404) or whole (every acknowledged event there), and a subject whose
  forget was acknowledged stays gone, with its receipt stored;
- the ledger verifies (`GET /v1/audit/verify`, and `discreet audit verify` at the end).

Even trials kill during ingest, odd trials during forgets. Each trial uses its own subjects,
so every check names exactly what that trial acknowledged; a last pass re-checks every trial.

    cargo build --release -p discreet
    python3 bench/kill9_campaign.py --binary target/release/discreet --trials 100

Prints one line per trial and a summary; exits 1 when any check failed. Only loopback
traffic, bounded in count and time; the data folder is a temporary one unless --work-dir
names one.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

READY_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 30


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    """One keep-alive connection to the server."""

    def __init__(self, port, secret):
        self.port = port
        self.secret = secret
        self.connection = None

    def request(self, method, path, body=None):
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        headers = {"Authorization": f"Bearer {self.secret}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            payload = response.read()
        except Exception:
            self.close()
            raise
        text = payload.decode("utf-8", "replace")
        try:
            value = json.loads(text) if text else None
        except ValueError:
            value = text
        return response.status, value

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def quoted(subject):
    return urllib.parse.quote(subject, safe="")


class Server:
    def __init__(self, binary, data_dir, kek_file, log_path):
        self.binary = binary
        self.data_dir = data_dir
        self.kek_file = kek_file
        self.log_path = log_path
        self.process = None
        self.port = None

    def start(self):
        self.port = free_port()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir, "--kek-file", self.kek_file,
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()
        started = time.monotonic()
        deadline = started + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode} at start (log: {self.log_path})")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server was not ready within {READY_TIMEOUT_S} s (log: {self.log_path})")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill9()


def event_time(offset_seconds):
    at = datetime.now(timezone.utc) - timedelta(seconds=offset_seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Trial:
    """What one trial sent and what the server acknowledged."""

    def __init__(self, number, kind):
        self.number = number
        self.kind = kind
        self.lock = threading.Lock()
        self.acked = {}  # subject -> set of items whose batch was acknowledged
        self.in_doubt = []  # batches sent, not answered: list of {subject: set(items)}
        self.forget_acked = {}  # subject -> receipt id
        self.forget_in_doubt = set()
        self.forgets_sent = 0
        self.batches_acked = 0
        self.in_flight_at_kill = False
        self.client_errors = []

    def subjects(self):
        return set(self.acked) | {subject for batch in self.in_doubt for subject in batch}


def batch_for(trial, serial, subjects, size, rng):
    events, sent = [], {}
    for index in range(size):
        subject = rng.choice(subjects)
        item = f"t{trial.number}-b{serial}-e{index}"
        events.append({"subject": subject, "type": rng.choice(["view", "cart", "purchase"]),
                       "item": item, "at": event_time(rng.randint(60, 3600)), "quantity": 1})
        sent.setdefault(subject, set()).add(item)
    return events, sent


def ingest_loop(client, trial, subjects, stop, rng, batch_size, serials):
    """Sends batches until `stop` is set or the server dies; records what was acknowledged."""
    while not stop.is_set():
        with trial.lock:
            serial = next(serials)
        events, sent = batch_for(trial, serial, subjects, batch_size, rng)
        with trial.lock:
            trial.in_doubt.append(sent)
        try:
            status, answer = client.request("POST", "/v1/events", {"events": events})
        except Exception:
            return  # the server was killed: the batch stays in doubt
        with trial.lock:
            trial.in_doubt.remove(sent)
            if status == 200 and isinstance(answer, dict) and answer.get("accepted") == len(events):
                for subject, items in sent.items():
                    trial.acked.setdefault(subject, set()).update(items)
                trial.batches_acked += 1
            else:
                trial.client_errors.append(f"ingest answered {status}")
                return


def forget_loop(client, trial, queue, rng):
    while True:
        with trial.lock:
            if not queue:
                return
            subject = queue.pop()
            trial.forget_in_doubt.add(subject)
            trial.forgets_sent += 1
        try:
            status, answer = client.request("DELETE", f"/v1/subjects/{quoted(subject)}")
        except Exception:
            return  # killed: this forget stays in doubt
        with trial.lock:
            trial.forget_in_doubt.discard(subject)
            if status == 200 and isinstance(answer, dict):
                trial.forget_acked[subject] = answer["receipt"]["id"]
            else:
                trial.client_errors.append(f"forget answered {status}")
                return


def run_ingest_trial(server, secret, trial, rng, args):
    subjects = [f"k9-t{trial.number}-s{index}" for index in range(args.subjects)]
    stop = threading.Event()
    serials = iter(range(1_000_000))
    clients = [Client(server.port, secret) for _ in range(args.connections)]
    threads = [threading.Thread(target=ingest_loop,
                                args=(client, trial, subjects, stop, random.Random(rng.random()),
                                      args.batch_size, serials))
               for client in clients]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(args.min_delay, args.max_delay))
    with trial.lock:
        trial.in_flight_at_kill = bool(trial.in_doubt)
    server.kill9()
    stop.set()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()


def run_forget_trial(server, secret, trial, rng, args):
    subjects = [f"k9-t{trial.number}-s{index}" for index in range(args.subjects)]
    client = Client(server.port, secret)
    # Acknowledged history first, so every forget has rows, keys and model state to erase.
    for serial in range(max(1, args.subjects * args.events_per_subject // args.batch_size)):
        events, sent = batch_for(trial, serial, subjects, args.batch_size, rng)
        status, answer = client.request("POST", "/v1/events", {"events": events})
        if status != 200:
            raise RuntimeError(f"setting up trial {trial.number}: ingest answered {status}: {answer}")
        for subject, items in sent.items():
            trial.acked.setdefault(subject, set()).update(items)
        trial.batches_acked += 1
    client.close()
    queue = [subject for subject in subjects if subject in trial.acked]
    rng.shuffle(queue)
    clients = [Client(server.port, secret) for _ in range(args.connections)]
    threads = [threading.Thread(target=forget_loop, args=(client, trial, queue, rng)) for client in clients]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(0.0, args.forget_window))
    with trial.lock:
        trial.in_flight_at_kill = bool(trial.forget_in_doubt)
    server.kill9()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()


class Tally:
    def __init__(self):
        self.events_acked = 0
        self.events_lost = 0
        self.partial_batches = 0
        self.unknown_items = 0
        self.half_forgotten = 0
        self.forgets_undone = 0
        self.receipts_missing = 0
        self.ledger_failures = 0
        self.problems = []

    def fail(self, message):
        self.problems.append(message)


def exported_items(client, subject):
    status, answer = client.request("GET", f"/v1/subjects/{quoted(subject)}/export")
    if status == 404:
        return status, None
    if status != 200:
        return status, None
    return status, {event.get("item") for event in answer.get("events", [])}


def check_trial(client, trial, tally, count_acked):
    """Checks one trial's promises against the restarted server."""
    in_doubt_items = {}
    for batch in trial.in_doubt:
        for subject, items in batch.items():
            in_doubt_items.setdefault(subject, set()).update(items)
    for subject in sorted(trial.subjects()):
        acked = trial.acked.get(subject, set())
        status, held = exported_items(client, subject)
        if count_acked and subject not in trial.forget_acked and not (subject in trial.forget_in_doubt and status == 404):
            tally.events_acked += len(acked)
        if subject in trial.forget_acked:
            if status != 404:
                tally.forgets_undone += 1
                tally.fail(f"trial {trial.number}: an acknowledged forget answers export {status}")
            receipt_status, _ = client.request("GET", f"/v1/receipts/{quoted(trial.forget_acked[subject])}")
            if receipt_status != 200:
                tally.receipts_missing += 1
                tally.fail(f"trial {trial.number}: the receipt of an acknowledged forget answers {receipt_status}")
            continue
        if subject in trial.forget_in_doubt and status == 404:
            continue  # the forget completed (at once or when the vault reopened)
        if status == 404 and not acked:
            continue  # only named by batches the kill cut before they were stored
        if status != 200:
            if subject in trial.forget_in_doubt:
                tally.half_forgotten += 1
                tally.fail(f"trial {trial.number}: a subject whose forget was cut answers export {status}")
            else:
                tally.events_lost += len(acked)
                tally.fail(f"trial {trial.number}: a subject with {len(acked)} acknowledged events answers export {status}")
            continue
        lost = acked - held
        if lost:
            if subject in trial.forget_in_doubt:
                tally.half_forgotten += 1
                tally.fail(f"trial {trial.number}: a subject whose forget was cut kept {len(acked) - len(lost)} of {len(acked)} events")
            else:
                tally.events_lost += len(lost)
                tally.fail(f"trial {trial.number}: {len(lost)} of {len(acked)} acknowledged events lost")
        unknown = held - acked - in_doubt_items.get(subject, set())
        if unknown:
            tally.unknown_items += len(unknown)
            tally.fail(f"trial {trial.number}: {len(unknown)} events never sent are held")
    for batch in trial.in_doubt:
        present, total = 0, 0
        for subject, items in batch.items():
            total += len(items)
            if subject in trial.forget_acked:
                continue
            _, held = exported_items(client, subject)
            present += len(items & (held or set()))
        if 0 < present < total:
            tally.partial_batches += 1
            tally.fail(f"trial {trial.number}: a batch cut by the kill is stored in part ({present} of {total})")


def verify_ledger(client, tally, where):
    status, answer = client.request("GET", "/v1/audit/verify")
    if status != 200 or not isinstance(answer, dict) or answer.get("ok") is not True:
        tally.ledger_failures += 1
        tally.fail(f"{where}: ledger verify answered {status}: {answer}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/discreet")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--work-dir", help="keep the data folder and logs here (default: a temporary folder)")
    parser.add_argument("--subjects", type=int, default=12, help="subjects per trial")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--events-per-subject", type=int, default=40, help="history of each subject in forget trials")
    parser.add_argument("--min-delay", type=float, default=0.05, help="earliest kill after ingest starts, s")
    parser.add_argument("--max-delay", type=float, default=0.8, help="latest kill after ingest starts, s")
    parser.add_argument("--forget-window", type=float, default=0.12, help="latest kill after forgets start, s")
    args = parser.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no executable at {binary}: build it with `cargo build --release -p discreet`")
    work = args.work_dir or tempfile.mkdtemp(prefix="kill9-")
    os.makedirs(work, exist_ok=True)
    data_dir, kek_file = os.path.join(work, "data"), os.path.join(work, "kek")
    log_path = os.path.join(work, "server.log")
    created = subprocess.run(
        [binary, "keys", "create", "--role", "admin", "--label", "kill9 campaign", "--data-dir", data_dir,
         "--kek-file", kek_file, "--json"], capture_output=True, text=True, check=True)
    secret = json.loads(created.stdout)["secret"]

    rng = random.Random(args.seed)
    server = Server(binary, data_dir, kek_file, log_path)
    tally = Tally()
    trials = []
    restarts = []
    began = time.monotonic()
    server.start()
    for number in range(args.trials):
        trial = Trial(number, "ingest" if number % 2 == 0 else "forget")
        if trial.kind == "ingest":
            run_ingest_trial(server, secret, trial, rng, args)
        else:
            run_forget_trial(server, secret, trial, rng, args)
        trials.append(trial)
        restarts.append(server.start())
        client = Client(server.port, secret)
        before = len(tally.problems)
        check_trial(client, trial, tally, count_acked=True)
        verify_ledger(client, tally, f"after trial {number}")
        client.close()
        acked = sum(len(items) for items in trial.acked.values())
        print(f"trial {number:3d} {trial.kind:6s} acked batches {trial.batches_acked:4d} events {acked:6d} "
              f"forgets acked {len(trial.forget_acked):3d} in doubt {len(trial.forget_in_doubt)} "
              f"batches in doubt {len(trial.in_doubt)} in flight at kill {trial.in_flight_at_kill} "
              f"restart {restarts[-1]:.2f} s problems {len(tally.problems) - before}", flush=True)
        for error in trial.client_errors:
            tally.fail(f"trial {number}: {error} before the kill")

    # Last pass: every trial's promises still hold after all the later crashes.
    client = Client(server.port, secret)
    final = Tally()
    for trial in trials:
        check_trial(client, trial, final, count_acked=False)
    verify_ledger(client, final, "final pass")
    client.close()
    server.stop()
    offline = subprocess.run([binary, "audit", "verify", "--data-dir", data_dir, "--kek-file", kek_file],
                             capture_output=True, text=True)
    if offline.returncode != 0:
        final.ledger_failures += 1
        final.fail(f"`discreet audit verify` exited {offline.returncode}: {offline.stdout.strip()} {offline.stderr.strip()}")

    kinds = {"ingest": [t for t in trials if t.kind == "ingest"], "forget": [t for t in trials if t.kind == "forget"]}
    restarts_sorted = sorted(restarts)
    print()
    print(f"trials: {len(trials)} ({len(kinds['ingest'])} killed during ingest, {len(kinds['forget'])} during forgets) "
          f"in {time.monotonic() - began:.0f} s")
    print(f"kills with a batch in flight: {sum(t.in_flight_at_kill for t in kinds['ingest'])} of {len(kinds['ingest'])}; "
          f"with a forget in flight: {sum(t.in_flight_at_kill for t in kinds['forget'])} of {len(kinds['forget'])}")
    print(f"acknowledged events that must be kept: {tally.events_acked}; lost: {tally.events_lost} (final pass: {final.events_lost})")
    print(f"batches cut by a kill: {sum(len(t.in_doubt) for t in trials)}; stored in part: {tally.partial_batches} "
          f"(final pass: {final.partial_batches}); events held that were never sent: {tally.unknown_items}")
    print(f"forgets acknowledged: {sum(len(t.forget_acked) for t in trials)}; cut by a kill: "
          f"{sum(len(t.forget_in_doubt) for t in trials)}; half-forgotten subjects: {tally.half_forgotten} "
          f"(final pass: {final.half_forgotten}); acknowledged forgets undone: {tally.forgets_undone + final.forgets_undone}; "
          f"receipts missing: {tally.receipts_missing + final.receipts_missing}")
    print(f"ledger verify failures: {tally.ledger_failures + final.ledger_failures} "
          f"(HTTP after each restart and at the end, and `discreet audit verify` offline)")
    print(f"restart to ready: p50 {restarts_sorted[len(restarts_sorted) // 2]:.2f} s, max {restarts_sorted[-1]:.2f} s")
    problems = tally.problems + final.problems
    for problem in problems[:50]:
        print(f"problem: {problem}")
    if not args.work_dir:
        print(f"data folder and server log: {work}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
