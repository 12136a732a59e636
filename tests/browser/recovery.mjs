// End-to-end test of channel history and recovery in headless Chromium:
// two demo nodes share one redis-server (rooms keep their history in
// Redis); a page on node 1 keeps its conversation complete while node 1 is
// stopped for a few seconds and a writer on node 2 goes on publishing, and
// gets `recovered: false` (and the page's notice) when it missed more than
// the history holds. Run by scripts/browser-test after two-nodes.mjs:
//
//   node tests/browser/recovery.mjs path/to/chat REDIS_PORT PORT1 PORT2
//
// The demo must be built with the redis feature; the nodes run with
// `--history 40`. The script owns redis-server and the nodes and stops
// them all before exiting. Environment: CHROMIUM, LOG_DIR (recovery-*.log;
// default ${CARGO_TARGET_DIR:-target}/browser). Exits 0 when every step
// passed, 1 with the failing step and why otherwise.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  DemoServer, RECONNECT_WAIT, ROOT, WAIT, fail, killChildrenOnExit, launchBrowser, messagesOf, noPageErrors, open,
  passedSteps, sleep, startRedisServer, step, stopProcess, waitForMessageText, waitForText, watchdog,
} from './lib.mjs';

const OVERALL = 150_000; // ms, the whole run
const HISTORY = 40; // messages a room keeps
const [bin, ...ports] = process.argv.slice(2);
if (!bin || ports.length !== 3 || !ports.every((p) => /^\d+$/.test(p))) {
  console.error('usage: node tests/browser/recovery.mjs path/to/chat REDIS_PORT PORT1 PORT2');
  process.exit(2);
}
const [redisPort, port1, port2] = ports;
const logDir = resolve(process.env.LOG_DIR || resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target', 'browser'));
const script = 'recovery.mjs';
const redisLog = join(logDir, 'recovery-redis.log');
const node = (n, port) => new DemoServer({
  bin, port, args: ['--redis', `redis://127.0.0.1:${redisPort}`, '--history', String(HISTORY)],
  log: join(logDir, `recovery-node${n}.log`), script, name: `node ${n} (the chat demo)`,
});
const node1 = node(1, port1), node2 = node(2, port2);
killChildrenOnExit(script);
watchdog(OVERALL);

// The writer's page sends `say` events `${prefix}-${from}` .. `${prefix}-${to}`,
// one every `every` ms.
const write = (writer, prefix, from, to, every) => writer.page.evaluate(async ([p, a, b, ms]) => {
  for (let i = a; i <= b; i++) {
    window.__socket.send('say', { text: `${p}-${i}` });
    await new Promise((r) => setTimeout(r, ms));
  }
}, [prefix, from, to, every]);

// The texts of the page's chat messages that start with `prefix-`.
const texts = async (user, prefix) => (await messagesOf(user.page)).map((m) => m.text).filter((t) => t.startsWith(`${prefix}-`));

// Keeps the socket's 'recovered' events in window.__recovered.
const recordRecoveries = (user) => user.page.evaluate(() => {
  window.__recovered = [];
  window.__socket.on('recovered', (info) => window.__recovered.push(info));
});
const recoveriesOf = (user) => user.page.evaluate(() => window.__recovered);

let browser, redis;
let code = 0;
try {
  mkdirSync(logDir, { recursive: true });
  for (const log of [redisLog, node1.log, node2.log]) writeFileSync(log, '');
  let reader, writer;
  await step(`redis-server on 127.0.0.1:${redisPort} and two chat nodes on it (--history ${HISTORY}) start`, async () => {
    redis = await startRedisServer(redisPort, redisLog, script);
    await Promise.all([node1.start(), node2.start()]);
  });
  browser = await launchBrowser();
  await step('the reader opens node 1, the writer node 2; both are in lobby', async () => {
    [reader, writer] = await Promise.all([open(browser, 'reader', node1.base), open(browser, 'writer', node2.base)]);
    for (const u of [reader, writer]) {
      await waitForText(u, '#status', 'connected');
      await waitForText(u, '#current-room', 'lobby');
    }
    await recordRecoveries(reader);
  });
  const total = 40;
  await step('node 1 stops for 3 s while the writer publishes through node 2; the reader shows every message once, in order', async () => {
    const writing = write(writer, 'r', 1, total, 100);
    await waitForMessageText(reader, 'r-5');
    await node1.stop('SIGTERM');
    await waitForText(reader, '#status', 'disconnected');
    await sleep(3000);
    await node1.start();
    await writing;
    await waitForText(reader, '#status', 'connected', RECONNECT_WAIT);
    await waitForMessageText(reader, `r-${total}`, RECONNECT_WAIT);
    const got = await texts(reader, 'r');
    const want = Array.from({ length: total }, (_, i) => `r-${i + 1}`);
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(`the reader shows ${JSON.stringify(got)}`);
    const recovered = (await recoveriesOf(reader)).filter((r) => r.channel === 'lobby');
    if (recovered.length !== 1 || recovered[0].recovered !== true) fail(`the reader's recoveries: ${JSON.stringify(recovered)}`);
  });
  await step(`node 1 stops while the writer publishes more than the history holds (${HISTORY}): the reader gets recovered: false and the notice`, async () => {
    await reader.page.evaluate(() => { window.__recovered = []; });
    await node1.stop('SIGTERM');
    await waitForText(reader, '#status', 'disconnected');
    await write(writer, 'o', 1, HISTORY + 20, 5);
    await node1.start();
    await waitForText(reader, '#status', 'connected', RECONNECT_WAIT);
    await reader.page.waitForFunction(() => (window.__recovered || []).length > 0, null, { timeout: RECONNECT_WAIT });
    const recovered = await recoveriesOf(reader);
    if (recovered[0].channel !== 'lobby' || recovered[0].recovered !== false) fail(`the reader's recoveries: ${JSON.stringify(recovered)}`);
    await reader.page.waitForFunction(() => Array.from(document.querySelectorAll('#messages li.system'))
      .some((li) => li.textContent.includes('were missed while offline')), null, { timeout: WAIT });
    if ((await texts(reader, 'o')).length !== 0) fail('the reader shows messages it could not recover completely');
    // Live delivery goes on.
    await write(writer, 'after', 1, 1, 0);
    await waitForMessageText(reader, 'after-1');
  });
  await step('no uncaught JavaScript error on any page', async () => noPageErrors([reader, writer]));
} catch (err) {
  code = 1;
  console.error(`FAIL: ${err.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await Promise.all([node1.stop('SIGTERM', 5_000), node2.stop('SIGTERM', 5_000)]).catch(() => {});
  if (redis) await stopProcess(redis, 'SIGTERM', 5_000).catch(() => {});
}
console.log(`recovery: ${passedSteps()} passed, ${code} failed`);
process.exit(code);
