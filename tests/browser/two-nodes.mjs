// End-to-end test of the chat demo scaled out on Redis, in headless
// Chromium: two demo nodes share one redis-server, and pages on either node
// see the same presence, rooms and sessions. Run by scripts/browser-test
// after chat.mjs:
//
//   node tests/browser/two-nodes.mjs path/to/chat REDIS_PORT PORT1 PORT2
//
// The demo must be built with the redis feature. The script owns the
// processes: a redis-server on 127.0.0.1:REDIS_PORT (no persistence, its
// own temporary directory) and the nodes `chat --addr 127.0.0.1:PORTn
// --redis redis://127.0.0.1:REDIS_PORT`; it kills node 2 (SIGKILL) and
// restarts it on the same port, and always stops them all before exiting.
// Environment: CHROMIUM (default /usr/bin/chromium), LOG_DIR (where
// two-nodes-node1.log, two-nodes-node2.log and two-nodes-redis.log go;
// default ${CARGO_TARGET_DIR:-target}/browser under the repository root).
// Exits 0 when every step passed, 1 with the failing step and why otherwise.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  DemoServer, RECONNECT_WAIT, ROOT, WAIT, eventsOf, exchange, fail, killChildrenOnExit, launchBrowser, noPageErrors,
  open, passedSteps, startRedisServer, step, stopProcess, submit, waitForEvents, waitForMessage, waitForText, watchdog,
} from './lib.mjs';

