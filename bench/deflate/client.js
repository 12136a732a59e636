'use strict';
// permessage-deflate load client for bench/deflate/run (ws's client).
//
//   node client.js --url ws://127.0.0.1:PORT/ --pid SERVER_PID --ctx takeover|nct
//                  --mode tput [--conns 10] [--inflight 4] [--secs 5] [--warmup 1]
//                  --mode mem  [--conns 1000] [--settle 2]
//
// Messages: 500 API-like JSON documents (150 B to 3 KiB, seeded), sent as
// text. `--ctx takeover` offers plain permessage-deflate; `--ctx nct` also
// offers server_no_context_takeover and client_no_context_takeover. The
// client compresses at level 1 with a 64-byte threshold, like the servers.
// Prints one JSON line.
//
// tput: every connection keeps `inflight` messages outstanding, checks each
//   echo byte for byte, and measures over `secs` after `warmup`: echoes/s,
//   JSON MB/s (JSON bytes echoed back, counted once), wire ratio (bytes the
//   client's sockets read, i.e. server -> client frames, / JSON bytes echoed;
//   `up_ratio` is the same for client -> server), and the server's CPU time
//   (utime+stime from /proc/PID/stat) per echoed message.
// mem: VmRSS of the server before connecting; then `conns` connections each
//   send one message and await its echo; after `settle` s, VmRSS again;
//   reports (after - before) / conns.

const fs = require('fs');
const path = require('path');
const WebSocket = require(path.join(__dirname, '../servers/node/node_modules/ws'));

const args = { conns: null, inflight: 4, secs: 5, warmup: 1, settle: 2, count: 500, seed: 7 };
for (let i = 2; i < process.argv.length; i += 2) {
	const k = process.argv[i].replace(/^--/, '');
	const v = process.argv[i + 1];
	args[k] = /^[0-9.]+$/.test(v) ? Number(v) : v;
}
if (!args.url || !args.pid || !['tput', 'mem'].includes(args.mode) || !['takeover', 'nct'].includes(args.ctx)) {
	console.error('usage: node client.js --url URL --pid PID --ctx takeover|nct --mode tput|mem [...]');
	process.exit(2);
}
if (args.conns === null) args.conns = args.mode === 'tput' ? 10 : 1000;

// ---- seeded JSON generator ----
function mulberry32(a) {
	return () => {
		a |= 0; a = (a + 0x6d2b79f5) | 0;
		let t = Math.imul(a ^ (a >>> 15), 1 | a);
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}
const rnd = mulberry32(args.seed);
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];
const FIRST = ['Alice', 'Bruno', 'Chen', 'Dana', 'Emeka', 'Fatima', 'Giulia', 'Hiro', 'Ines', 'Jonas', 'Kavya', 'Lars', 'Mateo', 'Nadia', 'Olga', 'Pedro'];
const LAST = ['Smith', 'Okafor', 'Tanaka', 'Müller', 'Rossi', 'Silva', 'Nowak', 'Haddad', 'Kim', 'Dubois', 'Larsen', 'Garcia'];
const STATUS = ['pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'];
const CITY = ['Lisbon', 'Lagos', 'Osaka', 'Berlin', 'Milan', 'São Paulo', 'Warsaw', 'Beirut', 'Seoul', 'Paris'];
const WORDS = ['wireless', 'ergonomic', 'steel', 'organic', 'compact', 'premium', 'mouse', 'keyboard', 'bottle', 'lamp', 'charger', 'backpack', 'monitor', 'cable'];
function ts() {
	return new Date(Date.UTC(2024, int(12), 1 + int(28), int(24), int(60), int(60), int(1000))).toISOString();
}
function item() {
	return {
		sku: `SKU-${String(int(1e6)).padStart(6, '0')}`,
		name: `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)}`,
		quantity: 1 + int(5),
		unit_price: { amount: int(50000) / 100, currency: pick(['EUR', 'USD', 'JPY']) },
		in_stock: rnd() < 0.8,
	};
}
function doc() {
	const first = pick(FIRST), last = pick(LAST);
	const d = {
		id: `ord_${int(1e9).toString(36)}${int(1e9).toString(36)}`,
		type: 'order',
		status: pick(STATUS),
		created_at: ts(),
		updated_at: ts(),
		customer: { id: 100000 + int(900000), name: `${first} ${last}`, email: `${first.toLowerCase()}.${last.toLowerCase()}@example.com`, city: pick(CITY) },
		items: [],
	};
	const target = 150 + Math.floor(Math.pow(rnd(), 1.5) * (3072 - 150));
	while (JSON.stringify(d).length < target - 170) d.items.push(item());
	if (JSON.stringify(d).length < 150) d.note = 'x'.repeat(150 - JSON.stringify(d).length);
	d.total = { amount: Math.round(d.items.reduce((s, it) => s + it.quantity * it.unit_price.amount, 0) * 100) / 100, items: d.items.length };
	return d;
}
const MESSAGES = [];
for (let i = 0; i < args.count; i++) {
	let s = JSON.stringify(doc());
	if (s.length > 3072) s = JSON.stringify({ ...JSON.parse(s), items: JSON.parse(s).items.slice(0, 10) });
	MESSAGES.push(Buffer.from(s));
}

