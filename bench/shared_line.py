"""bench/shared_line.py: bench/run's `shared-line` scenario, two cafés on one PostgreSQL.

    bench/run --only shared-line                 one window, both cafés loaded at once
    bench/run --only shared-line --minutes 10    ten one-minute windows in a row: the decay

A fresh database on CAFE_TEST_DATABASE_URL's server (dropped after), two `cafe-server
--database-url postgres://…` on it, and two `cafe bench --rpc counter --server-pid <its
café>` at once, one a café. Beside the generators' figures: the cafés' CPU per order,
PostgreSQL's (polled from /proc), commits and rows written per order and dead tuples
(pg_stat_database, pg_stat_user_tables), read at the window's edges while both cafés are
busy: a backend publishes its counts about once a second, so both edges lag alike and
their difference is the window's. bench/README.md explains each figure.
"""

import json
import os
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

CAFES = ("A", "B")
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
GOAL = "≥ 0.95 of Little's law, café CPU ≤ 150 µs per order"
LABEL = "two cafés: of Little's law; café, PostgreSQL CPU/order"
DECAY_GOAL = "≤ 10 % fewer orders/s in the last minute than in the first"


# ---------------------------------------------------------------- PostgreSQL

def psql(url, sql, timeout=60):
    return subprocess.run(["psql", "-X", "-q", "-At", "-d", url, "-c", sql],
                          capture_output=True, text=True, timeout=timeout)


