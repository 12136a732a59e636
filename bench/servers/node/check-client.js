'use strict';
// The correctness check of one running benchmark server (see ../check):
//   node check-client.js <port> [scenarios]
// scenarios: comma-separated, default "echo,broadcast".
// Echo (/echo): text and binary of 16 B, 1 MiB and 2 MiB (the limit), with
// multi-byte UTF-8, one by one and 100 pipelined; a client close is answered
// with the same code. Any other path (/other/path) is tried and only
// reported. Broadcast: 2 /sub + 1 /pub, 100 messages (text and binary,
// 16 B to 1 MiB) all received by both subscribers in order, byte-exact,
// with their type; nothing comes back to the publisher; after one subscriber
// leaves, the other still gets 10 more.
// Prints one line per check and "N passed, N failed"; exits 1 on a failure.

const crypto = require('crypto');
const WebSocket = require('ws');

const port = Number(process.argv[2]);
const scenarios = (process.argv[3] || 'echo,broadcast').split(',');
const base = `ws://127.0.0.1:${port}`;
const TIMEOUT = 20000;

let passed = 0;
let failed = 0;
const ok = (name) => {
	passed++;
	console.log(`ok    ${name}`);
};
const fail = (name, why) => {
	failed++;
	console.log(`FAIL  ${name}: ${why}`);
};

const withTimeout = (promise, ms, what) => Promise.race([
	promise,
	new Promise((_, reject) => setTimeout(() => reject(Error(`timed out after ${ms} ms: ${what}`)), ms)),
]);

