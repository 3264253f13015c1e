// A real linkdrop for the SDK's tests: `linkdrop all` on the embedded backend (no Redis, Kafka
// or PostgreSQL), in a fresh data directory, on a port of its own; killed and started again on
// the same directory and port when a test needs the gateway to go away. Plus the host's calls
// (rooms, drops, launch) with the admin key and shopper tokens signed here (HS256).
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const START_TIMEOUT_MS = 30_000;

/** The binary under test: LINKDROP_BIN (scripts/test sets it), else the debug build. */
export function linkdropBin() {
  return process.env.LINKDROP_BIN ? resolve(process.env.LINKDROP_BIN) : join(REPO, "target/debug/linkdrop");
}

export class Linkdrop {
  constructor() {
    this.dataDir = mkdtempSync(join(tmpdir(), "linkdrop-sdk-test-"));
    this.adminKey = `admin-${randomBytes(12).toString("hex")}`;
    this.jwtSecret = randomBytes(32).toString("hex");
    this.webhookKey = randomBytes(32).toString("hex");
    this.port = 0;
    this.child = undefined;
    this.log = [];
  }

  /** Starts a linkdrop; resolves once it answers /readyz. */
  static async start() {
    const server = new Linkdrop();
    await server.start();
    return server;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the process (again, on the same data directory and port after the first time). */
  async start() {
    // Only what this test sets: none of the stack's URLs (scripts/test exports them), so that
    // linkdrop runs on its embedded backend.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LINKDROP_")));
    Object.assign(env, {
      LINKDROP_DATA_DIR: this.dataDir,
      LINKDROP_HTTP_ADDR: `127.0.0.1:${this.port}`,
      LINKDROP_ADMIN_KEY: this.adminKey,
      LINKDROP_JWT_SECRET: this.jwtSecret,
      LINKDROP_WEBHOOK_SECRET_KEY: this.webhookKey,
      LINKDROP_LOG_FORMAT: "json",
      LINKDROP_LOG: "info",
      LINKDROP_WORKER_THREADS: "2",
    });
    const child = spawn(linkdropBin(), ["all"], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    // Not left running if the test process ends without its after hook (a crash, a timeout).
    const reap = () => child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.off("exit", reap));
    const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    this.exited = exited;
    const address = new Promise((resolve, reject) => {
      let pending = "";
      const onData = (chunk) => {
        pending += chunk.toString();
        let newline;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          this.log.push(line);
          if (this.log.length > 500) this.log.shift();
          const m = line.includes("linkdrop listening") && line.match(/"addr":"([^"]+)"|addr=(\S+)/);
          if (m) resolve(m[1] ?? m[2]);
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("error", reject);
      exited.then(({ code, signal }) =>
        reject(new Error(`linkdrop exited (${code ?? signal}) before listening:\n${this.log.slice(-20).join("\n")}`)),
      );
      setTimeout(() => reject(new Error(`linkdrop did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS).unref();
    });
    const addr = await address;
    this.port = Number(addr.slice(addr.lastIndexOf(":") + 1));
    const until = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        const ready = await fetch(`${this.url}/readyz`);
        if (ready.ok) return;
      } catch {
        // not yet
      }
      if (Date.now() > until) throw new Error("linkdrop is not ready");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL: every connection dies at once, as when a gateway's machine goes away. */
  async kill() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }

  /** Kills the process and removes its data. */
  async stop() {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** A shopper token for `user` (HS256 with the configured secret), valid for an hour. */
  token(user, ttlS = 3600) {
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, exp: Math.floor(Date.now() / 1000) + ttlS })}`;
    return `${body}.${createHmac("sha256", this.jwtSecret).update(body).digest("base64url")}`;
  }

  /** An admin call; resolves to {status, body}. */
  async admin(method, path, body) {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.adminKey}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  async expect(status, method, path, body) {
    const answer = await this.admin(method, path, body);
    if (answer.status !== status) {
      throw new Error(`${method} ${path}: expected ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  }

  async createRoom() {
    return (await this.expect(201, "POST", "/v1/rooms", { title: "SDK test", merchant_id: "m_sdk" })).id;
  }

  async createDrop(roomId, { stock = 10, maxPerUser = 1, fairness = { policy: "fcfs" }, title = "Desk lamp" } = {}) {
    const drop = await this.expect(201, "POST", `/v1/rooms/${roomId}/drops`, {
      sku: "SKU-LAMP", title, image_url: "https://img.example/lamp.png", price_cents: 9900,
      currency: "CNY", stock, max_per_user: maxPerUser, fairness,
    });
    return drop.id;
  }

  /** Launches a drop; its launch answer ({opens_at_ms, seed_hash?}). */
  async launch(dropId, countdownMs = 0) {
    return this.expect(202, "POST", `/v1/drops/${dropId}/launch`, { countdown_ms: countdownMs });
  }

  async closeDrop(dropId) {
    return this.expect(200, "POST", `/v1/drops/${dropId}/close`, {});
  }

  async drop(dropId) {
    return this.expect(200, "GET", `/v1/drops/${dropId}`);
  }
}