class Database:
    """A fresh database on the server of `admin`, dropped by `drop`."""

    def __init__(self, admin):
        self.admin = admin
        self.name = f"cafe_bench_shared_line_{os.getpid()}_{int(time.time())}"
        self.url = urllib.parse.urlunsplit(
            urllib.parse.urlsplit(admin)._replace(path=f"/{self.name}"))

    def create(self):
        """None when created, else why not (one line)."""
        try:
            answer = psql(self.admin, f"CREATE DATABASE {self.name}", timeout=15)
        except (OSError, subprocess.TimeoutExpired) as error:
            return str(error)
        if answer.returncode != 0:
            return (answer.stderr.strip().splitlines() or ["psql failed"])[0].strip()
        return None

    def drop(self):
        psql(self.admin, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def query(self, sql):
        answer = psql(self.url, sql)
        if answer.returncode != 0:
            raise RuntimeError(answer.stderr.strip())
        return json.loads(answer.stdout)

    def settings(self):
        names = ["server_version", "autovacuum", "autovacuum_naptime",
                 "autovacuum_vacuum_scale_factor", "synchronous_commit", "shared_buffers",
                 "max_connections"]
        listed = ", ".join(f"'{n}'" for n in names)
        return self.query("SELECT json_object_agg(name, setting || coalesce(unit, '')) "
                          f"FROM pg_settings WHERE name IN ({listed})")

    def stats(self):
        """The database's counters, its tables' dead tuples, and the orders table's counts
        (summed over its partitions, if the store partitions it), as they stand now.
        psql's own connection adds one commit to each reading."""
        return self.query("""
            SELECT json_build_object(
              'xact_commit', d.xact_commit, 'xact_rollback', d.xact_rollback,
              'tup_inserted', d.tup_inserted, 'tup_updated', d.tup_updated,
              'tup_deleted', d.tup_deleted,
              'dead_all', (SELECT sum(n_dead_tup) FROM pg_stat_user_tables),
              'orders', (SELECT json_build_object(
                  'n_tup_ins', sum(n_tup_ins), 'n_tup_upd', sum(n_tup_upd),
                  'n_tup_hot_upd', sum(n_tup_hot_upd), 'n_tup_del', sum(n_tup_del),
                  'n_live_tup', sum(n_live_tup), 'n_dead_tup', sum(n_dead_tup),
                  'autovacuum_count', sum(autovacuum_count),
                  'autoanalyze_count', sum(autoanalyze_count),
                  'bytes', sum(pg_total_relation_size(relid)))
                FROM pg_stat_user_tables
                WHERE relid = to_regclass('orders')
                   OR relid IN (SELECT relid FROM pg_partition_tree(to_regclass('orders')))))
            FROM pg_stat_database d WHERE d.datname = current_database()""")


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class PostgresCpu:
    """PostgreSQL's CPU, from /proc, polled every half second on a thread. Each process
    named `postgres` is one of this database's backends (PostgreSQL's command line for a
    backend, `postgres: [cluster:] user database host state`, names it), the server's own
    (postmaster, checkpointer, WAL writer…: no database), or another database's backend.
    One that exits between two polls (a short connection) is still counted: the CPU of the
    children the postmaster reaped (its cutime + cstime) beyond what the polls last saw
    of them is `exited unseen`, of no known database."""

    KINDS = ("this database", "server", "other databases", "exited unseen")

    def __init__(self, database):
        self.database = database
        self.ticks = {}  # pid → (kind, utime + stime in clock ticks), as last seen
        self.alive = set()
        self.reaped = 0  # the postmaster's cutime + cstime
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.poll()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def kind(self, pid):
        words = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        words = [w.decode(errors="replace") for w in words]
        if self.database in words:
            return "this database"
        backend = any(w.endswith(")") and "(" in w for w in words) or "[local]" in words
        if words and words[0].startswith("postgres:") and (backend or "worker" in words):
            return "other databases"
        return "server"

    def poll(self):
        seen, reaped = {}, None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if comm(entry.name) != "postgres":
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                seen[int(entry.name)] = (self.kind(entry.name), int(fields[11]) + int(fields[12]))
                if comm(fields[1]) != "postgres":  # the postmaster: no postgres parent
                    reaped = int(fields[13]) + int(fields[14])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
        with self.lock:
            self.ticks.update(seen)  # a process that exited keeps its last reading
            self.alive = set(seen)
            if reaped is not None:
                self.reaped = reaped

    def loop(self):
        while not self.stopped.wait(0.5):
            self.poll()

    def mark(self):
        self.poll()
        with self.lock:
            return dict(ticks=dict(self.ticks), alive=set(self.alive), reaped=self.reaped)

    @staticmethod
    def spent(before, after):
        """CPU seconds by kind between two marks (a process new since `before` counts
        from zero)."""
        by_kind = dict.fromkeys(PostgresCpu.KINDS, 0)
        reaped_seen = 0
        for pid, (kind, ticks) in after["ticks"].items():
            by_kind[kind] += ticks - before["ticks"].get(pid, (kind, 0))[1]
            if pid not in after["alive"] and (pid in before["alive"] or pid not in before["ticks"]):
                reaped_seen += ticks  # exited in the window: its whole life is in `reaped`
        by_kind["exited unseen"] = max(0, after["reaped"] - before["reaped"] - reaped_seen)
        return {kind: ticks / os.sysconf("SC_CLK_TCK") for kind, ticks in by_kind.items()}

    def stop(self):
        self.stopped.set()
        self.thread.join()


# ---------------------------------------------------------------- one run

def measure(R, harness, scenario, minutes):
    """Runs the scenario (one window, or `minutes` windows in a row) with bench/run's
    helpers `R` and `harness`; fills scenario's results and returns the harness failures."""
    scenario["headline"] = dict(metric="of_little", label=LABEL, values={}, met=None)
    if "cafe" not in scenario["servers"]:
        return []
    admin = os.environ.get("CAFE_TEST_DATABASE_URL", ADMIN_URL)
    database = Database(admin)
    why = database.create()
    if why is not None:
        scenario["skipped"] = f"PostgreSQL at {admin} is not reachable ({why})"
        R.say(f"   skipped: {scenario['skipped']}")
        return []
    cafes, pg_cpu = [], None
    try:
        for name in CAFES:
            cafes.append(start_cafe(R, harness, scenario, name, database.url))
        pg_cpu = PostgresCpu(database.name)
        scenario["postgres_settings"] = database.settings()
        scenario["stats_at_start"] = database.stats()
        windows = []
        for i in range(minutes or 1):
            duration = scenario["minute_s"] if minutes else scenario["duration_s"]
            window = generate(R, harness, scenario, cafes, database, pg_cpu, duration)
            windows.append(window)
            if minutes:
                R.say(f"   minute {i + 1}/{minutes}: {fmt0(window['throughput'])} orders/s, "
                      f"{fmt0(window['orders_dead_after'])} dead tuples")
    except (R.Broken, RuntimeError) as broken:
        scenario["problems"].append(str(broken))
        return [f"shared-line: {broken}"]
    finally:
        if pg_cpu is not None:
            pg_cpu.stop()
        for _, server, _ in cafes:
            R.stop(server)
        try:
            if cafes:
                scenario["stats_at_end"] = database.stats()  # the cafés' backends flushed
        except RuntimeError:
            pass
        database.drop()
    scenario["windows"] = windows
    scenario["minutes"] = minutes
    if minutes:
        scenario["goal"] = DECAY_GOAL
    scenario["headline"] = headline(scenario)
    problems = [p for w in windows for p in w["problems"]]
    scenario["problems"] += problems
    first = windows[0]
    R.say(f"   {first['throughput']:,.0f} orders/s ({fmt2(first['of_little'])} of Little), "
          f"café CPU/order {fmt0(first['cafe_cpu_per_order_us'])} µs, PostgreSQL "
          f"{fmt0(first['pg_cpu_per_order_us'])} µs")
    return [f"shared-line: {p}" for p in problems] if harness.smoke else []


def start_cafe(R, harness, scenario, name, url):
    port = R.free_port()
    log = harness.logs / f"shared-line.cafe-{name}.log"
    command = [str(harness.bin / "cafe-server"), "--listen", f"127.0.0.1:{port}",
               "--database-url", url, "--baristas", str(scenario["baristas"]),
               "--time-scale", f"{scenario['brew_s'] / R.LATTE_SECONDS:g}",
               "--queue-capacity", str(scenario["concurrency"] + 1_000),
               "--shutdown-grace", "2s"]
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              env=R.clean_env(), cwd=R.ROOT)
    try:
        R.wait_for_port(port, server, log)
        harness.check_menu(f"shared-line café {name}", port)
    except R.Broken:
        R.stop(server)
        raise
    return port, server, log


