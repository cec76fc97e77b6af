#!/usr/bin/env python3
"""Quick measurements against a real kalamdb-server (not the benchmark suite of issue #6).

Starts the given binary on a free port with a temporary data dir and reports:
  - one 100k-row multi-row INSERT, and a full-table SELECT of those rows;
  - a flush of N buffered rows spread over U users: rows/s, MB/s, and the server's peak RSS
    during the flush (VmHWM after resetting it with /proc/PID/clear_refs).

usage: scripts/measure.py BINARY [--flush-rows 2000000] [--users 1000]
"""
import argparse, base64, json, os, socket, subprocess, sys, tempfile, time, urllib.request, urllib.error

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

class Server:
    def __init__(self, binary, data_dir):
        self.port = free_port()
        env = dict(os.environ, KALAMDB_SERVER_PORT=str(self.port), KALAMDB_DATA_DIR=data_dir,
                   KALAMDB_ROOT_PASSWORD="pw", KALAMDB_LOG="warn", KALAMDB_FLUSH_DEFAULT_POLICY="")
        self.proc = subprocess.Popen([binary], env=env, cwd=data_dir, stderr=open(os.path.join(data_dir, "log"), "w"))
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1); return
            except Exception:
                time.sleep(0.1)
        raise SystemExit("server did not start")

    def sql(self, sql, user="root", password="pw"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/api/sql", data=json.dumps({"sql": sql}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()})
        try:
            with urllib.request.urlopen(req, timeout=3600) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{e.code}: {e.read()[:500]}")

    def status(self, field):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.proc.terminate(); self.proc.wait()

def row(i, user_col=True):
    return f"({i}, 'u{i % 97}', 'some text body of about forty bytes {i:06d}', {i * 0.5}, '2025-01-{i % 28 + 1:02d}T10:00:00.123', {'true' if i % 2 else 'false'})"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--flush-rows", type=int, default=2_000_000)
    ap.add_argument("--users", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        s = Server(a.binary, d)
        s.sql("CREATE TABLE bench (id BIGINT PRIMARY KEY, k TEXT, body TEXT, v DOUBLE, ts TIMESTAMP, b BOOLEAN)")
        sql = "INSERT INTO bench VALUES " + ", ".join(row(i) for i in range(100_000))
        t = time.time(); r = s.sql(sql); ins = time.time() - t
        assert r["results"][0]["row_count"] == 100_000
        t = time.time(); r = s.sql("SELECT * FROM bench"); sel = time.time() - t
        assert r["results"][0]["row_count"] == 100_000
        print(f"insert 100k rows in one statement ({len(sql)/1e6:.1f} MB of SQL): {ins:.2f} s = {100_000/ins:,.0f} rows/s")
        print(f"select 100k rows (full table, JSON): {sel:.2f} s = {100_000/sel:,.0f} rows/s")

        s.sql("CREATE USER TABLE ut (id BIGINT PRIMARY KEY, k TEXT, body TEXT, v DOUBLE, ts TIMESTAMP, b BOOLEAN)")
        per_user = a.flush_rows // a.users
        t = time.time()
        # Users are created in bulk; rows go in through EXECUTE AS from a service account.
        s.sql("; ".join(f"CREATE USER 'user{u}' WITH PASSWORD 'p' ROLE user" for u in range(a.users)))
        chunk = 20_000
        for u in range(a.users):
            for start in range(0, per_user, chunk):
                n = min(chunk, per_user - start)
                s.sql(f"EXECUTE AS USER 'user{u}' (INSERT INTO ut VALUES "
                      + ", ".join(row(u * per_user + start + i) for i in range(n)) + ")")
        load = time.time() - t
        total = per_user * a.users
        print(f"loaded {total:,} rows for {a.users} users in {load:.1f} s ({total/load:,.0f} rows/s)")
        rss_before = s.status("VmRSS")
        with open(f"/proc/{s.proc.pid}/clear_refs", "w") as f:
            f.write("5")
        t = time.time(); r = s.sql("STORAGE FLUSH TABLE default.ut WAIT"); fl = time.time() - t
        res = r["results"][0]
        job = dict(zip([c["name"] for c in res["schema"]], res["rows"][0]))
        result = json.loads(job["result"])
        peak = s.status("VmHWM")
        assert job["status"] == "completed", job
        assert result["rows_flushed"] == total, result
        print(f"flush {total:,} rows / {result['users_processed']} users / {result['files_written']} files: "
              f"{fl:.1f} s = {total/fl:,.0f} rows/s, {result['bytes_written']/1e6/fl:.1f} MB/s of Parquet "
              f"({result['bytes_written']/1e6:.1f} MB)")
        print(f"RSS before flush {rss_before/2**20:.0f} MiB, peak during flush {peak/2**20:.0f} MiB "
              f"(growth {(peak-rss_before)/2**20:.0f} MiB)")
        t = time.time(); r = s.sql(f"EXECUTE AS USER 'user{min(7, a.users - 1)}' (SELECT count(*) FROM ut)"); q = time.time() - t
        print(f"count(*) of one user's flushed rows: {r['results'][0]['rows'][0][0]} in {q*1000:.1f} ms")
        s.stop()

if __name__ == "__main__":
    main()
