"""The nemesis: a fault schedule drawn from the seed, and the task that carries it out.

The schedule is a pure function of (seed, duration, mode): a list of episodes, each at a
planned offset from the start of the run with one or two faults on components of different
kinds. A fault is `kill` (SIGKILL through `scripts/cluster kill`; for PostgreSQL that is a
crash of the postmaster, i.e. a restart) or `pause` (SIGSTOP, then SIGCONT after the fault's
duration). An episode ends healed: paused processes continued, then — if anything was
killed — `scripts/cluster up`, which restarts whatever is down and waits until every
component is ready. Episodes never overlap: the next one starts at its planned offset or
when the previous one is healed, whichever is later (the log has the real times).
"""

import asyncio
import json
import random
import time

from chaos.cluster import Cluster

# Kinds of component, the instances of each, and what can be done to them.
KINDS = {
    "redis": (["redis-1", "redis-2", "redis-3"], ("kill", "pause")),
    "kafka": (["kafka-1", "kafka-2", "kafka-3"], ("kill", "pause")),
    "postgres": (["postgres"], ("kill",)),
    "relay": (["relay-1"], ("kill", "pause")),
    "settle": (["settle-1", "settle-2"], ("kill", "pause")),
    "webhooks": (["webhooks-1"], ("kill", "pause")),
    "gateway": (["gateway-1", "gateway-2", "gateway-3"], ("kill", "pause")),
    "orders": (["orders-1", "orders-2"], ("kill", "pause")),
    "control": (["control-1"], ("kill", "pause")),
}

# (min, max) seconds a fault lasts: a killed component stays down that long before the
# heal restarts it; a paused one is continued after it. A Redis master stays away well
# under cluster-node-timeout (15 s), so the cluster does not fail over (it has no replicas).
DURATIONS = {
    ("redis", "kill"): (0.5, 4.0),
    ("redis", "pause"): (1.0, 8.0),
    ("kafka", "kill"): (1.0, 12.0),
    ("kafka", "pause"): (1.0, 10.0),
    ("postgres", "kill"): (0.5, 3.0),
}
APP_DURATION = (0.5, 8.0)

# What a heal with `scripts/cluster up` is planned to take (the plan only; the run waits
# for the real heal).
PLANNED_HEAL_S = 4.0


def schedule(seed, duration_s, long_run):
    """The episodes of a run, as plain data: [{"at": s, "faults": [{"action", "target",
    "kind", "for"}]}]."""
    rng = random.Random(f"linkdrop-chaos:{seed}:nemesis")
    quiet = (5.0, 20.0) if long_run else (2.0, 6.0)
    first = 3.0
    last = duration_s - 6.0
    episodes = []
    t = first
    kinds = sorted(KINDS)
    while t < last:
        count = 2 if rng.random() < 0.2 else 1
        chosen = rng.sample(kinds, count)
        faults = []
        for kind in chosen:
            instances, actions = KINDS[kind]
            action = rng.choice(actions)
            target = rng.choice(instances)
            lo, hi = DURATIONS.get((kind, action), APP_DURATION)
            faults.append({"action": action, "target": target, "kind": kind,
                           "for": round(rng.uniform(lo, hi), 2)})
        episode_s = max(f["for"] for f in faults)
        episodes.append({"at": round(t, 2), "faults": faults})
        heal = PLANNED_HEAL_S if any(f["action"] == "kill" for f in faults) else 0.0
        t += episode_s + heal + rng.uniform(*quiet)
    return episodes


def describe(episodes):
    lines = []
    for e in episodes:
        what = " + ".join(f"{f['action']} {f['target']} for {f['for']}s" for f in e["faults"])
        lines.append(f"  t+{e['at']:7.2f}s  {what}")
    return "\n".join(lines) if lines else "  (no faults)"


class Nemesis:
    def __init__(self, cluster: Cluster, log_path):
        self.cluster = cluster
        self.log_file = open(log_path, "a", buffering=1)
        self.paused = {}  # target -> pid
        self.counts = {}
        self.unexpected = []
        self.errors = []
        self.t0 = None

    def log(self, **record):
        record["t"] = time.time()
        if self.t0 is not None:
            record["offset"] = round(record["t"] - self.t0, 3)
        self.log_file.write(json.dumps(record) + "\n")

    def count(self, action, target):
        key = f"{action} {target.rsplit('-', 1)[0] if target != 'postgres' else 'postgres'}"
        self.counts[key] = self.counts.get(key, 0) + 1

    async def run(self, episodes, t0, stop: asyncio.Event):
        self.t0 = t0
        for episode in episodes:
            delay = t0 + episode["at"] - time.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return
                except asyncio.TimeoutError:
                    pass
            if stop.is_set():
                return
            await self.episode(episode)

    async def episode(self, episode):
        start = time.time()
        for f in episode["faults"]:
            if f["action"] == "kill":
                p = await asyncio.to_thread(self.cluster.kill, f["target"])
                ok = p.returncode == 0
                self.log(event="kill", target=f["target"], ok=ok,
                         detail=(p.stdout + p.stderr).strip()[-300:])
            else:
                pid = await asyncio.to_thread(self.cluster.pause, f["target"])
                ok = pid is not None
                if ok:
                    self.paused[f["target"]] = pid
                self.log(event="pause", target=f["target"], pid=pid, ok=ok)
            if ok:
                self.count(f["action"], f["target"])
            else:
                self.unexpected.append({"t": time.time(), "target": f["target"],
                                        "what": f"was not running when the nemesis came to {f['action']} it"})
        for f in sorted(episode["faults"], key=lambda f: f["for"]):
            await asyncio.sleep(max(0.0, start + f["for"] - time.time()))
            if f["action"] == "pause" and f["target"] in self.paused:
                pid = self.paused.pop(f["target"])
                Cluster.resume(pid)
                self.log(event="continue", target=f["target"], pid=pid)
        if any(f["action"] == "kill" for f in episode["faults"]):
            killed = {f["target"] for f in episode["faults"] if f["action"] == "kill"}
            await self.heal(killed)

    async def heal(self, killed=frozenset()):
        for target, pid in list(self.paused.items()):
            Cluster.resume(pid)
            self.log(event="continue", target=target, pid=pid)
            self.paused.pop(target, None)
        status = await asyncio.to_thread(self.cluster.status)
        down = sorted(name for name, pid in status.items() if pid is None)
        for name in down:
            if name not in killed:
                self.unexpected.append({"t": time.time(), "target": name,
                                        "what": "found down at a heal without having been killed"})
                self.log(event="unexpected_down", target=name)
        if not down:
            return
        started = time.time()
        try:
            await asyncio.to_thread(self.cluster.up_some, down)
            self.log(event="up", restarted=down, took_s=round(time.time() - started, 2))
        except Exception as e:  # noqa: BLE001 - reported, and the run goes on
            self.errors.append(f"scripts/cluster up {' '.join(down)} failed: {e}")
            self.log(event="up_failed", error=str(e)[-2000:])
            # Once more, the whole cluster: a component that could not start may now.
            try:
                await asyncio.to_thread(self.cluster.up)
                self.log(event="up", restarted=down, took_s=round(time.time() - started, 2))
            except Exception as e2:  # noqa: BLE001
                self.errors.append(f"scripts/cluster up failed: {e2}")
                self.log(event="up_failed", error=str(e2)[-2000:])
                raise

    def continue_all(self):
        """Continues every paused process (also when the run is interrupted)."""
        for target, pid in list(self.paused.items()):
            Cluster.resume(pid)
            self.paused.pop(target, None)
