// What the browser tests (chat.mjs, two-nodes.mjs, recovery.mjs) share: the processes
// they own (demo nodes, redis-server) and their cleanup, the steps and their
// count, the page instrumentation, the waits on the page, and the
// watchdog. Plain Node.js, no test runner.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WAIT = 10_000; // ms, for every wait on the page
export const RECONNECT_WAIT = 30_000; // ms, waits for a reconnection (backoff up to maxDelay 10 s)
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const fail = (message) => { throw new Error(message); };

// ---- Processes -------------------------------------------------------------

// Every child process still running, killed however the run ends.
const live = new Set();

// Starts `cmd args` with its output appended to `log` after a `header`
// line. Returns {proc, exited: Promise<{code, signal, error?}>, status}
// (status: the exit status once exited, else null).
export function spawnLogged(cmd, args, log, header) {
  mkdirSync(dirname(log), { recursive: true });
  writeFileSync(log, `${header}\n`, { flag: 'a' });
  const fd = openSync(log, 'a');
  const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise((res) => {
    proc.on('exit', (code, signal) => res({ code, signal }));
    proc.on('error', (err) => res({ code: null, signal: null, error: err.message }));
  });
  const child = { proc, exited, status: null };
  live.add(child);
  exited.then((s) => { child.status = s; live.delete(child); });
  return child;
}

// Sends `signal` and waits for the exit (SIGKILL after `grace` ms).
export async function stopProcess(child, signal, grace = 10_000) {
  const { proc, exited } = child;
  if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
  let timer;
  const status = await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, grace, null); })]);
  clearTimeout(timer);
  if (status) return status;
  proc.kill('SIGKILL');
  await exited;
  return { code: null, signal: 'SIGKILL', hung: true };
}

// Whatever ends the run (failure, watchdog, SIGINT, SIGTERM), no child
// process outlives it. `script` names the test in the signal message.
export function killChildrenOnExit(script) {
  process.on('exit', () => { for (const child of live) child.proc.kill('SIGKILL'); });
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
    process.on(sig, () => { console.error(`${script}: ${sig}, stopping`); process.exit(code); });
  }
}

// A demo server (the chat example) on 127.0.0.1:port: one process at a
// time, started and restarted on the same port, its output appended to
// `log`. `name` says which in messages, `script` which test in the log.
export class DemoServer {
  constructor({ bin, port, args = [], log, script, name = 'the chat demo' }) {
    Object.assign(this, { bin, port, args: ['--addr', `127.0.0.1:${port}`, ...args], log, script, name });
    this.base = `http://127.0.0.1:${port}`;
    this.child = null;
  }

  // Starts it and waits until it answers HTTP (20 s at most).
  async start() {
    const { bin, args, log, base, name } = this;
    const child = spawnLogged(bin, args, log, `--- ${this.script}: ${bin} ${args.join(' ')} ---`);
    this.child = child;
    for (const deadline = Date.now() + 20_000; ;) {
      if (child.status) {
        fail(`${name} exited before answering HTTP on ${base} (${child.status.error || `code ${child.status.code}, signal ${child.status.signal}`}; log: ${log})`);
      }
      if (await fetch(base + '/').then((r) => r.ok, () => false)) return;
      if (Date.now() > deadline) fail(`${name} did not answer HTTP on ${base} within 20 s (log: ${log})`);
      await sleep(200);
    }
  }

  // Sends `signal` and waits for the exit (SIGKILL after `grace` ms);
  // null if it was not running.
  async stop(signal, grace = 10_000) {
    if (!this.child) return null;
    const child = this.child;
    this.child = null;
    return stopProcess(child, signal, grace);
  }
}

// Whether a Redis server answers PING on 127.0.0.1:port.
const ping = (port) => new Promise((res) => {
  const socket = connect(Number(port), '127.0.0.1');
  let reply = '';
  socket.setTimeout(1000, () => { socket.destroy(); res(false); });
  socket.on('connect', () => socket.write('PING\r\n'));
  socket.on('data', (chunk) => {
    reply += chunk;
    if (reply.includes('\r\n')) { socket.destroy(); res(reply.startsWith('+PONG')); }
  });
  socket.on('error', () => res(false));
});

