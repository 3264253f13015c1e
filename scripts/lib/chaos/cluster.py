"""The local cluster of scripts/cluster, driven from Python: up, down, status, env, and the
two ways a component is hurt (SIGKILL through `scripts/cluster kill`; SIGSTOP / SIGCONT of
its pid)."""

import os
import signal
import subprocess
import time

REDIS = ["redis-1", "redis-2", "redis-3"]
KAFKA = ["kafka-1", "kafka-2", "kafka-3"]
APPS = ["gateway-1", "gateway-2", "gateway-3", "orders-1", "orders-2", "settle-1", "settle-2",
        "relay-1", "webhooks-1", "control-1"]
COMPONENTS = REDIS + KAFKA + ["postgres"] + APPS

# Settings of every linkdrop process of a chaos run (docs/configuration.md).
RUN_SETTINGS = {
    "LINKDROP_WEBHOOK_TIMEOUT_MS": "2000",
    "LINKDROP_WEBHOOK_POLL_MS": "100",
    "LINKDROP_EXPIRY_POLL_MS": "250",
    "LINKDROP_SETTLE_BATCH_WAIT_MS": "5",
    "LINKDROP_ORDERS_PER_IP_PER_S": "0",
    "LINKDROP_ORDERS_PER_USER_PER_S": "50",
    "LINKDROP_RELAY_LEASE_MS": "2000",
    "LINKDROP_SETTLE_SESSION_TIMEOUT_MS": "6000",
    "LINKDROP_DATABASE_MAX_CONNECTIONS": "5",
    "LINKDROP_LOG": "info",
}


class ClusterError(Exception):
    pass


class Cluster:
    def __init__(self, root, cluster_dir, port_base, binary, timeout=90):
        self.root = root
        self.dir = cluster_dir
        self.base = port_base
        self.env = {k: v for k, v in os.environ.items()
                    if k in ("PATH", "HOME", "LINKDROP_CACHE_DIR", "CARGO_TARGET_DIR", "LANG")}
        self.env.update(RUN_SETTINGS)
        self.env.update({
            "LINKDROP_CLUSTER_DIR": cluster_dir,
            "LINKDROP_CLUSTER_PORT_BASE": str(port_base),
            "LINKDROP_CLUSTER_TIMEOUT": str(timeout),
        })
        if binary:
            self.env["LINKDROP_BIN"] = binary
        self.exported = {}

    def script(self, *args, check=True, timeout=900):
        p = subprocess.run([os.path.join(self.root, "scripts/cluster"), *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise ClusterError(f"scripts/cluster {' '.join(args)} failed (exit {p.returncode}):\n"
                               f"{p.stdout[-3000:]}{p.stderr[-3000:]}")
        return p

    def up(self):
        self.script("up")
        self.read_env()

    def up_some(self, names):
        """Starts only these components (scripts/cluster up NAME...) and waits for them."""
        self.script("up", *names)

    def down(self):
        return self.script("down", check=False)

    def read_env(self):
        out = self.script("env").stdout
        self.exported = {}
        for line in out.splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                self.exported[k] = v.strip("'")
        return self.exported

    def addresses(self, name):
        return [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1]))
                for a in self.exported[name].split(",")]

    def redis_nodes(self):
        return [(u.split("//")[1].rsplit(":", 1)[0], int(u.rsplit(":", 1)[1]))
                for u in self.exported["LINKDROP_REDIS_URL"].split(",")]

    def status(self):
        """{component: pid or None}"""
        p = self.script("status", check=False)
        pids = {}
        for line in p.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in COMPONENTS:
                pids[parts[0]] = int(parts[-1]) if parts[1] == "up" else None
        return pids

    def kill(self, name):
        return self.script("kill", name, check=False)

    def signal(self, name, sig):
        pid = self.status().get(name)
        if not pid:
            return None
        os.kill(pid, sig)
        return pid

    def pause(self, name):
        return self.signal(name, signal.SIGSTOP)

    @staticmethod
    def resume(pid):
        try:
            os.kill(pid, signal.SIGCONT)
            return True
        except ProcessLookupError:
            return False


def wait_ready(check, timeout, interval=0.5):
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return True
        time.sleep(interval)
    return False
