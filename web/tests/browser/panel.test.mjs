// Browser tests of the call panel in a real headless Chromium (the system's /usr/bin/chromium,
// driven by playwright-core). The script runs the `ledgerline` binary itself (LEDGERLINE_BIN)
// on a fresh data directory with the demo directory, so it can stop and start it:
//   sign-in refusals; 1001 sees sales and support, never management; pin by button and by
//   drag, reorder by drag, unpin; a presence and a DND change made through the engine (HTTP
//   API as that user) change the cards live; reload keeps the order; stop the server — the
//   data indicator turns red; start it — green again, and the panel catches up from its last
//   position (deltas, no reload), including a change made while it was away; phone-sized view.
// Screenshots go to LEDGERLINE_SCREENSHOTS (default: a temporary directory), and are listed.
// Exit code 0 when every check passed.
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.LEDGERLINE_BIN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
if (!BIN) {
  console.error("set LEDGERLINE_BIN to the ledgerline binary");
  process.exit(2);
}
const shots = process.env.LEDGERLINE_SCREENSHOTS || mkdtempSync(join(tmpdir(), "panel-shots-"));
mkdirSync(shots, { recursive: true });
const dataDir = mkdtempSync(join(tmpdir(), "panel-data-"));

let checks = 0;
function check(condition, what) {
  if (!condition) throw new Error("FAILED: " + what);
  checks += 1;
  console.log("  ok   " + what);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const sipPort = await freeUdpPort();
const base = `http://127.0.0.1:${port}`;
const scenarios = fileURLToPath(new URL("../../../sip/tests/scenarios/", import.meta.url));

// sipp as a phone: `args` after the scenario; resolves with its exit code.
const here = fileURLToPath(new URL("./", import.meta.url));
function sipp(scenario, localPort, args, csv) {
  const dir = mkdtempSync(join(tmpdir(), "panel-sipp-"));
  const extra = [];
  if (csv) {
    writeFileSync(join(dir, "users.csv"), "SEQUENTIAL\n" + csv + "\n");
    extra.push("-inf", "users.csv");
  }
  const child = spawn("sipp", [
    ...args, "-sf", scenario === "register.xml" ? join(here, scenario) : join(scenarios, scenario), ...extra,
    "-i", "127.0.0.1", "-p", String(localPort), "-t", "u1", "-m", "1",
    "-timeout", "30s", "-timeout_error", "-recv_timeout", "15000", "-trace_err", "-nostdin",
  ], { cwd: dir, stdio: "ignore" });
  const done = new Promise((resolve) => child.once("exit", (code) => { rmSync(dir, { recursive: true, force: true }); resolve(code); }));
  return { child, done };
}
const register = (ext, localPort) =>
  sipp("register.xml", localPort, [`127.0.0.1:${sipPort}`], `${ext};[authentication username=${ext} password=sip-${ext}]`).done;
let server = null;

async function startServer() {
  const env = { ...process.env, RUST_LOG: "warn" };
  for (const k of ["LEDGERLINE_STORE", "LEDGERLINE_CONFIG", "LEDGERLINE_DATA_DIR", "LEDGERLINE_HTTP"]) delete env[k];
  server = spawn(BIN, ["--data-dir", dataDir, "serve", "--http", `127.0.0.1:${port}`, "--sip", `127.0.0.1:${sipPort}`], {
    env,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const r = await fetch(base + "/health");
      if (r.ok) return;
    } catch (_) { /* not yet */ }
    if (Date.now() > deadline) throw new Error("the server did not answer /health within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopServer() {
  if (!server) return;
  const s = server;
  server = null;
  const exited = new Promise((r) => s.once("exit", r));
  s.kill("SIGTERM");
  const timer = setTimeout(() => s.kill("SIGKILL"), 8000);
  await exited;
  clearTimeout(timer);
}

// A change made through the engine as another user: the HTTP API with Basic credentials.
async function asUser(user, path, body) {
  const r = await fetch(base + path, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Basic " + Buffer.from(`${user}:demo-${user}`).toString("base64"),
    },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path} as ${user}: ${r.status} ${await r.text()}`);
}

const shot = async (page, name) => {
  const file = join(shots, name + ".png");
  await page.screenshot({ path: file, fullPage: false });
  console.log("  shot " + file);
};

const visibleIds = (page, selector) =>
  page.$$eval(selector, (nodes) => nodes.map((n) => n.dataset.user));

async function signIn(page, user, password) {
  await page.goto(base + "/");
  await page.waitForURL(base + "/login");
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.click("#login-submit");
}

let browser;
try {
  await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });

  // ---- refusals --------------------------------------------------------------------------
  console.log("sign-in refusals");
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await signIn(page, "1002", "demo-1002");
    await page.waitForSelector("#login-error:not([hidden])");
    check((await page.textContent("#login-error")).includes("call panel"), "a basic user is told the profile lacks the call panel");
    await page.fill("#username", "admin");
    await page.fill("#password", "demo-admin");
    await page.click("#login-submit");
    await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("dministrator"));
    check(true, "the administrator is told administrators cannot use the panel");
    await page.fill("#username", "1001");
    await page.fill("#password", "wrong");
    await page.click("#login-submit");
    await page.waitForFunction(() => document.querySelector("#login-error").textContent.toLowerCase().includes("wrong"));
    check(page.url() === base + "/login", "a wrong password stays on the sign-in page");
    await shot(page, "01-login-refused");
    await context.close();
  }

  // ---- the panel of 1001 ------------------------------------------------------------------
  console.log("panel of 1001");
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  if (process.env.DEBUG_WS) {
    page.on("websocket", (ws) => {
      ws.on("framereceived", (f) => console.log("    <<", String(f.payload).slice(0, 240)));
      ws.on("framesent", (f) => console.log("    >>", String(f.payload)));
    });
    page.on("console", (m) => console.log("    console:", m.text()));
    page.on("pageerror", (e) => console.log("    pageerror:", String(e)));
  }
  await signIn(page, "1001", "demo-1001");
  await page.waitForURL(base + "/");
  await page.waitForSelector('#conn-data[data-state="up"]');
  check(true, "signed in; the data indicator is green");
  const users = await visibleIds(page, "#users-list .user-row");
  const expected = ["1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010"];
  check(JSON.stringify(users) === JSON.stringify(expected), "the users list holds exactly sales and support (" + users.join(",") + ")");
  const departments = await page.$$eval("#dept-filter option", (o) => o.map((x) => x.textContent));
  check(departments.includes("Sales") && departments.includes("Support"), "sales and support are listed");
  const text = await page.textContent("body");
  check(!text.includes("Management") && !text.includes("Supervisor") && !text.includes("1011") && !text.includes("1012"), "nothing of management appears anywhere");
  check((await page.textContent("#stat-monitored")) === "10", "10 users monitored");
  check((await page.$$("#graph .bar")).length === 60, "the graph has 60 bars");
  const rowsAre = async (ids, what) => {
    await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#users-list .user-row")].map((n) => n.dataset.user)) === want, JSON.stringify(ids), { timeout: 5000 })
      .catch(() => {});
    const got = await visibleIds(page, "#users-list .user-row");
    check(JSON.stringify(got) === JSON.stringify(ids), what + " → [" + got.join(",") + "]");
  };
  await page.fill("#filter", "support");
  await rowsAre(expected.slice(5), "the filter finds the 5 support users");
  await page.fill("#filter", "");
  await page.selectOption("#dept-filter", "sales");
  await rowsAre(expected.slice(0, 5), "the department filter shows sales only");
  await page.selectOption("#dept-filter", "");
  await rowsAre(expected, "all departments again");

  // ---- pin, drag, reorder, unpin ------------------------------------------------------------
  console.log("watch list");
  const pinnedIds = () => visibleIds(page, "#pinned-cards .card");
  const waitPinned = async (ids, what) => {
    await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#pinned-cards .card")].map((n) => n.dataset.user)) === want, JSON.stringify(ids), { timeout: 5000 })
      .catch(() => {});
    const got = await pinnedIds();
    check(JSON.stringify(got) === JSON.stringify(ids), what + " → [" + got.join(",") + "]");
  };
  await page.click('#users-list button.add[data-user="1006"]');
  await waitPinned(["1006"], "pinned 1006 with the + button");
  await page.dragAndDrop('#users-list .user-row[data-user="1002"]', '#pinned-cards .card[data-user="1006"]');
  await waitPinned(["1002", "1006"], "dragged 1002 from the list onto 1006: placed before it");
  await page.click('#users-list button.add[data-user="1007"]');
  await waitPinned(["1002", "1006", "1007"], "+ adds 1007 at the end");
  await page.click('#users-list button.add[data-user="1003"]');
  await waitPinned(["1002", "1006", "1007", "1003"], "+ adds 1003 at the end");
  await page.dragAndDrop('#pinned-cards .card[data-user="1007"]', '#pinned-cards .card[data-user="1002"]');
  await waitPinned(["1007", "1002", "1006", "1003"], "reordered by dragging 1007 onto the first card");
  await page.click('#pinned-cards .card[data-user="1003"] button.unpin');
  await waitPinned(["1007", "1002", "1006"], "unpinned 1003 with its button");
  check(await page.isDisabled('#users-list button.add[data-user="1006"]'), "a pinned user's + button is disabled");

  // ---- live changes through the engine ----------------------------------------------------
  console.log("live changes");
  await asUser("1006", "/api/v1/presence", { state: "lunch", message: "back at two" });
  await page.waitForFunction(() => document.querySelector('#pinned-cards .card[data-user="1006"]').textContent.includes("Out to lunch"), null, { timeout: 5000 });
  check((await page.textContent('#pinned-cards .card[data-user="1006"]')).includes("back at two"), "1006 went to lunch: the card changed live, with the message");
  await asUser("1002", "/api/v1/dnd", { enabled: true });
  await page.waitForSelector('#pinned-cards .card[data-user="1002"] .badge.dnd', { timeout: 5000 });
  check(true, "1002 turned DND on: the card shows DND live");
  await page.selectOption("#presence", "brb");
  await page.waitForFunction(() => document.querySelector("#me-status .status-icon, #me-status") && document.querySelector("#presence").value === "brb");
  // The selector posts the change; the panel's read model shows it once the event is projected.
  let meCard;
  for (let tries = 0; tries < 50 && meCard !== "brb"; tries++) {
    if (tries > 0) await page.waitForTimeout(100);
    meCard = await page.evaluate(async () => (await (await fetch("/api/v1/panel/users/1001")).json()).presence.state);
  }
  check(meCard === "brb", "my own presence selector set Be right back");
  await shot(page, "02-panel-1280x800");

  // ---- phones register and call (sipp through the SIP edge) ------------------------------
  console.log("phones");
  const card = (id) => `#pinned-cards .card[data-user="${id}"]`;
  const [p6, p7] = [await freeUdpPort(), await freeUdpPort()];
  check((await register("1007", p7)) === 0, "sipp registered 1007");
  await page.waitForSelector(`${card("1007")}.s-available`, { timeout: 5000 });
  check(true, "1007's phone registered: its card turned Available live");
  check((await register("1006", p6)) === 0, "sipp registered 1006");
  await page.waitForSelector(`${card("1006")}.s-lunch`, { timeout: 5000 });
  check(true, "1006 is online and still out to lunch: the lunch icon");
  const callee = sipp("uas-answer.xml", p7, [], null);
  await new Promise((r) => setTimeout(r, 300));
  const caller = sipp("call-uac.xml", p6, [`127.0.0.1:${sipPort}`, "-s", "1007", "-auth_uri", `1007@127.0.0.1:${sipPort}`, "-d", "5000"],
    "1006;[authentication username=1006 password=sip-1006];");
  await page.waitForSelector(`${card("1006")}.s-on_call ${".call .icon-outbound"}`, { timeout: 8000 });
  await page.waitForSelector(`${card("1007")}.s-on_call ${".call .icon-inbound"}`, { timeout: 8000 });
  check(true, "1006 calls 1007: both cards show the call live, outbound and inbound");
  check((await page.textContent(`${card("1006")} .call .peer`)).includes("1007"), "1006's card names 1007 as the peer");
  await page.waitForFunction((sel) => /^0:0[2-9]$/.test(document.querySelector(sel).textContent), `${card("1007")} .timer`, { timeout: 5000 });
  check(true, "the call timer runs (" + (await page.textContent(`${card("1007")} .timer`)) + ")");
  check(Number(await page.textContent("#stat-oncall")) === 2, "two users on calls in the counters");
  check((await page.$$eval("#graph .bar:not(.zero)", (b) => b.length)) >= 1, "the calls-per-minute graph counts the call");
  await shot(page, "02b-call-in-progress");
  check((await caller.done) === 0 && (await callee.done) === 0, "sipp's call completed (the caller hung up)");
  await page.waitForFunction((sel) => !document.querySelector(sel + " .calls"), card("1006"), { timeout: 8000 });
  check((await page.$(`${card("1006")}.s-lunch`)) !== null && (await page.$(`${card("1007")}.s-available`)) !== null, "after the call both cards are back to their presence");
  // Click-to-call goes to the SIP edge, which rings the viewer's own phone first: 1001 has none.
  await page.click(`${card("1007")} button.call-button`);
  await page.waitForSelector("#toast:not([hidden])");
  check((await page.textContent("#toast")).toLowerCase().includes("no registered phone"), "click-to-call answers that 1001 has no phone to ring (" + (await page.textContent("#toast")) + ")");

  // ---- reload keeps the order --------------------------------------------------------------
  await page.reload();
  await page.waitForSelector('#conn-data[data-state="up"]');
  await waitPinned(["1007", "1002", "1006"], "after a reload the pinned order is kept");

  // ---- stop and start the server ------------------------------------------------------------
  console.log("server restart");
  await page.evaluate(() => { window.__noReload = "still here"; });
  await stopServer();
  await page.waitForSelector('#conn-data[data-state="down"]', { timeout: 10000 });
  const colour = await page.$eval("#conn-data i", (i) => getComputedStyle(i).backgroundColor);
  check(colour === "rgb(255, 77, 77)", "server stopped: the data indicator is red (" + colour + ")");
  await shot(page, "03-server-stopped");
  // Keep the page from reconnecting while the server comes back and something changes.
  await context.setOffline(true);
  await startServer();
  await asUser("1007", "/api/v1/presence", { state: "busy" });
  await context.setOffline(false);
  await page.waitForSelector('#conn-data[data-state="up"]', { timeout: 20000 });
  check(true, "server started: the data indicator is green again");
  await page.waitForFunction(() => document.querySelector('#pinned-cards .card[data-user="1007"]').textContent.includes("Busy / DND"), null, { timeout: 5000 });
  check(true, "the change made while the page was away is shown");
  check((await page.evaluate(() => window.__noReload)) === "still here", "without a reload");
  check((await page.evaluate(() => document.body.dataset.sync)) === "deltas", "caught up from its last position (deltas, not a snapshot)");
  await waitPinned(["1007", "1002", "1006"], "the pinned order survived the restart");
  await asUser("1006", "/api/v1/presence", { state: "available" });
  await page.waitForFunction(() => { const t = document.querySelector('#pinned-cards .card[data-user="1006"]').textContent; return t.includes("Available") && !t.includes("lunch"); }, null, { timeout: 5000 });
  check(true, "live updates flow again after the restart");
  await shot(page, "04-after-restart");
  check(consoleErrors.filter((e) => !e.includes("WebSocket") && !e.includes("ERR_INTERNET_DISCONNECTED") && !e.includes("ERR_CONNECTION_REFUSED")).length === 0, "no script errors (" + consoleErrors.length + " connection messages)");

  // ---- sign out -------------------------------------------------------------------------------
  await page.click("#signout");
  await page.waitForURL(base + "/login");
  const after = await page.evaluate(async () => (await fetch("/api/v1/panel")).status);
  check(after === 401, "signed out: the API answers 401");
  await context.close();

  // ---- phone-sized ----------------------------------------------------------------------------
  console.log("phone-sized view");
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const p2 = await phone.newPage();
  await signIn(p2, "1001", "demo-1001");
  await p2.waitForURL(base + "/");
  await p2.waitForSelector('#conn-data[data-state="up"]');
  await p2.waitForSelector("#pinned-cards .card");
  const width = await p2.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 390, "nothing overflows sideways on a phone (" + width + " px)");
  await shot(p2, "05-phone");
  await p2.evaluate(() => window.scrollTo(0, document.querySelector(".pinned").offsetTop - 10));
  await shot(p2, "06-phone-pinned");
  await phone.close();

  console.log(`browser: ${checks} checks passed`);
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  console.log(`browser: failed after ${checks} checks`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  await stopServer();
  rmSync(dataDir, { recursive: true, force: true });
}