// Starts a redis-server on 127.0.0.1:port (no persistence, a temporary
// directory of its own, output in `log`) and waits until it answers PING;
// returns its spawnLogged handle.
export async function startRedisServer(port, log, script) {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    fail(`cannot run redis-server (${probe.error.code || probe.error.message}): install it (Debian: apt-get install redis-server; ` +
      'scripts/browser-test does it when run as root) or put it on PATH');
  }
  const dir = mkdtempSync(join(tmpdir(), `${script.replace(/\.mjs$/, '')}-redis-`));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const argv = ['--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--port', String(port), '--dir', dir];
  const redis = spawnLogged('redis-server', argv, log, `--- ${script}: redis-server ${argv.map((a) => a || "''").join(' ')} ---`);
  for (const deadline = Date.now() + 10_000; ;) {
    if (redis.status) fail(`redis-server exited before answering PING on 127.0.0.1:${port} (log: ${log})`);
    if (await ping(port)) return redis;
    if (Date.now() > deadline) fail(`redis-server did not answer PING on 127.0.0.1:${port} within 10 s (log: ${log})`);
    await sleep(100);
  }
}

// ---- Steps -----------------------------------------------------------------

let passed = 0;
export const passedSteps = () => passed;

// Runs step `name`: prints `ok N - name` when it passes, throws with the
// step's name prefixed otherwise.
export async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    err.message = `${name}: ${err.message}`;
    throw err;
  }
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

// Ends the run after `ms` whatever it is doing (the exit handler kills the
// child processes).
export function watchdog(ms) {
  const timer = setTimeout(() => {
    console.error(`FAIL: the test did not finish within ${ms / 1000} s`);
    process.exit(1);
  }, ms);
  timer.unref();
}

// ---- The browser and the pages ---------------------------------------------

export function launchBrowser() {
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 30_000,
  }).catch((err) => fail(`cannot launch Chromium at ${executablePath} (set CHROMIUM to another path): ${err.message}`));
}

// Test instrumentation, run in every page before its scripts: keeps the
// page's socket (app.js makes it inside an IIFE) as window.__socket and logs
// its lifecycle events, with performance.now() times, in window.__events.
// It wraps simples.connect when simples.js assigns window.simples; the demo
// itself exposes nothing.
export function instrument() {
  let value;
  Object.defineProperty(window, 'simples', {
    configurable: true,
    enumerable: true,
    get() { return value; },
    set(v) {
      value = v;
      if (!v || typeof v.connect !== 'function') return;
      const connect = v.connect;
      v.connect = function (...args) {
        const socket = connect.apply(this, args);
        window.__socket = socket;
        window.__events = [];
        const log = (type) => (e) => window.__events.push({ type, t: performance.now(), ...(e || {}) });
        socket.on('open', log('open')).on('close', log('close')).on('reconnecting', log('reconnecting'));
        return socket;
      };
    },
  });
}

// A user: a browser context of its own (its own cookies) with the
// instrumentation, and a page on `base` + '/'.
export async function open(browser, name, base) {
  const context = await browser.newContext();
  await context.addInitScript(instrument);
  const page = await context.newPage();
  const user = { name, context, page, errors: [] };
  page.on('pageerror', (err) => user.errors.push(err.message));
  const response = await page.goto(base + '/', { timeout: WAIT });
  if (!response || !response.ok()) fail(`user ${name}: GET / answered ${response ? response.status() : 'nothing'}`);
  return user;
}

export function noPageErrors(users) {
  for (const u of users) {
    if (u.errors.length) fail(`user ${u.name}: uncaught JavaScript errors on the page: ${u.errors.join(' | ')}`);
  }
}

// Trimmed text of the first element matching `selector`, or null if none.
export const textOf = (page, selector) =>
  page.evaluate((sel) => { const el = document.querySelector(sel); return el ? el.textContent.trim() : null; }, selector);

