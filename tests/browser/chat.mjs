// End-to-end test of the chat demo (crates/simples/examples/chat.rs) in
// headless Chromium, driven by playwright-core. Run by scripts/browser-test:
//
//   node tests/browser/chat.mjs path/to/chat PORT
//
// It owns the demo server: it starts the built chat example on
// 127.0.0.1:PORT, waits until it answers HTTP, stops it (SIGTERM: graceful,
// close 1001) and restarts it on the same port to test the client's
// reconnection, and always stops it before exiting.
// Environment: CHROMIUM (default /usr/bin/chromium), SCREENSHOT (default
// target/browser/chat.png under the repository root), SERVER_LOG (the
// server's output, both runs; default target/browser/chat-server.log).
// Exits 0 when every step passed, 1 with the failing step and why otherwise.
// The helpers (processes, steps, waits, instrumentation) are in lib.mjs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  DemoServer, RECONNECT_WAIT, ROOT, WAIT, eventsOf, exchange, fail, killChildrenOnExit, launchBrowser, noPageErrors,
  open as openPage, passedSteps, step, submit, textOf, waitForEvents, waitForMessageText, waitForText, watchdog,
} from './lib.mjs';

const OVERALL = 180_000; // ms, the whole run
const [bin, port] = process.argv.slice(2);
if (!bin || !/^\d+$/.test(port || '')) {
  console.error('usage: node tests/browser/chat.mjs path/to/chat PORT');
  process.exit(2);
}
const base = `http://127.0.0.1:${port}`;
const screenshot = resolve(process.env.SCREENSHOT || resolve(ROOT, 'target/browser/chat.png'));
const serverLog = resolve(process.env.SERVER_LOG || resolve(ROOT, 'target/browser/chat-server.log'));

// The demo server: one process at a time, on the same port.
const server = new DemoServer({ bin, port, log: serverLog, script: 'chat.mjs' });
const startServer = () => server.start();
const stopServer = (signal, grace) => server.stop(signal, grace);
const open = (browser, name) => openPage(browser, name, base);
killChildrenOnExit('chat.mjs');
watchdog(OVERALL);