def generate(R, harness, scenario, cafes, database, pg_cpu, duration):
    """Both generators at once, one a café; PostgreSQL read at the window's edges."""
    warmup = scenario["warmup_s"]
    processes = []
    started = time.monotonic()
    for port, server, _ in cafes:
        command = [str(harness.bin / "cafe"), "--server", f"http://127.0.0.1:{port}", "--json",
                   "bench", "--rpc", "counter",
                   "--concurrency", str(scenario["concurrency"]),
                   "--connections", str(scenario["connections"]),
                   "--warmup", f"{warmup}s", "--duration", f"{duration}s",
                   "--drink", "latte", "--size", "medium", "--server-pid", str(server.pid)]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=R.clean_env()))
    reports = []
    try:
        time.sleep(max(0.0, started + warmup - time.monotonic()))
        cpu_before, stats_before = pg_cpu.mark(), database.stats()
        time.sleep(max(0.0, started + warmup + duration - time.monotonic()))
        cpu_after, stats_after = pg_cpu.mark(), database.stats()
        for name, process in zip(CAFES, processes):
            try:
                out, err = process.communicate(timeout=warmup + duration + 120)
            except subprocess.TimeoutExpired:
                raise R.Broken(f"café {name}'s `cafe bench` did not finish")
            if process.returncode != 0:
                raise R.Broken(f"café {name}'s `cafe bench` failed: {err.strip()}")
            reports.append(json.loads(out))
    finally:
        for process in processes:  # only when the harness broke: nothing is left running
            if process.poll() is None:
                process.kill()
                process.wait()
    return figures(scenario, reports, PostgresCpu.spent(cpu_before, cpu_after),
                   stats_before, stats_after, R.loadavg())


# ---------------------------------------------------------------- figures