export async function waitForText(user, selector, expected, timeout = WAIT) {
  try {
    await user.page.waitForFunction(([sel, want]) => {
      const el = document.querySelector(sel);
      return el !== null && el.textContent.trim() === want;
    }, [selector, expected], { timeout });
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    const actual = await textOf(user.page, selector).catch(() => '(page unavailable)');
    fail(`user ${user.name}: expected ${selector} to read "${expected}" within ${timeout} ms, ` +
      (actual === null ? 'but there is no such element' : `it reads "${actual}"`));
  }
}

// The chat messages (li.msg) shown on a page, as [{from, text}].
export const messagesOf = (page) => page.evaluate(() =>
  Array.from(document.querySelectorAll('#messages li.msg'), (li) => ({
    from: (li.querySelector('.from') || { textContent: '' }).textContent.trim(),
    text: (li.querySelector('.text') || { textContent: '' }).textContent.trim(),
  })));

export async function waitForMessage(user, from, text) {
  try {
    await user.page.waitForFunction(([f, t]) => Array.from(document.querySelectorAll('#messages li.msg')).some((li) => {
      const from = li.querySelector('.from'), text = li.querySelector('.text');
      return from && text && from.textContent.trim() === f && text.textContent.trim() === t;
    }), [from, text], { timeout: WAIT });
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    fail(`user ${user.name}: no li.msg from "${from}" with text "${text}" within ${WAIT} ms; ` +
      `#messages holds ${JSON.stringify(await messagesOf(user.page))}`);
  }
}

// Waits for an li.msg whose .text is `text` (whoever sent it); returns how
// many the page shows.
export async function waitForMessageText(user, text, timeout = WAIT) {
  try {
    await user.page.waitForFunction((t) => Array.from(document.querySelectorAll('#messages li.msg .text'))
      .some((el) => el.textContent.trim() === t), text, { timeout });
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    fail(`user ${user.name}: no li.msg with text "${text}" within ${timeout} ms; ` +
      `#messages holds ${JSON.stringify(await messagesOf(user.page))}`);
  }
  return (await messagesOf(user.page)).filter((m) => m.text === text).length;
}

// The socket's lifecycle events logged by instrument().
export const eventsOf = (user) => user.page.evaluate(() => window.__events || null);

export async function waitForEvents(user, type, count, timeout = WAIT) {
  try {
    await user.page.waitForFunction(([ty, n]) => (window.__events || []).filter((e) => e.type === ty).length >= n,
      [type, count], { timeout });
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    fail(`user ${user.name}: expected ${count} '${type}' events within ${timeout} ms, ` +
      `the socket logged ${JSON.stringify(await eventsOf(user))}`);
  }
}

// Types `value` into the input `input` and clicks `button`.
export async function submit(user, input, value, button) {
  await user.page.fill(input, value, { timeout: WAIT });
  await user.page.click(button, { timeout: WAIT });
}

// A message exchange in `room`, as three steps named `names`: A says
// `hello` and B sees it from `nicks[0]`, B replies `reply` and A sees it
// from `nicks[1]`, and C, in room `elsewhere`, sees neither.
export async function exchange({ a, b, c, nicks: [nickA, nickB], room, elsewhere, hello, reply, names }) {
  await step(names[0], async () => {
    await submit(a, '#text', hello, '#send');
    await waitForMessage(b, nickA, hello);
  });
  await step(names[1], async () => {
    await submit(b, '#text', reply, '#send');
    await waitForMessage(a, nickB, reply);
  });
  await step(names[2], async () => {
    await c.page.waitForTimeout(300); // a misrouted broadcast would have arrived by now
    const leaked = (await messagesOf(c.page)).filter((m) => m.text === hello || m.text === reply);
    if (leaked.length) fail(`user ${c.name} (${elsewhere}) got messages of room ${room}: ${JSON.stringify(leaked)}`);
  });
}
