#!/usr/bin/env python3
"""Times `discreet import` of JSON Lines and CSV beside HTTP ingest of the same events.

Writes the bundled Online Retail purchases (shifted so the last falls on the day before
today, as the demo does; customers as `c-<CustomerID>`) as JSON Lines, as CSV and as
`POST /v1/events` bodies of 1,000 events, then, each on a fresh data folder with the same
binary:
  - `discreet import purchases.jsonl` and `discreet import purchases.csv` (the records/s the
    import reports, which counts from reading the file to the last stored batch, and the
    whole process's wall time, opening the store included);
  - `discreet serve`, then the bodies posted in order over one keep-alive connection, and
    again from two connections at once (events/s from the first request to the last answer);
  - the demo's shape as JSON Lines (every item with its title and price, the demo's consent
    mix, the purchases) imported, then `discreet export --all --format jsonl` of that store.
Figures only; nothing is asserted. Usage:
  python3 bench/import_bench.py [--binary target/release/discreet] [--rounds 2]
"""

import argparse, csv, datetime, gzip, http.client, json, os, re, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "online-retail")


def fnv1a_64(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def personalization_granted(customer):
    # The demo's consent mix (crates/cli/src/demo.rs, demo_consents).
    return fnv1a_64(customer) % 100 <= 77


def purchases():
    rows = list(csv.DictReader(gzip.open(os.path.join(DATA, "online_retail_purchases.csv.gz"), "rt")))
    parse = lambda text: datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    last = max(parse(row["InvoiceDate"]) for row in rows)
    shift = (time.time() // 86400 - 1) * 86400 - last
    events = []
    for row in rows:
        at = datetime.datetime.fromtimestamp(parse(row["InvoiceDate"]) + shift, datetime.timezone.utc)
        events.append({"subject": f"c-{row['CustomerID']}", "type": "purchase", "item": row["StockCode"],
                       "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "quantity": int(row["Quantity"]),
                       "context": {"country": row["Country"]}})
    return events


def run(binary, args, folder):
    started = time.time()
    output = subprocess.run([binary] + args + ["--data-dir", os.path.join(folder, "data"),
                            "--kek-file", os.path.join(folder, "kek")], capture_output=True, text=True)
    wall = time.time() - started
    if output.returncode != 0:
        sys.exit(f"`discreet {' '.join(args)}` failed ({output.returncode}):\n{output.stderr}")
    return output, wall


def post_all(port, key, bodies, connections):
    chunks = [bodies[i::connections] for i in range(connections)]
    failures = []

    def send(chunk):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in chunk:
            connection.request("POST", "/v1/events", body=body, headers={
                "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                failures.append(data[:200])
        connection.close()

    threads = [threading.Thread(target=send, args=(chunk,)) for chunk in chunks]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"ingest failed: {failures[0]}")
    return time.time() - started


def http_ingest(binary, folder, port, bodies, connections):
    output, _ = run(binary, ["keys", "create", "--role", "storefront", "--json"], folder)
    key = json.loads(output.stdout)["secret"]
    server = subprocess.Popen([binary, "serve", "--data-dir", os.path.join(folder, "data"),
                               "--kek-file", os.path.join(folder, "kek"), "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        return post_all(port, key, bodies, connections)
    finally:
        server.terminate()
        server.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "discreet"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=7991)
    args = parser.parse_args()

    events = purchases()
    work = tempfile.mkdtemp(prefix="discreet-import-bench-")
    jsonl = os.path.join(work, "purchases.jsonl")
    with open(jsonl, "w") as out:
        for event in events:
            out.write(json.dumps(dict(kind="event", **event)) + "\n")
    csv_path = os.path.join(work, "purchases.csv")
    with open(csv_path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["subject", "type", "item", "at", "quantity", "context.country"])
        for event in events:
            writer.writerow([event["subject"], "purchase", event["item"], event["at"], event["quantity"],
                             event["context"]["country"]])
    bodies = [json.dumps({"events": events[i:i + 1000]}) for i in range(0, len(events), 1000)]
    print(f"{len(events):,} purchases of {len({e['subject'] for e in events}):,} customers; "
          f"{len(bodies)} HTTP bodies of up to 1,000 events")

    figures = {}
    for round_number in range(args.rounds):
        for label, path in (("jsonl", jsonl), ("csv", csv_path)):
            folder = tempfile.mkdtemp(prefix=f"{label}-", dir=work)
            output, wall = run(args.binary, ["import", path, "--json"], folder)
            report = json.loads(output.stdout)
            figures.setdefault(f"import {label}", []).append(
                (report["records_per_second"], len(events) / wall))
        for connections in (1, 2):
            folder = tempfile.mkdtemp(prefix="http-", dir=work)
            seconds = http_ingest(args.binary, folder, args.port, bodies, connections)
            figures.setdefault(f"http x{connections}", []).append((len(events) / seconds, None))
        print(f"round {round_number + 1}: " + ", ".join(
            f"{name} {values[-1][0]:,.0f}/s" for name, values in figures.items()))

    best = lambda name, index: max(value[index] for value in figures[name])
    http_rate = best("http x1", 0)
    print(f"HTTP ingest, batches of 1,000, one connection: {http_rate:,.0f} events/s; "
          f"two connections: {best('http x2', 0):,.0f} events/s")
    for label in ("jsonl", "csv"):
        rate, process_rate = best(f"import {label}", 0), best(f"import {label}", 1)
        print(f"import {label}: {rate:,.0f} records/s as reported ({rate / http_rate:.2f}x HTTP), "
              f"{process_rate:,.0f} records/s over the whole process ({process_rate / http_rate:.2f}x HTTP)")

    # The demo's shape: items, consents and purchases; then export --all of it.
    items = list(csv.DictReader(gzip.open(os.path.join(DATA, "online_retail_items.csv.gz"), "rt")))
    demo = os.path.join(work, "demo.jsonl")
    customers = sorted({event["subject"] for event in events})
    with open(demo, "w") as out:
        for item in items:
            record = {"kind": "item", "item": item["item"], "title": item["title"]}
            if item.get("price"):
                record["price"] = float(item["price"])
            if item.get("available") == "false":
                record["available"] = False
            out.write(json.dumps(record) + "\n")
        consent_at = events[0]["at"]
        for customer in customers:
            out.write(json.dumps({"kind": "consent", "subject": customer, "purpose": "personalization",
                                  "granted": personalization_granted(customer[2:]), "source": "demo",
                                  "at": consent_at}) + "\n")
        for event in events:
            out.write(json.dumps(dict(kind="event", **event)) + "\n")
    folder = tempfile.mkdtemp(prefix="demo-", dir=work)
    output, wall = run(args.binary, ["import", demo, "--json"], folder)
    report = json.loads(output.stdout)
    print(f"demo shape as JSON Lines ({report['records']:,} records: {report['items']:,} items, "
          f"{report['consents_recorded']:,} consents, {report['events']:,} events): "
          f"{report['records_per_second']:,.0f} records/s as reported, {wall:.1f} s for the whole process")
    exported = os.path.join(work, "export.jsonl")
    output, wall = run(args.binary, ["export", "--all", "--format", "jsonl", "--output", exported], folder)
    match = re.search(r"exported .* in ([\d.]+) s", output.stderr)
    lines = sum(1 for _ in open(exported))
    print(f"export --all of the demo shape: {lines:,} lines in {float(match.group(1)) if match else float('nan'):.2f} s "
          f"(its own timing), {wall:.1f} s for the whole process (opening and rebuilding included)")


if __name__ == "__main__":
    main()
