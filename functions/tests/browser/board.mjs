// Drives headless Chromium over the DevTools protocol (no npm packages needed) to check that
// the job board renders: logs in with HTTP basic auth, opens each page, waits until every
// expected text is on it, and saves a screenshot. A page fails when a text is missing, when a
// text marked `!` is present, or when the browser reports an error while it is open: an
// uncaught exception, a console error (a WASM panic prints one, "panicked at …"), or a failed
// request.
//
// node --experimental-websocket board.mjs <board-url> <user> <password> <screenshot-dir> <path>=<text>[,<text>|!<text>…]…
// Exit code 0 when every page passed, 1 otherwise.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, user, password, shotDir, ...checks] = process.argv.slice(2);
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WAIT_MS = Number(process.env.BOARD_WAIT_MS ?? 30000);
// After its texts appear, a page is left open this long, so late errors are caught on it.
const SETTLE_MS = Number(process.env.BOARD_SETTLE_MS ?? 1000);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const profile = mkdtempSync(join(tmpdir(), "orderflow-board-"));
const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage", "--window-size=1280,800", "--hide-scrollbars", `--user-data-dir=${profile}`,
  // Every page of the app holds the live-log stream (/api/v1/events) open. A page Chromium
  // keeps for "back" keeps it open too, and after six of them there is no connection left for
  // the board (six per host over HTTP/1.1): the next page's requests wait ~20 s.
  "--disable-features=BackForwardCache",
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
const budget = (WAIT_MS + SETTLE_MS) * (checks.length + 1) + 20000;
setTimeout(() => { console.error("board check timed out"); finish(1); }, budget);

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

// What the browser reported as wrong since the current page was opened.
let errors = [];
const describe = (args) => args.map((a) => a.value ?? a.description ?? a.type).join(" ");

let nextId = 0;
const waiting = new Map();
const send = (method, params = {}) => new Promise((resolve) => {
  const id = ++nextId;
  waiting.set(id, resolve);
  socket.send(JSON.stringify({ id, method, params }));
});
socket.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  const params = message.params ?? {};
  if (message.id && waiting.has(message.id)) {
    waiting.get(message.id)(message.result ?? message.error);
    waiting.delete(message.id);
  } else if (message.method === "Fetch.authRequired") {
    // What a person typing into the browser's login prompt does.
    send("Fetch.continueWithAuth", {
      requestId: params.requestId,
      authChallengeResponse: { response: "ProvideCredentials", username: user, password },
    });
  } else if (message.method === "Fetch.requestPaused") {
    send("Fetch.continueRequest", { requestId: params.requestId });
  } else if (message.method === "Runtime.exceptionThrown") {
    const details = params.exceptionDetails;
    errors.push(`exception: ${details.exception?.description ?? details.text}`);
  } else if (message.method === "Runtime.consoleAPICalled") {
    const text = describe(params.args ?? []);
    if (["error", "assert"].includes(params.type) || text.includes("panicked")) {
      errors.push(`console.${params.type}: ${text}`);
    }
  } else if (message.method === "Log.entryAdded") {
    // The browser's own messages: failed requests, blocked resources, integrity failures.
    const entry = params.entry;
    if (entry.level === "error") errors.push(`browser: ${entry.text} ${entry.url ?? ""}`.trim());
  }
});

await send("Page.enable");
await send("Runtime.enable");
await send("Log.enable");
await send("Fetch.enable", { handleAuthRequests: true });
// Screenshots of exactly 1280x800, whatever the headless window keeps for itself.
await send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 800, deviceScaleFactor: 1, mobile: false });
mkdirSync(shotDir, { recursive: true });

let failed = false;
for (const check of checks) {
  const [path, texts] = check.split(/=(.*)/s);
  const wanted = texts.split(",").filter(Boolean);
  const expected = wanted.filter((t) => !t.startsWith("!"));
  const forbidden = wanted.filter((t) => t.startsWith("!")).map((t) => t.slice(1));
  const started = Date.now();
  errors = [];
  await send("Page.navigate", { url: base + path });
  const deadline = started + WAIT_MS;
  const read = async () => {
    const result = await send("Runtime.evaluate", { expression: "document.body ? document.body.innerText : ''", returnByValue: true });
    return result?.result?.value ?? "";
  };
  let text = "";
  let missing = expected;
  while (Date.now() < deadline) {
    await sleep(500);
    text = await read();
    missing = expected.filter((e) => !text.includes(e));
    if (missing.length === 0) break;
  }
  await sleep(SETTLE_MS);
  text = await read();
  missing = expected.filter((e) => !text.includes(e));
  const present = forbidden.filter((f) => text.includes(f));
  const shot = await send("Page.captureScreenshot", { format: "png" });
  const file = join(shotDir, `${path.replace(/^\//, "").replace(/[^a-zA-Z0-9_-]+/g, "_") || "home"}.png`);
  writeFileSync(file, Buffer.from(shot.data, "base64"));
  const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const problems = [
    ...missing.map((m) => `missing ${m}`),
    ...present.map((p) => `shows ${p}`),
    ...errors,
  ];
  if (problems.length === 0) {
    console.log(`ok   ${path}: found ${expected.join(", ")} in ${took} (screenshot ${file})`);
  } else {
    failed = true;
    console.log(`FAIL ${path} in ${took} (screenshot ${file}):\n  ${problems.join("\n  ")}\n--- page text ---\n${text.slice(0, 2000)}`);
  }
}
finish(failed ? 1 : 0);