const open = (path) => withTimeout(new Promise((resolve, reject) => {
	const ws = new WebSocket(base + path, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
	ws.inbox = [];
	ws.waiters = [];
	ws.on('message', (data, isBinary) => {
		ws.inbox.push({ data: Buffer.from(data), isBinary });
		ws.waiters.splice(0).forEach((w) => w());
	});
	ws.on('close', () => ws.waiters.splice(0).forEach((w) => w()));
	ws.once('open', () => resolve(ws));
	ws.once('error', reject);
	ws.on('error', () => {});
}), 5000, `connect ${path}`);

const until = (ws, n, what) => withTimeout(new Promise((resolve, reject) => {
	const check = () => {
		if (ws.inbox.length >= n) {
			resolve(ws.inbox.splice(0, n));
		} else if (ws.readyState !== WebSocket.OPEN) {
			reject(Error(`connection closed with ${ws.inbox.length} of ${n} messages`));
		} else {
			ws.waiters.push(check);
		}
	};
	check();
}), TIMEOUT, what);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Text of `n` bytes with 1-, 2-, 3- and 4-byte UTF-8 characters.
const text = (n) => {
	const chars = ['a', 'Z', '0', ' ', 'é', 'ж', '€', '漢', '𝄞'];
	let s = '';
	let len = 0;
	while (len < n) {
		let c = chars[crypto.randomInt(chars.length)];
		if (len + Buffer.byteLength(c) > n) c = 'x';
		s += c;
		len += Buffer.byteLength(c);
	}
	return s;
};
const binary = (n) => crypto.randomBytes(n);

// A message to send and what must come back.
const message = (isBinary, n) => {
	const payload = isBinary ? binary(n) : text(n);
	return { payload, isBinary, bytes: Buffer.from(payload) };
};

const same = (got, want) => {
	if (got.isBinary !== want.isBinary) {
		return `got a ${got.isBinary ? 'binary' : 'text'} message, sent ${want.isBinary ? 'binary' : 'text'}`;
	}
	if (!got.data.equals(want.bytes)) {
		return `payload differs (${got.data.length} bytes back, ${want.bytes.length} sent)`;
	}
	return null;
};

const closeAll = (...sockets) => sockets.forEach((ws) => ws && ws.terminate());

async function echo(path, report) {
	const ws = await open(path);
	try {
		const cases = [
			['text 16 B', message(false, 16)],
			['binary 16 B', message(true, 16)],
			['text 1 MiB', message(false, 1 << 20)],
			['binary 1 MiB', message(true, 1 << 20)],
			['text 2 MiB (limit)', message(false, 2 << 20)],
			['binary 2 MiB (limit)', message(true, 2 << 20)],
		];
		for (const [name, m] of cases) {
			ws.send(m.payload, { binary: m.isBinary });
			const [got] = await until(ws, 1, name);
			const why = same(got, m);
			why ? report.fail(`echo ${path} ${name}`, why) : report.ok(`echo ${path} ${name}`);
		}
		const burst = [];
		for (let i = 0; i < 100; i++) burst.push(message(i % 2 === 1, [16, 200, 5000, 70000][i % 4]));
		burst.forEach((m) => ws.send(m.payload, { binary: m.isBinary }));
		const got = await until(ws, burst.length, 'pipelined burst');
		const bad = got.map((g, i) => same(g, burst[i])).findIndex((w) => w);
		bad < 0 ? report.ok(`echo ${path} 100 pipelined, in order`)
			: report.fail(`echo ${path} 100 pipelined`, `message ${bad}: ${same(got[bad], burst[bad])}`);
		const code = await withTimeout(new Promise((resolve) => {
			ws.once('close', (c) => resolve(c));
			ws.close(1000, 'bye');
		}), 5000, 'close handshake');
		code === 1000 ? report.ok(`echo ${path} close handshake`)
			: report.fail(`echo ${path} close handshake`, `close code ${code}`);
	} finally {
		closeAll(ws);
	}
}

async function broadcast() {
	let subs = [];
	let pub = null;
	try {
		subs = [await open('/sub'), await open('/sub')];
		pub = await open('/pub');
		await sleep(300); // let the server register the subscribers
		const sent = [];
		for (let i = 0; i < 100; i++) {
			const n = i === 50 ? 1 << 20 : [16, 125, 126, 1000, 65535, 65536, 70000, 300000][i % 8];
			sent.push(message(i % 3 === 0, n));
		}
		sent.forEach((m) => pub.send(m.payload, { binary: m.isBinary }));
		for (const [k, sub] of subs.entries()) {
			const name = `broadcast subscriber ${k + 1}: 100 messages in order, byte-exact`;
			try {
				const got = await until(sub, sent.length, name);
				const bad = got.map((g, i) => same(g, sent[i])).findIndex((w) => w);
				bad < 0 ? ok(name) : fail(name, `message ${bad}: ${same(got[bad], sent[bad])}`);
			} catch (e) {
				fail(name, e.message);
			}
		}
		await sleep(300);
		pub.inbox.length === 0 ? ok('broadcast: nothing back to the publisher')
			: fail('broadcast: nothing back to the publisher', `${pub.inbox.length} messages`);
		// One subscriber leaves; the other still receives everything.
		subs[1].close(1000);
		await sleep(300);
		const more = [];
		for (let i = 0; i < 10; i++) more.push(message(i % 2 === 0, 100 + i));
		more.forEach((m) => pub.send(m.payload, { binary: m.isBinary }));
		const name = 'broadcast after a subscriber left: 10 more in order';
		try {
			const got = await until(subs[0], more.length, name);
			const bad = got.map((g, i) => same(g, more[i])).findIndex((w) => w);
			bad < 0 ? ok(name) : fail(name, `message ${bad}: ${same(got[bad], more[bad])}`);
		} catch (e) {
			fail(name, e.message);
		}
	} finally {
		closeAll(pub, ...subs);
	}
}

// A subscriber that stops reading must not hold up the publisher or the
// other subscribers: 64 messages of 1 MiB, each sent once the reading
// subscriber has the previous one, so only the paused one falls behind (past
// the server's 16 MiB queue plus the kernel's buffers). The paused one must
// get an in-order subsequence once it reads again.
async function slowSubscriber() {
	let fast = null;
	let slow = null;
	let pub = null;
	const name = 'broadcast: a paused subscriber does not hold up the publisher or the other subscriber';
	try {
		fast = await open('/sub');
		slow = await open('/sub');
		pub = await open('/pub');
		slow.pause();
		await sleep(300);
		const sent = [];
		for (let i = 0; i < 64; i++) {
			const m = message(true, 1 << 20);
			sent.push(m);
			pub.send(m.payload, { binary: true });
			const [got] = await until(fast, 1, `message ${i} to the reading subscriber`);
			const why = same(got, m);
			if (why) throw Error(`reading subscriber, message ${i}: ${why}`);
		}
		ok(name);
		slow.resume();
		for (;;) {
			const before = slow.inbox.length;
			await sleep(1000);
			if (slow.inbox.length === before) break;
		}
		// Each message received must be a later one than the one before.
		let j = 0;
		let matched = 0;
		for (const got of slow.inbox) {
			while (j < sent.length && !got.data.equals(sent[j].bytes)) j++;
			if (j === sent.length) break;
			matched++;
			j++;
		}
		const n = slow.inbox.length;
		matched === n && n > 0 ? ok(`broadcast: the paused subscriber got ${n} of 64 once it read again, in order`)
			: fail('broadcast: the paused subscriber', `${n} messages, not an in-order subsequence of those sent`);
	} catch (e) {
		fail(name, e.message);
	} finally {
		closeAll(pub, fast, slow);
	}
}

(async () => {
	const strict = { ok, fail };
	if (scenarios.includes('echo')) {
		try {
			await echo('/echo', strict);
		} catch (e) {
			fail('echo /echo', e.message);
		}
		// Any other path echoes too per the contract; reported, not counted.
		const info = {
			ok: () => {},
			fail: (name, why) => { throw Error(`${name}: ${why}`); },
		};
		try {
			await echo('/other/path', info);
			console.log('info  echo on another path (/other/path): works');
		} catch (e) {
			console.log(`info  echo on another path (/other/path): does not work (${e.message})`);
		}
	}
	if (scenarios.includes('broadcast')) {
		try {
			await broadcast();
		} catch (e) {
			fail('broadcast', e.message);
		}
		await slowSubscriber();
	}
	console.log(`${passed} passed, ${failed} failed`);
	process.exit(failed ? 1 : 0);
})();
