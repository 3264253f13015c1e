// A small HTTP proxy in front of a linkdrop, for the order-retry tests. For each request, a
// plan decides: pass it through; pass it through but lose the answer (linkdrop decides, then
// the connection is cut before the client reads a byte of the answer); or answer by itself
// (a 503 with Retry-After, a 502 with no body). Records every request with its times.
import { createServer } from "node:http";

/**
 * `plan(n, request)` for the n-th request (from 1) returns "pass", "lose-answer" or
 * `{status, headers, body}`. Resolves to {url, requests, close()}.
 */
export async function startProxy(target, plan) {
  const requests = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const record = {
      n: requests.length + 1,
      method: req.method,
      path: req.url,
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
      receivedAt: Date.now(),
      answeredAt: undefined,
      action: undefined,
      upstream: undefined,
    };
    requests.push(record);
    const action = plan(record.n, record);
    record.action = typeof action === "string" ? action : "answer";
    if (typeof action === "object") {
      res.writeHead(action.status, action.headers ?? {});
      res.end(action.body ?? "");
      record.answeredAt = Date.now();
      return;
    }
    const headers = { ...req.headers };
    for (const hop of ["host", "connection", "content-length", "keep-alive", "transfer-encoding"]) delete headers[hop];
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers,
      body: ["GET", "HEAD"].includes(req.method) ? undefined : record.body,
    });
    const text = await upstream.text();
    record.upstream = { status: upstream.status, headers: Object.fromEntries(upstream.headers), body: text };
    if (action === "lose-answer") {
      // linkdrop has decided; the client never hears it.
      req.socket.destroy();
      record.answeredAt = Date.now();
      return;
    }
    const out = {};
    for (const [k, v] of upstream.headers) if (!["content-length", "transfer-encoding", "connection", "keep-alive"].includes(k)) out[k] = v;
    res.writeHead(upstream.status, out);
    res.end(text);
    record.answeredAt = Date.now();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}