def scenario(s, smoke):
    """bench/run's scenario entry (`s` is its constructor, which scales a smoke run down):
    500 customers a café for its 250 baristas, so Little's law binds. A customer spends part
    of each order outside the line (its placing and its READY each wait for a statement):
    with 300, the 50 spare ones did not cover that, and baristas waited for orders."""
    entry = s("shared-line", "two cafés on one PostgreSQL, 250 baristas each, 100 ms brew",
              "counter", 500, 250, 0.1, 3, 15, 2, servers=["cafe"], goal=GOAL,
              kind="shared-line")
    if smoke:  # a café on a fresh line takes a moment to start claiming: a longer window
        entry.update(warmup_s=1.0, duration_s=2.0)
    entry["minute_s"] = 2.0 if smoke else 60.0  # a window of --minutes
    return entry


def little(scenario):
    return len(CAFES) * min(scenario["concurrency"], scenario["baristas"]) / scenario["brew_s"]


def per(value, orders, scale=1.0):
    return value * scale / orders if orders else None


def figures(scenario, reports, pg_cpu_s, before, after, load):
    cafes = {}
    for name, r in zip(CAFES, reports):
        server = r.get("server_process") or {}
        cafes[name] = dict(
            throughput=r["throughput_per_s"], ok=r["ok"], requests=r["requests"],
            results=r["results"], abandoned=r["abandoned"],
            p50_ms=(r["latency"] or {}).get("p50_ms"), p99_ms=(r["latency"] or {}).get("p99_ms"),
            cpu_s=server.get("cpu_ms", 0) / 1e3, cores=server.get("cpu_cores"),
            cpu_per_order_us=per(server.get("cpu_ms", 0), r["ok"], 1e3),
            peak_rss_mib=server["hwm_kib"] / 1024 if server else None,
            generator_cores=r["generator"]["cpu_cores"], window_s=r["window_ms"] / 1e3)
    orders = sum(c["ok"] for c in cafes.values())
    window_s = max(c["window_s"] for c in cafes.values())
    throughput = sum(c["throughput"] for c in cafes.values())
    o0, o1 = before["orders"] or {}, after["orders"] or {}

    def delta(key, a=before, b=after):
        return (b.get(key) or 0) - (a.get(key) or 0)

    mine = pg_cpu_s["this database"] + pg_cpu_s["server"]
    problems = []
    for name, r in zip(CAFES, reports):
        if r["ok"] + r["errors"] != r["requests"] or sum(r["results"].values()) != r["requests"]:
            problems.append(f"café {name}: counts do not add up ({r['results']})")
        if r["ok"] == 0:
            problems.append(f"café {name} served nothing: {r['results']}")
    return dict(
        cafes=cafes, orders=orders, window_s=window_s, throughput=throughput,
        of_little=throughput / little(scenario),
        cafe_cpu_per_order_us=per(sum(c["cpu_s"] for c in cafes.values()), orders, 1e6),
        cafe_cores=sum(c["cores"] or 0 for c in cafes.values()),
        pg_cpu_s=pg_cpu_s, pg_cpu_per_order_us=per(mine, orders, 1e6),
        pg_cores=mine / window_s if window_s else None,
        commits_per_order=per(delta("xact_commit"), orders),
        rollbacks=delta("xact_rollback"),
        tuples_per_order={k: per(delta(k), orders)
                          for k in ("tup_inserted", "tup_updated", "tup_deleted")},
        orders_table_per_order={k: per(delta(k, o0, o1), orders)
                                for k in ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del")},
        orders_dead_before=o0.get("n_dead_tup"), orders_dead_after=o1.get("n_dead_tup"),
        all_dead_before=before.get("dead_all"), all_dead_after=after.get("dead_all"),
        orders_live_after=o1.get("n_live_tup"), orders_bytes_after=o1.get("bytes"),
        autovacuums=delta("autovacuum_count", o0, o1), autoanalyzes=delta("autoanalyze_count", o0, o1),
        load_after=load, problems=problems)


def headline(scenario):
    """The summary's figure: two cafés' share of Little's law and their CPU per order, or,
    with --minutes, the loss from the first minute to the last."""
    windows = scenario["windows"]
    first, last = windows[0], windows[-1]
    if scenario["minutes"]:
        loss = 1 - last["throughput"] / first["throughput"] if first["throughput"] else None
        scenario["loss"] = loss
        return dict(metric="loss", label="orders/s lost, first minute to last",
                    values={"cafe": loss}, met=loss is not None and loss <= 0.10)
    met = first["of_little"] >= 0.95 and (first["cafe_cpu_per_order_us"] or 1e9) <= 150
    return dict(metric="of_little", label=LABEL,
                values={"cafe": first["of_little"]}, met=met)


# ---------------------------------------------------------------- report

def fmt0(value, suffix=""):
    return "–" if value is None else f"{value:,.0f}{suffix}"


def fmt2(value):
    return "–" if value is None else f"{value:,.2f}"


def summary_row(s, profile):
    """The scenario's row in the summary table (a smoke run's tiny sizes judge nothing)."""
    met = "" if profile == "debug" else {True: "yes", False: "**no**", None: ""}[s["headline"]["met"]]
    if s.get("skipped") or not s.get("windows"):
        cell = "skipped: no PostgreSQL" if s.get("skipped") else "–"
    elif s["minutes"]:
        first, last, loss = s["windows"][0], s["windows"][-1], s["loss"]
        cell = (f"{fmt0(first['throughput'])} → {fmt0(last['throughput'])} orders/s, lost "
                f"{'–' if loss is None else f'{loss * 100:.1f} %'}")
    else:
        w = s["windows"][0]
        cell = (f"{fmt2(w['of_little'])} ({fmt0(w['throughput'])} orders/s); "
                f"{fmt0(w['cafe_cpu_per_order_us'], ' µs')}; {fmt0(w['pg_cpu_per_order_us'], ' µs')}")
    return f"| {s['name']} | {s['headline']['label']} | {cell} | | | | | | | {s['goal'] or ''} | {met} |"


def section(scenario, fmt_ms):
    """The scenario's lines in bench/run's report."""
    s = scenario
    lines = ["", f"## {s['name']}: {s['title']}", ""]
    if s.get("skipped"):
        return lines + [f"Skipped: {s['skipped']}."]
    length = (f"{s['minutes']} windows of {s['minute_s']:g} s in a row, each after a "
              f"{s['warmup_s']:g} s warm-up" if s.get("minutes") else
              f"--warmup {s['warmup_s']}s --duration {s['duration_s']}s")
    lines.append(
        f"Two `cafe-server --database-url postgres://…` on one fresh database, "
        f"{s['baristas']:,} embedded baristas each, brew {fmt_ms(s['brew_s'] * 1000)}; one "
        f"`cafe bench --rpc counter --concurrency {s['concurrency']} --connections "
        f"{s['connections']}` at each, at once, {length}. Little's law: "
        f"{little(s):,.0f} orders/s.")
    settings = ", ".join(f"{k} {v}" for k, v in (s.get("postgres_settings") or {}).items())
    lines += ["", f"PostgreSQL {settings}."] if settings else []
    for problem in s["problems"]:
        lines.append(f"\n> harness check: {problem}")
    if not s.get("windows"):
        return lines
    if s.get("minutes"):
        return lines + decay_table(s, fmt_ms)
    w = s["windows"][0]
    lines += ["", "| café | orders/s | of Little | p50 | p99 | CPU/order | café cores | "
              "peak RSS | results | abandoned | generator cores |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name, c in w["cafes"].items():
        results = ", ".join(f"{k} {v:,}" for k, v in c["results"].items()) or "none"
        lines.append(
            f"| {name} | {fmt0(c['throughput'])} | {fmt2(len(CAFES) * c['throughput'] / little(s))} | "
            f"{fmt_ms(c['p50_ms'])} | {fmt_ms(c['p99_ms'])} | {fmt0(c['cpu_per_order_us'], ' µs')} | "
            f"{fmt2(c['cores'])} | {c['peak_rss_mib'] or 0:,.1f} MiB | {results} | "
            f"{c['abandoned']:,} | {fmt2(c['generator_cores'])} |")
    lines.append(
        f"| both | **{fmt0(w['throughput'])}** | **{fmt2(w['of_little'])}** | | | "
        f"**{fmt0(w['cafe_cpu_per_order_us'], ' µs')}** | {fmt2(w['cafe_cores'])} | | "
        f"{w['orders']:,} orders | | |")
    return lines + postgres_table(w)


def postgres_table(w):
    t, o = w["tuples_per_order"], w["orders_table_per_order"]
    cpu = w["pg_cpu_s"]
    return [
        "", "| PostgreSQL, over the window | per order | in all |", "|---|---:|---:|",
        f"| CPU: this database's backends and the server's own processes | "
        f"**{fmt0(w['pg_cpu_per_order_us'], ' µs')}** | "
        f"{cpu['this database'] + cpu['server']:.2f} s ({fmt2(w['pg_cores'])} cores) |",
        f"| CPU: other databases' backends, and processes that exited unseen (other work "
        f"on the server, mostly) | "
        f"{fmt0(per(cpu['other databases'] + cpu['exited unseen'], w['orders'], 1e6), ' µs')} | "
        f"{cpu['other databases']:.2f} s + {cpu['exited unseen']:.2f} s |",
        f"| commits (pg_stat_database) | {fmt2(w['commits_per_order'])} | "
        f"rollbacks {w['rollbacks']:,} |",
        f"| rows inserted, updated, deleted (the database) | {fmt2(t['tup_inserted'])}, "
        f"{fmt2(t['tup_updated'])}, {fmt2(t['tup_deleted'])} | |",
        f"| `orders`: inserted, updated (of which HOT), deleted | {fmt2(o['n_tup_ins'])}, "
        f"{fmt2(o['n_tup_upd'])} ({fmt2(o['n_tup_hot_upd'])}), {fmt2(o['n_tup_del'])} | |",
        f"| dead tuples, window's start → end: `orders`; every table | | "
        f"{fmt0(w['orders_dead_before'])} → {fmt0(w['orders_dead_after'])}; "
        f"{fmt0(w.get('all_dead_before'))} → {fmt0(w.get('all_dead_after'))} |",
        f"| `orders`: live tuples and size at the end | | {fmt0(w['orders_live_after'])}, "
        f"{(w['orders_bytes_after'] or 0) / 2**20:,.1f} MiB |",
        f"| `orders`: autovacuums, autoanalyzes in the window | | "
        f"{w['autovacuums']:,}, {w['autoanalyzes']:,} |",
    ]


def decay_table(s, fmt_ms):
    lines = ["", "| minute | orders/s | of Little | p99 (worst café) | café CPU/order | "
             "PostgreSQL CPU/order | commits/order | `orders` dead tuples at its end | live | "
             "size | autovacuums | load |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, w in enumerate(s["windows"], 1):
        p99 = max((c["p99_ms"] or 0) for c in w["cafes"].values()) or None
        lines.append(
            f"| {i} | {fmt0(w['throughput'])} | {fmt2(w['of_little'])} | {fmt_ms(p99)} | "
            f"{fmt0(w['cafe_cpu_per_order_us'], ' µs')} | {fmt0(w['pg_cpu_per_order_us'], ' µs')} | "
            f"{fmt2(w['commits_per_order'])} | {fmt0(w['orders_dead_after'])} | "
            f"{fmt0(w['orders_live_after'])} | {(w['orders_bytes_after'] or 0) / 2**20:,.1f} MiB | "
            f"{w['autovacuums']:,} | {w['load_after']:.1f} |")
    first, last = s["windows"][0], s["windows"][-1]
    start = (s.get("stats_at_start") or {}).get("orders") or {}
    end = (s.get("stats_at_end") or {}).get("orders") or {}
    loss = s.get("loss")
    lines += ["", f"First minute {fmt0(first['throughput'])} orders/s, last "
              f"{fmt0(last['throughput'])}: **{'–' if loss is None else f'{loss * 100:.1f} %'} "
              f"lost** (goal ≤ 10 %). Dead tuples of `orders`: {fmt0(start.get('n_dead_tup'))} "
              f"when the cafés had started, {fmt0(end.get('n_dead_tup'))} after they stopped "
              f"({fmt0(end.get('n_live_tup'))} live, "
              f"{(end.get('bytes') or 0) / 2**20:,.1f} MiB); autovacuums of it in all: "
              f"{fmt0((end.get('autovacuum_count') or 0) - (start.get('autovacuum_count') or 0))}."]
    return lines
