// Drives headless Chromium over the DevTools protocol (no npm packages needed) to check that
// the job board renders: logs in with HTTP basic auth, opens each page, waits until every
// expected text is on it, and saves a screenshot.
//
// node --experimental-websocket board.mjs <board-url> <user> <password> <screenshot-dir> <path>=<text>[,<text>…]…
// Exit code 0 when every page showed its texts, 1 otherwise.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, user, password, shotDir, ...checks] = process.argv.slice(2);
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WAIT_MS = Number(process.env.BOARD_WAIT_MS ?? 30000);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const profile = mkdtempSync(join(tmpdir(), "orderflow-board-"));
const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage", "--window-size=1400,900", `--user-data-dir=${profile}`,
  "--remote-debugging-port=0", "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });

const finish = (code) => {
  browser.kill("SIGKILL");
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  } catch {
    // Chromium may still be writing its cache; a leftover temp profile is harmless.
  }
  process.exit(code);
};
setTimeout(() => { console.error("board check timed out"); finish(1); }, WAIT_MS * (checks.length + 1) + 20000);

// Chromium announces its DevTools endpoint on stderr.
const endpoint = await new Promise((resolve, reject) => {
  let seen = "";
  browser.stderr.on("data", (chunk) => {
    seen += chunk;
    const match = seen.match(/DevTools listening on (ws:\/\/\S+)/);
    if (match) resolve(match[1]);
  });
  browser.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${seen}`)));
});
const port = new URL(endpoint).port;
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const socket = new WebSocket(targets.find((t) => t.type === "page").webSocketDebuggerUrl);
await new Promise((resolve) => socket.addEventListener("open", resolve));

let nextId = 0;
const waiting = new Map();
const send = (method, params = {}) => new Promise((resolve) => {
  const id = ++nextId;
  waiting.set(id, resolve);
  socket.send(JSON.stringify({ id, method, params }));
});
socket.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  if (message.id && waiting.has(message.id)) {
    waiting.get(message.id)(message.result ?? message.error);
    waiting.delete(message.id);
  } else if (message.method === "Fetch.authRequired") {
    // What a person typing into the browser's login prompt does.
    send("Fetch.continueWithAuth", {
      requestId: message.params.requestId,
      authChallengeResponse: { response: "ProvideCredentials", username: user, password },
    });
  } else if (message.method === "Fetch.requestPaused") {
    send("Fetch.continueRequest", { requestId: message.params.requestId });
  }
});

await send("Page.enable");
await send("Fetch.enable", { handleAuthRequests: true });
mkdirSync(shotDir, { recursive: true });

let failed = false;
for (const check of checks) {
  const [path, texts] = check.split(/=(.*)/s);
  const expected = texts.split(",").filter(Boolean);
  await send("Page.navigate", { url: base + path });
  const deadline = Date.now() + WAIT_MS;
  let text = "";
  let missing = expected;
  while (Date.now() < deadline) {
    await sleep(500);
    const result = await send("Runtime.evaluate", { expression: "document.body ? document.body.innerText : ''", returnByValue: true });
    text = result?.result?.value ?? "";
    missing = expected.filter((e) => !text.includes(e));
    if (missing.length === 0) break;
  }
  const shot = await send("Page.captureScreenshot", { format: "png" });
  const file = join(shotDir, `${path.replace(/^\//, "").replace(/[^a-zA-Z0-9_-]+/g, "_") || "home"}.png`);
  writeFileSync(file, Buffer.from(shot.data, "base64"));
  if (missing.length === 0) {
    console.log(`ok   ${path}: found ${expected.join(", ")} (screenshot ${file})`);
  } else {
    failed = true;
    console.log(`FAIL ${path}: missing ${missing.join(", ")} (screenshot ${file})\n--- page text ---\n${text.slice(0, 2000)}`);
  }
}
finish(failed ? 1 : 0);
