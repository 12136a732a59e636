// End-to-end test of the chat demo (crates/simples/examples/chat.rs) in
// headless Chromium, driven by playwright-core. Run by scripts/browser-test:
//
//   node tests/browser/chat.mjs http://127.0.0.1:PORT
//
// Environment: CHROMIUM (default /usr/bin/chromium), SCREENSHOT (default
// target/browser/chat.png under the repository root).
// Exits 0 when every step passed, 1 with the failing step and why otherwise.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const WAIT = 10_000; // ms, for every wait on the page
const OVERALL = 120_000; // ms, the whole run
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const base = process.argv[2];
if (!base || !/^https?:\/\//.test(base)) {
  console.error('usage: node tests/browser/chat.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = resolve(process.env.SCREENSHOT || resolve(ROOT, 'target/browser/chat.png'));

let passed = 0;
const fail = (message) => { throw new Error(message); };
async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    err.message = `${name}: ${err.message}`;
    throw err;
  }
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

// Trimmed text of the first element matching `selector`, or null if none.
const textOf = (page, selector) =>
  page.evaluate((sel) => { const el = document.querySelector(sel); return el ? el.textContent.trim() : null; }, selector);

async function waitForText(user, selector, expected) {
  try {
    await user.page.waitForFunction(([sel, want]) => {
      const el = document.querySelector(sel);
      return el !== null && el.textContent.trim() === want;
    }, [selector, expected], { timeout: WAIT });
  } catch (err) {
    if (!/Timeout/i.test(err.message)) throw err;
    const actual = await textOf(user.page, selector).catch(() => '(page unavailable)');
    fail(`user ${user.name}: expected ${selector} to read "${expected}" within ${WAIT} ms, ` +
      (actual === null ? 'but there is no such element' : `it reads "${actual}"`));
  }
}

// The chat messages (li.msg) shown on a page, as [{from, text}].
const messagesOf = (page) => page.evaluate(() =>
  Array.from(document.querySelectorAll('#messages li.msg'), (li) => ({
    from: (li.querySelector('.from') || { textContent: '' }).textContent.trim(),
    text: (li.querySelector('.text') || { textContent: '' }).textContent.trim(),
  })));

async function waitForMessage(user, from, text) {
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

// Types `value` into the input `input` and clicks `button`.
async function submit(user, input, value, button) {
  await user.page.fill(input, value, { timeout: WAIT });
  await user.page.click(button, { timeout: WAIT });
}

async function open(browser, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const user = { name, context, page, errors: [] };
  page.on('pageerror', (err) => user.errors.push(err.message));
  const response = await page.goto(base + '/', { timeout: WAIT });
  if (!response || !response.ok()) fail(`user ${name}: GET / answered ${response ? response.status() : 'nothing'}`);
  return user;
}

function noPageErrors(users) {
  for (const u of users) {
    if (u.errors.length) fail(`user ${u.name}: uncaught JavaScript errors on the page: ${u.errors.join(' | ')}`);
  }
}

const watchdog = setTimeout(() => {
  console.error(`FAIL: the test did not finish within ${OVERALL / 1000} s`);
  process.exit(1);
}, OVERALL);
watchdog.unref();

let browser;
let code = 0;
try {
  browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 30_000,
  }).catch((err) => fail(`cannot launch Chromium at ${executablePath} (set CHROMIUM to another path): ${err.message}`));

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
  const hello = 'hello from alice', reply = 'hi alice, bob here';
  await step('B sees the message of alice', async () => {
    await submit(a, '#text', hello, '#send');
    await waitForMessage(b, 'alice', hello);
  });
  await step('A sees the reply of bob', async () => {
    await submit(b, '#text', reply, '#send');
    await waitForMessage(a, 'bob', reply);
  });
  await step('C in lobby sees neither message of room rust', async () => {
    await c.page.waitForTimeout(300); // a misrouted broadcast would have arrived by now
    const leaked = (await messagesOf(c.page)).filter((m) => m.text === hello || m.text === reply);
    if (leaked.length) fail(`user C (lobby) got messages of room rust: ${JSON.stringify(leaked)}`);
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
} catch (err) {
  code = 1;
  console.error(`FAIL: ${err.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
}
console.log(`browser: ${passed} passed, ${code} failed`);
process.exit(code);