let browser;
let code = 0;
try {
  writeFileSync(serverLog, '');
  await startServer();
  browser = await launchBrowser();

  let a, b, c;
  await step('users A and B open / and connect', async () => {
    [a, b] = await Promise.all([open(browser, 'A'), open(browser, 'B')]);
    await waitForText(a, '#status', 'connected');
    await waitForText(b, '#status', 'connected');
  });
  await step('both start in room lobby with a guest nickname', async () => {
    for (const u of [a, b]) {
      await waitForText(u, '#current-room', 'lobby');
      const nick = await textOf(u.page, '#current-nick');
      if (!/^guest-\d+$/.test(nick || '')) fail(`user ${u.name}: #current-nick is "${nick}", expected guest-NNNN`);
    }
  });
  await step('#online reaches 2 on both pages', async () => {
    await waitForText(a, '#online', '2');
    await waitForText(b, '#online', '2');
  });
  await step('A becomes alice and B becomes bob', async () => {
    await submit(a, '#nick', 'alice', '#nick-save');
    await submit(b, '#nick', 'bob', '#nick-save');
    await waitForText(a, '#current-nick', 'alice');
    await waitForText(b, '#current-nick', 'bob');
  });
  await step('user C opens / and stays in lobby; #online reaches 3', async () => {
    c = await open(browser, 'C');
    await waitForText(c, '#status', 'connected');
    await waitForText(c, '#current-room', 'lobby');
    for (const u of [a, b, c]) await waitForText(u, '#online', '3');
  });
  await step('A and B join room rust', async () => {
    await submit(a, '#room', 'rust', '#join');
    await submit(b, '#room', 'rust', '#join');
    await waitForText(a, '#current-room', 'rust');
    await waitForText(b, '#current-room', 'rust');
  });
  await exchange({
    a, b, c, nicks: ['alice', 'bob'], room: 'rust', elsewhere: 'lobby',
    hello: 'hello from alice', reply: 'hi alice, bob here',
    names: ['B sees the message of alice', 'A sees the reply of bob', 'C in lobby sees neither message of room rust'],
  });
  await step(`screenshot of A's page to ${screenshot}`, async () => {
    mkdirSync(dirname(screenshot), { recursive: true });
    await a.page.screenshot({ path: screenshot, fullPage: true });
  });
  await step('after a reload A is still alice and connected again', async () => {
    await a.page.reload({ timeout: WAIT });
    await waitForText(a, '#current-nick', 'alice');
    await waitForText(a, '#status', 'connected');
  });
  await step('no uncaught JavaScript error on any page', async () => noPageErrors([a, b, c]));

  // Reconnection: the server stops, the pages retry with backoff, queue what
  // A sends meanwhile, and reconnect when the server is back on the port.
  await step('the server stops (SIGTERM): A and B get close 1001 and show disconnected', async () => {
    for (const u of [a, b]) await u.page.evaluate(() => { window.__events = []; });
    const status = await stopServer('SIGTERM');
    if (status.hung) fail('the chat demo did not exit within 10 s of SIGTERM (killed)');
    if (status.code !== 0) fail(`the chat demo exited with ${JSON.stringify(status)} after SIGTERM, expected code 0`);
    for (const u of [a, b]) {
      await waitForText(u, '#status', 'disconnected');
      await waitForEvents(u, 'close', 1);
      const [first] = await eventsOf(u);
      if (first.type !== 'close' || first.code !== 1001) {
        fail(`user ${u.name}: the first lifecycle event is ${JSON.stringify(first)}, expected a close with code 1001`);
      }
    }
  });
  await step('A and B retry with exponential backoff and jitter (3 attempts, delays in bounds)', async () => {
    // simples.js defaults (app.js passes no option): the delay of attempt n
    // is min(maxDelay, minDelay * factor^(n-1)) * (1 - jitter * random).
    const minDelay = 500, maxDelay = 10_000, factor = 2, jitter = 0.5;
    const jittered = [];
    for (const u of [a, b]) {
      await waitForEvents(u, 'reconnecting', 3);
      const events = await eventsOf(u);
      const tries = events.filter((e) => e.type === 'reconnecting').slice(0, 3);
      tries.forEach((e, i) => {
        const ceiling = Math.min(maxDelay, minDelay * factor ** i);
        const floor = Math.round(ceiling * (1 - jitter));
        jittered.push(e.delay < ceiling);
        if (e.attempt !== i + 1) fail(`user ${u.name}: reconnecting event ${i + 1} has attempt ${e.attempt}`);
        if (!(e.delay >= floor && e.delay <= ceiling)) {
          fail(`user ${u.name}: attempt ${e.attempt} waits ${e.delay} ms, expected ${floor} to ${ceiling} ms`);
        }
        // The attempt really waited: its failure (a close) comes after the delay.
        const next = events.find((x) => x.type === 'close' && x.t > e.t);
        if (i < 2 && !next) fail(`user ${u.name}: no close after reconnecting attempt ${e.attempt}`);
        if (next && next.t - e.t < e.delay - 5) {
          fail(`user ${u.name}: attempt ${e.attempt} failed ${Math.round(next.t - e.t)} ms after 'reconnecting', before its delay of ${e.delay} ms`);
        }
      });
      if (!(tries[0].delay <= tries[1].delay && tries[1].delay <= tries[2].delay)) {
        fail(`user ${u.name}: the delays do not grow: ${tries.map((e) => e.delay).join(', ')} ms`);
      }
      if (await u.page.evaluate(() => window.__socket.connected)) fail(`user ${u.name}: socket.connected is true`);
    }
    // Each of the 6 delays is its ceiling with a chance of 1 in 1000 or less
    // when the jitter applies.
    if (!jittered.includes(true)) fail('no jitter: every delay of A and B is exactly min(maxDelay, minDelay * factor^(attempt-1))');
  });
  await step('while disconnected, a request of A with a 300 ms timeout rejects with "timeout"', async () => {
    const result = await a.page.evaluate(() => {
      const t0 = performance.now();
      const request = window.__socket.request('join', { room: 'nowhere' }, { timeout: 300 })
        .then((data) => ({ resolved: data }), (err) => ({ error: err.message, after: performance.now() - t0 }));
      return Promise.race([request, new Promise((r) => setTimeout(r, 5000, { pending: 'after 5 s' }))]);
    });
    if (result.error !== 'timeout') fail(`the request settled with ${JSON.stringify(result)}, expected the error "timeout"`);
    if (result.after < 295) fail(`the request timed out after ${Math.round(result.after)} ms, before its 300 ms`);
  });
  const offline = 'sent by A while the server was down';
  await step('while disconnected, A sends a message from the page (#text, #send)', async () => {
    await submit(a, '#text', offline, '#send');
    const left = await a.page.inputValue('#text', { timeout: WAIT });
    if (left !== '') fail(`#text still reads "${left}" after #send: the page did not take the message`);
    if (await a.page.evaluate(() => window.__socket.connected)) fail('A is connected again too early');
  });
  await step('the server restarts on the same port; B reconnects and is back in rust, C in lobby', async () => {
    // A stays offline (Chromium's network emulation makes its attempts fail)
    // until C is back: the rooms' history was in the stopped process's
    // memory, so A's queued message must reach lobby once C is in it.
    await a.context.setOffline(true);
    await startServer();
    await waitForText(b, '#status', 'connected', RECONNECT_WAIT);
    await waitForText(b, '#current-room', 'rust');
    await waitForText(c, '#status', 'connected', RECONNECT_WAIT);
    await waitForText(c, '#current-room', 'lobby');
  });
  await step('A reconnects, is back in lobby (its room since the reload), and C gets the message A sent while offline', async () => {
    await a.context.setOffline(false);
    await waitForText(a, '#status', 'connected', RECONNECT_WAIT);
    await waitForText(a, '#current-room', 'lobby');
    const count = await waitForMessageText(c, offline);
    if (count !== 1) fail(`user C: the message arrived ${count} times`);
    // The request that timed out was taken out of the queue: had it been
    // sent on reconnection, A would be in room "nowhere".
    const room = await textOf(a.page, '#current-room');
    if (room !== 'lobby') fail(`user A: #current-room is "${room}" after the reconnection, expected lobby`);
  });
  await step('no uncaught JavaScript error on any page after the reconnection', async () => noPageErrors([a, b, c]));
} catch (err) {
  code = 1;
  console.error(`FAIL: ${err.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await stopServer('SIGTERM', 5_000).catch(() => {});
}
console.log(`browser: ${passedSteps()} passed, ${code} failed`);
process.exit(code);
