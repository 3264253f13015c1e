"""scripts/chaos: seeded fault schedules on the local cluster of scripts/cluster.

For each seed: a mixed workload runs (workload.py) while the nemesis (nemesis.py) carries
out the seed's fault schedule; then everything is healed, the clients resolve what they
could not learn, the drops are closed, the system drains, and the checker (checker.py)
judges the history against every store. Each run keeps its files in
target/chaos/runs/seed-<seed>-<time>/ (schedule, history, webhook receipts, nemesis log,
verdict).
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
import traceback

from chaos import checker, nemesis, workload
from chaos.cluster import Cluster
from chaos.net import NoAnswer, http
from chaos.stores import Stores

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def say(*args):
    print("chaos:", *args, flush=True)


class Settings:
    def __init__(self, args):
        self.duration_s = args.seconds if args.seconds else args.minutes * 60
        self.long_run = args.long if args.long is not None else self.duration_s >= 180
        self.cluster_dir = os.environ.get("LINKDROP_CLUSTER_DIR") or os.path.join(ROOT, "target/chaos/cluster")
        self.port_base = int(os.environ.get("LINKDROP_CLUSTER_PORT_BASE") or 22400)
        self.binary = os.environ.get("LINKDROP_BIN")
        self.runs_dir = os.environ.get("LINKDROP_CHAOS_RUNS") or os.path.join(ROOT, "target/chaos/runs")
        self.shoppers = 80 if self.long_run else 40
        self.viewers = 24 if self.long_run else 16
        # After the heal: how long the clients may take to resolve, the stores to drain.
        self.resolve_s = 240 if self.long_run else 90
        self.drain_s = 480 if self.long_run else 90

    def replay(self, seed):
        env = []
        if os.environ.get("LINKDROP_CLUSTER_DIR"):
            env.append(f"LINKDROP_CLUSTER_DIR={self.cluster_dir}")
        if os.environ.get("LINKDROP_CLUSTER_PORT_BASE"):
            env.append(f"LINKDROP_CLUSTER_PORT_BASE={self.port_base}")
        if self.binary:
            env.append(f"LINKDROP_BIN={self.binary}")
        return " ".join(env + ["scripts/chaos", "--seed", str(seed), "--seconds", str(int(self.duration_s))]
                        + (["--long"] if self.long_run and self.duration_s < 180 else [])
                        + (["--short"] if not self.long_run and self.duration_s >= 180 else []))


def pin_binary(st, cluster):
    """Copies the release build `scripts/cluster up` just made and restarts every process of the
    run from that copy: otherwise each restart by the nemesis rebuilds from the working tree,
    and a run that lasts while the code is edited would restart processes on other code."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    os.makedirs(st.runs_dir, exist_ok=True)
    pinned = os.path.join(st.runs_dir, f"linkdrop-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copy2(os.path.join(target, "release", "linkdrop"), pinned)
    st.binary = pinned
    cluster.env["LINKDROP_BIN"] = pinned
    say(f"every restart runs {pinned} (a copy of this build)")


async def start_receiver(run_dir, seed, long_run):
    port_file = os.path.join(run_dir, "receiver.port")
    cmd = [sys.executable, "-m", "chaos.receiver", "--seed", str(seed), "--out",
           os.path.join(run_dir, "webhooks.jsonl"), "--port-file", port_file] + (["--long"] if long_run else [])
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen(cmd, env=env, stdout=open(os.path.join(run_dir, "receiver.log"), "w"),
                            stderr=subprocess.STDOUT)
    for _ in range(100):
        if os.path.exists(port_file):
            return proc, int(open(port_file).read())
        if proc.poll() is not None:
            raise RuntimeError(f"the webhook receiver exited: see {run_dir}/receiver.log")
        await asyncio.sleep(0.1)
    raise RuntimeError("the webhook receiver did not start")


async def wait_until(label, deadline, probe, interval=2.0):
    """Calls probe() (blocking, in a thread) until it returns an empty list; the last list."""
    last = None
    while True:
        try:
            waiting = await asyncio.to_thread(probe)
        except Exception as e:  # noqa: BLE001 - a store that is still coming back
            waiting = [f"stores not readable: {e}"]
        if not waiting:
            return []
        if waiting != last:
            say(f"  {label}: waiting for " + "; ".join(waiting))
            last = waiting
        if time.time() > deadline:
            return waiting
        await asyncio.sleep(interval)


async def run_seed(seed, st: Settings, cluster: Cluster, run_dir):
    episodes = nemesis.schedule(seed, st.duration_s, st.long_run)
    drops_plan = workload.plan(seed, st.duration_s, st.long_run)
    with open(os.path.join(run_dir, "schedule.json"), "w") as f:
        json.dump({"seed": seed, "duration_s": st.duration_s, "long_run": st.long_run,
                   "episodes": episodes, "drops": drops_plan}, f, indent=1)
    say(f"seed {seed}: {st.duration_s:.0f}s, {len(episodes)} fault episodes, {len(drops_plan)} drops; schedule:")
    print(nemesis.describe(episodes), flush=True)

    env = cluster.exported
    control = cluster.addresses("LINKDROP_CLUSTER_CONTROL")
    merchant = f"chaos{seed}-{int(time.time() * 1000) % 10**9}"
    hist = workload.History(os.path.join(run_dir, "history.jsonl"))
    nem = nemesis.Nemesis(cluster, os.path.join(run_dir, "nemesis.jsonl"))
    receiver, port = await start_receiver(run_dir, seed, st.long_run)
    meta = {"seed": seed, "duration_s": st.duration_s, "long_run": st.long_run, "merchant": merchant,
            "replay": st.replay(seed)}
    try:
        # Everything healthy before the run (an earlier seed or run may have left something).
        await nem.heal()
        wl = workload.Workload(
            seed=seed, duration_s=st.duration_s, long_run=st.long_run, control=control,
            orders=cluster.addresses("LINKDROP_CLUSTER_ORDERS"),
            gateways=cluster.addresses("LINKDROP_CLUSTER_GATEWAYS"),
            admin_key=env["LINKDROP_ADMIN_KEY"], jwt_secret=env["LINKDROP_JWT_SECRET"], hist=hist,
            merchant=merchant, receiver_url=f"http://127.0.0.1:{port}/hooks/{merchant}")

        async def configure_receiver(secret):
            r = await http("POST", ("127.0.0.1", port), "/_config", body={"secret": secret})
            assert r.status == 200

        await wl.setup(configure_receiver)
        meta.update(endpoint_id=wl.endpoint["id"], rooms=wl.rooms)
        for i in range(st.viewers):
            wl.viewer_tasks.append(asyncio.create_task(wl.viewer(i)))
        await asyncio.sleep(1.0)

        t0 = time.time()
        meta["t0"] = t0
        stop_nemesis = asyncio.Event()
        nemesis_task = asyncio.create_task(nem.run(episodes, t0, stop_nemesis))
        host_task = asyncio.create_task(wl.host(t0))
        shoppers = [asyncio.create_task(wl.shopper(i)) for i in range(st.shoppers)]
        await asyncio.sleep(max(0.0, t0 + st.duration_s - time.time()))

        say(f"seed {seed}: workload over after {time.time() - t0:.0f}s; healing")
        wl.stop.set()
        stop_nemesis.set()
        await nemesis_task
        await nem.heal()
        meta["healed_at"] = time.time()
        wl.resolve_deadline = time.time() + st.resolve_s
        await host_task
        # Drops launched just before the stop: let their launch finish, then close all.
        await asyncio.gather(*shoppers)
        await asyncio.wait_for(wl.close_all(), st.resolve_s)
        while wl.tasks:
            pending = [t for t in wl.tasks if not t.done()]
            wl.tasks = pending
            if not pending:
                break
            await asyncio.wait(pending, timeout=1.0)
            if time.time() > wl.resolve_deadline + 30:
                say(f"seed {seed}: {len(pending)} client tasks still running at the deadline; cancelling")
                for t in pending:
                    t.cancel()
                break
        await wl.close_all()
        meta["drops"] = [d.id for d in wl.drops if d.id]
        say(f"seed {seed}: clients done ({hist.counts.get('order', 0)} order requests); draining")

        stores = Stores(env["LINKDROP_DATABASE_URL"], cluster.redis_nodes(), control[0], env["LINKDROP_ADMIN_KEY"])
        lottery_ids = [d.id for d in wl.drops if d.id and d.lottery]
        waiting = await wait_until(
            "drain", time.time() + st.drain_s,
            lambda: checker.drain_state(meta, stores, meta["drops"], lottery_ids, int(time.time() * 1000)))
        meta["drained"] = not waiting
        meta["not_drained"] = waiting

        # The rooms' last events: stable for 3 s, then every viewer must reach them.
        seqs = None
        for _ in range(20):
            now_seqs = await asyncio.to_thread(lambda: {r: stores.room_seq(r) for r in wl.rooms})
            if now_seqs == seqs:
                break
            seqs = now_seqs
            await asyncio.sleep(3.0)
        wl.final_seq.update(seqs)
        done, pending = await asyncio.wait(wl.viewer_tasks, timeout=45)
        wl.viewers_stop.set()
        await asyncio.gather(*wl.viewer_tasks, return_exceptions=True)
        meta["nemesis"] = {"counts": nem.counts, "unexpected": nem.unexpected, "errors": nem.errors}
        meta["finished"] = time.time()
    finally:
        nem.continue_all()
        receiver.terminate()
        receiver.wait()
        with open(os.path.join(run_dir, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
    return meta


def judge(run_dir, cluster):
    meta = json.load(open(os.path.join(run_dir, "meta.json")))
    env = cluster.exported
    stores = Stores(env["LINKDROP_DATABASE_URL"], cluster.redis_nodes(),
                    cluster.addresses("LINKDROP_CLUSTER_CONTROL")[0], env["LINKDROP_ADMIN_KEY"])
    history = checker.read_lines(os.path.join(run_dir, "history.jsonl"))
    receipts = checker.read_lines(os.path.join(run_dir, "webhooks.jsonl"))
    verdict = checker.check(meta, history, receipts, stores)
    for u in (meta.get("nemesis") or {}).get("unexpected", []):
        verdict.note("a component was down without the nemesis having killed it", **u)
    for e in (meta.get("nemesis") or {}).get("errors", []):
        verdict.note("nemesis error", error=e)
    if not meta.get("drained", True):
        verdict.note("the stores had not drained at the deadline", waiting=meta.get("not_drained"))
    result = {"seed": meta["seed"], "duration_s": meta["duration_s"], "ok": not verdict.violations,
              "faults": (meta.get("nemesis") or {}).get("counts", {}), "stats": dict(verdict.stats),
              "violations": verdict.violations, "notes": verdict.notes, "replay": meta.get("replay")}
    with open(os.path.join(run_dir, "verdict.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    return verdict, result


def main():
    p = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    p.add_argument("--seeds", type=int, default=0, help="run N random seeds (printed first)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seconds", type=float, help="workload and fault time per seed")
    g.add_argument("--minutes", type=float, default=1.0, help="workload and fault time per seed (default 1)")
    p.add_argument("--long", dest="long", action="store_true", default=None,
                   help="long-run behaviour (default from 180 s per seed on): second webhook failures, longer drain")
    p.add_argument("--short", dest="long", action="store_false")
    p.add_argument("--down", action="store_true", help="stop the cluster at the end")
    p.add_argument("--check", metavar="RUN_DIR", help="only judge an earlier run again (its cluster still up)")
    args = p.parse_args()
    st = Settings(args)
    seeds = list(args.seed or [])
    if args.seeds:
        rng = random.SystemRandom()
        seeds += [rng.randrange(1, 10**6) for _ in range(args.seeds)]
    if not seeds and not args.check:
        seeds = [random.SystemRandom().randrange(1, 10**6)]

    cluster = Cluster(ROOT, st.cluster_dir, st.port_base, st.binary)
    if args.check:
        cluster.read_env()
        verdict, result = judge(args.check, cluster)
        print(checker.summary(verdict))
        return 0 if result["ok"] else 1

    say(f"seeds {seeds}, {st.duration_s:.0f}s each ({'long' if st.long_run else 'short'} runs); "
        f"cluster {st.cluster_dir} (port base {st.port_base})")
    started = time.time()
    say("starting the cluster (scripts/cluster up)")
    cluster.up()
    say(f"cluster up in {time.time() - started:.0f}s")
    if not st.binary:
        pin_binary(st, cluster)
    results = []
    status = 0
    try:
        for seed in seeds:
            run_dir = os.path.join(st.runs_dir, f"seed-{seed}-{time.strftime('%Y%m%d-%H%M%S')}")
            os.makedirs(run_dir, exist_ok=True)
            t = time.time()
            try:
                asyncio.run(run_seed(seed, st, cluster, run_dir))
                verdict, result = judge(run_dir, cluster)
            except Exception:
                traceback.print_exc()
                say(f"seed {seed}: the run itself failed ({run_dir}); replay: {st.replay(seed)}")
                results.append({"seed": seed, "ok": False, "error": True})
                status = 1
                continue
            results.append(result)
            s = result["stats"]
            say(f"seed {seed}: {time.time() - t:.0f}s; faults {sum(result['faults'].values())} "
                f"{json.dumps(result['faults'], sort_keys=True)}; orders {s.get('orders_acknowledged', 0)} "
                f"(+{s.get('entries_acknowledged', 0)} lottery entries), payments {s.get('payments_acknowledged', 0)}, "
                f"expired {s.get('orders_expired', 0)}, events {s.get('events', 0)} "
                f"({s.get('events_delivered', 0)} delivered, {s.get('events_dead_lettered', 0)} dead), "
                f"lost answers {s.get('lost_answers', 0)}, viewer resumes {s.get('viewer_resumes', 0)}, "
                f"resyncs {s.get('viewer_resyncs', 0)}")
            print(checker.summary(verdict), flush=True)
            for n in verdict.notes[:10]:
                print(f"  note: {n['detail']}: {json.dumps({k: v for k, v in n.items() if k != 'detail'}, default=str)[:300]}")
            if not result["ok"]:
                status = 1
                say(f"seed {seed} FAILED ({run_dir}); replay: {st.replay(seed)}")
    finally:
        if args.down:
            say("stopping the cluster")
            cluster.down()
    total = {}
    for r in results:
        for k, n in (r.get("faults") or {}).items():
            total[k] = total.get(k, 0) + n
    say(f"{len(results)} seed(s) in {time.time() - started:.0f}s: "
        f"{sum(1 for r in results if r.get('ok'))} passed, {sum(1 for r in results if not r.get('ok'))} failed; "
        f"faults {sum(total.values())} {json.dumps(total, sort_keys=True)}")
    with open(os.path.join(st.runs_dir, "last-summary.json"), "w") as f:
        json.dump({"seeds": seeds, "duration_s": st.duration_s, "results": [
            {k: r.get(k) for k in ("seed", "ok", "faults", "stats", "replay", "error")} for r in results],
            "faults": total, "elapsed_s": time.time() - started}, f, indent=1, default=str)
    return status


if __name__ == "__main__":
    sys.exit(main())