const OVERALL = 180_000; // ms, the whole run
// A dead node's presence goes when its heartbeat key expires: the demo uses
// the backplane's defaults (heartbeat every 5 s, TTL 15 s), so at most 15 s
// after the kill, plus up to 5 s for the demo's recount (20 s seen), and a
// margin for a loaded machine.
const EXPIRY_WAIT = 30_000;
const [bin, ...ports] = process.argv.slice(2);
if (!bin || ports.length !== 3 || !ports.every((p) => /^\d+$/.test(p))) {
  console.error('usage: node tests/browser/two-nodes.mjs path/to/chat REDIS_PORT PORT1 PORT2');
  process.exit(2);
}
const [redisPort, port1, port2] = ports;
const redisUrl = `redis://127.0.0.1:${redisPort}`;
const logDir = resolve(process.env.LOG_DIR || resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target', 'browser'));
const redisLog = join(logDir, 'two-nodes-redis.log');
const script = 'two-nodes.mjs';
const node = (n, port) => new DemoServer({
  bin, port, args: ['--redis', redisUrl], log: join(logDir, `two-nodes-node${n}.log`), script, name: `node ${n} (the chat demo)`,
});
const node1 = node(1, port1), node2 = node(2, port2);
killChildrenOnExit(script);
watchdog(OVERALL);

let redis = null;
const startRedis = async () => { redis = await startRedisServer(redisPort, redisLog, script); };

// Keeps the `room {room, members}` events the page's socket gets from now
// on in window.__rooms (the page does not show the members).
const recordRooms = (user) => user.page.evaluate(() => {
  window.__rooms = [];
  window.__socket.on('room', (data) => window.__rooms.push(data));
});
const roomsOf = (user) => user.page.evaluate(() => window.__rooms);

// The members of `room` in the answer to a join request from the page's
// socket (the page is already in the room: the request changes nothing).
const membersOf = (user, room) =>
  user.page.evaluate((r) => window.__socket.request('join', { room: r }, { timeout: 5000 }).then((d) => d.members), room);

function expectMembers(what, members, want) {
  const missing = want.filter((nick) => !(members || []).includes(nick));
  if (missing.length) fail(`${what} lists ${JSON.stringify(members)}, without ${missing.join(' and ')}`);
}

let browser;
let code = 0;
try {
  mkdirSync(logDir, { recursive: true });
  for (const log of [redisLog, node1.log, node2.log]) writeFileSync(log, '');
  let a, b, c;
  await step(`redis-server on 127.0.0.1:${redisPort} and two chat nodes on it (ports ${port1} and ${port2}) start`, async () => {
    await startRedis();
    await Promise.all([node1.start(), node2.start()]);
  });
  browser = await launchBrowser();

  await step('A opens node 1, B opens node 2, and both connect', async () => {
    [a, b] = await Promise.all([open(browser, 'A', node1.base), open(browser, 'B', node2.base)]);
    await waitForText(a, '#status', 'connected');
    await waitForText(b, '#status', 'connected');
  });
  await step('#online reaches 2 on both pages (presence across the nodes)', async () => {
    await waitForText(a, '#online', '2');
    await waitForText(b, '#online', '2');
  });
  await step('A becomes alice on node 1 and B becomes bob on node 2', async () => {
    await submit(a, '#nick', 'alice', '#nick-save');
    await submit(b, '#nick', 'bob', '#nick-save');
    await waitForText(a, '#current-nick', 'alice');
    await waitForText(b, '#current-nick', 'bob');
  });
  await step('C opens node 1 and stays in lobby; #online reaches 3 on every page', async () => {
    c = await open(browser, 'C', node1.base);
    await waitForText(c, '#status', 'connected');
    await waitForText(c, '#current-room', 'lobby');
    for (const u of [a, b, c]) await waitForText(u, '#online', '3');
  });
  await step('A and B join room rust', async () => {
    for (const u of [a, b]) await recordRooms(u);
    await submit(a, '#room', 'rust', '#join');
    await waitForText(a, '#current-room', 'rust');
    await submit(b, '#room', 'rust', '#join');
    await waitForText(b, '#current-room', 'rust');
  });
  await exchange({
    a, b, c, nicks: ['alice', 'bob'], room: 'rust', elsewhere: 'lobby',
    hello: 'hello from alice on node 1', reply: 'hi alice, bob here on node 2',
    names: ['B on node 2 sees the message of alice on node 1', 'A on node 1 sees the reply of bob on node 2',
      'C in lobby on node 1 sees neither message of room rust'],
  });
  await step('the members of room rust are alice and bob, from either node', async () => {
    // B joined second: the room event node 2 sent B lists alice, from node
    // 1, and bob himself (a node reads its own members directly, not from
    // its presence writes to Redis, which may still be queued).
    const rust = (await roomsOf(b)).filter((r) => r.room === 'rust');
    if (rust.length !== 1) fail(`user B got ${rust.length} room events for rust: ${JSON.stringify(await roomsOf(b))}`);
    expectMembers('the room event node 2 sent B', rust[0].members, ['alice', 'bob']);
    expectMembers('the join answer of node 1 to A', await membersOf(a, 'rust'), ['alice', 'bob']);
    expectMembers('the join answer of node 2 to B', await membersOf(b, 'rust'), ['alice', 'bob']);
  });
  await step("A's session cookie from node 1 works on node 2: the page there shows alice", async () => {
    const [sid] = (await a.context.cookies(node1.base)).filter((k) => k.name === 'simples.sid');
    if (!sid) fail(`user A has no simples.sid cookie for ${node1.base}`);
    // Cookies are scoped by host, not port: 127.0.0.1's cookie already goes
    // to node 2. Set it for node 2's URL all the same, as for another host.
    await a.context.addCookies([{ name: sid.name, value: sid.value, url: node2.base }]);
    const [sent] = (await a.context.cookies(node2.base)).filter((k) => k.name === 'simples.sid');
    if (!sent || sent.value !== sid.value) fail(`the simples.sid cookie for ${node2.base} is ${JSON.stringify(sent)}, not node 1's`);
    const page = await a.context.newPage();
    try {
      const response = await page.goto(node2.base + '/', { timeout: WAIT });
      if (!response || !response.ok()) fail(`GET ${node2.base}/ answered ${response ? response.status() : 'nothing'}`);
      await waitForText({ name: 'A (second page, node 2)', page }, '#current-nick', 'alice');
      await waitForText({ name: 'A (second page, node 2)', page }, '#status', 'connected');
    } finally {
      await page.close();
    }
    for (const u of [a, b, c]) await waitForText(u, '#online', '3');
  });
  await step('no uncaught JavaScript error on any page', async () => noPageErrors([a, b, c]));

  // A node dies: its pages retry, its presence expires, and when it is back
  // its pages reconnect to it by themselves.
  let killed;
  await step('node 2 dies (SIGKILL): B shows disconnected and retries', async () => {
    await b.page.evaluate(() => { window.__events = []; });
    const status = await node2.stop('SIGKILL');
    killed = Date.now();
    if (status.signal !== 'SIGKILL') fail(`node 2 ended with ${JSON.stringify(status)}, expected SIGKILL`);
    await waitForText(b, '#status', 'disconnected');
    await waitForEvents(b, 'reconnecting', 1);
    const [first] = await eventsOf(b);
    if (first.type !== 'close') fail(`user B: the first lifecycle event is ${JSON.stringify(first)}, expected a close`);
  });
  await step(`#online drops to 2 on A and C once node 2's presence expires (within ${EXPIRY_WAIT / 1000} s)`, async () => {
    for (const u of [a, c]) await waitForText(u, '#online', '2', Math.max(1000, EXPIRY_WAIT - (Date.now() - killed)));
    console.log(`# #online dropped ${((Date.now() - killed) / 1000).toFixed(1)} s after the kill`);
  });
  await step('node 2 restarts on the same port; B reconnects by itself, and #online is 3 again', async () => {
    await node2.start();
    await waitForText(b, '#status', 'connected', RECONNECT_WAIT);
    await waitForText(b, '#current-room', 'rust');
    for (const u of [a, b, c]) await waitForText(u, '#online', '3');
  });
  const again = 'alice again, node 2 is back', back = 'bob is back on node 2';
  await step('B joins rust again; A and B chat again, B still bob (the session is in Redis)', async () => {
    await submit(b, '#room', 'rust', '#join');
    await waitForText(b, '#current-room', 'rust');
    await submit(a, '#text', again, '#send');
    await waitForMessage(b, 'alice', again);
    await submit(b, '#text', back, '#send');
    await waitForMessage(a, 'bob', back);
  });
  await step('no uncaught JavaScript error on any page after node 2 came back', async () => noPageErrors([a, b, c]));
} catch (err) {
  code = 1;
  console.error(`FAIL: ${err.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await Promise.all([node1.stop('SIGTERM', 5_000), node2.stop('SIGTERM', 5_000)]).catch(() => {});
  if (redis) await stopProcess(redis, 'SIGTERM', 5_000).catch(() => {});
}
console.log(`two-nodes: ${passedSteps()} passed, ${code} failed`);
process.exit(code);