// ---- helpers ----
const TICK = 100; // CLK_TCK; checked by `run` with getconf
function cpuTicks() {
	const stat = fs.readFileSync(`/proc/${args.pid}/stat`, 'utf8');
	const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
}
function rssKiB() {
	const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${args.pid}/status`, 'utf8'));
	return Number(m[1]);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deflateOpts = () => {
	const o = { threshold: 64, zlibDeflateOptions: { level: 1 } };
	if (args.ctx === 'nct') { o.serverNoContextTakeover = true; o.clientNoContextTakeover = true; }
	return o;
};
function open() {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(args.url, { perMessageDeflate: deflateOpts() });
		let ext = '';
		ws.once('upgrade', (res) => (ext = res.headers['sec-websocket-extensions'] || ''));
		ws.once('open', () => {
			ws.negotiated = ext;
			if (!/permessage-deflate/.test(ext)) return reject(new Error(`no permessage-deflate negotiated: "${ext}"`));
			if (args.ctx === 'nct' && !/server_no_context_takeover/.test(ext)) return reject(new Error(`server context takeover not disabled: "${ext}"`));
			resolve(ws);
		});
		ws.once('error', reject);
	});
}
function fail(msg) { console.error(`client: ${msg}`); process.exit(1); }

// ---- throughput ----
async function tput() {
	const socks = [];
	for (let i = 0; i < args.conns; i++) socks.push(await open());
	let measuring = false, stopping = false, echoes = 0, jsonBytes = 0;
	const done = [];
	socks.forEach((ws, c) => {
		let next = (c * 53) % MESSAGES.length;
		const expected = [];
		let resolveDone;
		done.push(new Promise((r) => (resolveDone = r)));
		const send = () => {
			const m = MESSAGES[next];
			next = (next + 1) % MESSAGES.length;
			expected.push(m);
			ws.send(m, { binary: false });
		};
		ws.on('message', (data, isBinary) => {
			const m = expected.shift();
			if (isBinary || !data.equals(m)) fail(`echo mismatch on connection ${c}`);
			if (measuring) { echoes++; jsonBytes += m.length; }
			if (!stopping) send();
			else if (expected.length === 0) resolveDone();
		});
		ws.on('error', (e) => fail(e.message));
		for (let k = 0; k < args.inflight; k++) send();
	});
	const bytes = () => socks.reduce((a, ws) => [a[0] + ws._socket.bytesRead, a[1] + ws._socket.bytesWritten], [0, 0]);
	await sleep(args.warmup * 1000);
	const b0 = bytes(), c0 = cpuTicks(), t0 = process.hrtime.bigint();
	measuring = true;
	await sleep(args.secs * 1000);
	measuring = false;
	const b1 = bytes(), c1 = cpuTicks(), t1 = process.hrtime.bigint();
	const n = echoes, jb = jsonBytes;
	stopping = true;
	await Promise.race([Promise.all(done), sleep(5000)]);
	socks.forEach((ws) => ws.close());
	const secs = Number(t1 - t0) / 1e9;
	// bytesRead/bytesWritten are counted at the moment of sampling; over
	// a few seconds the in-flight skew (<= 4 messages a connection) is noise.
	return {
		msgs_per_s: n / secs,
		mb_per_s: jb / secs / 1e6,
		wire_ratio: (b1[0] - b0[0]) / jb,
		up_ratio: (b1[1] - b0[1]) / jb,
		cpu_us_per_msg: ((c1 - c0) / TICK) * 1e6 / n,
		cpu_util: (c1 - c0) / TICK / secs,
		echoes: n,
		extensions: socks[0].negotiated,
	};
}

// ---- memory ----
async function mem() {
	const before = rssKiB();
	const socks = [];
	const BATCH = 50;
	for (let i = 0; i < args.conns; i += BATCH) {
		const batch = [];
		for (let j = i; j < Math.min(i + BATCH, args.conns); j++) {
			batch.push(open().then((ws) => new Promise((resolve, reject) => {
				const m = MESSAGES[j % MESSAGES.length];
				ws.once('message', (data) => (data.equals(m) ? resolve(ws) : reject(new Error('echo mismatch'))));
				ws.on('error', reject);
				ws.send(m, { binary: false });
			})));
		}
		socks.push(...(await Promise.all(batch)));
	}
	await sleep(args.settle * 1000);
	const after = rssKiB();
	const r = {
		rss_before_kib: before,
		rss_after_kib: after,
		bytes_per_conn: ((after - before) * 1024) / args.conns,
		conns: socks.length,
		extensions: socks[0].negotiated,
	};
	socks.forEach((ws) => ws.terminate());
	return r;
}

(async () => {
	const jsonTotal = MESSAGES.reduce((s, m) => s + m.length, 0);
	const r = args.mode === 'tput' ? await tput() : await mem();
	r.messages = MESSAGES.length;
	r.json_bytes_min = Math.min(...MESSAGES.map((m) => m.length));
	r.json_bytes_max = Math.max(...MESSAGES.map((m) => m.length));
	r.json_bytes_mean = jsonTotal / MESSAGES.length;
	console.log(JSON.stringify(r));
	setTimeout(() => process.exit(0), 200);
})().catch((e) => fail(e.stack || String(e)));
