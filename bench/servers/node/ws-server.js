'use strict';
// ws (npm) benchmark peer; see bench/servers/README.md.
//
// - any path: echo each message with its type (`send` of the received
//   Buffer: no copy);
// - /sub: subscriber; /pub: every message goes to every subscriber. The
//   subscribers are kept in their own Set (wss.clients would also hold the
//   echo and publisher connections). The same Buffer is sent to each: ws
//   frames it without copying it (readOnly), so only the header is built per
//   subscriber.
// - a slow subscriber never slows the publisher: with MAX_QUEUED bytes or
//   more buffered for it (`bufferedAmount`), it misses the message (counted,
//   printed on SIGTERM/SIGINT), the same policy as the Rust servers.
// No compression, messages up to 2 MiB, no idle timeout.

const http = require('http');
const { WebSocketServer } = require('ws');

const MAX_MESSAGE = 2 * 1024 * 1024;
const MAX_QUEUED = 16 * 1024 * 1024;

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || process.argv.length !== 3) {
	console.error('usage: node ws-server.js <port>');
	process.exit(2);
}

const server = http.createServer((req, res) => {
	res.writeHead(426, { 'Content-Type': 'text/plain' });
	res.end('WebSocket only\n');
});
const wss = new WebSocketServer({
	server,
	perMessageDeflate: false,
	maxPayload: MAX_MESSAGE,
	clientTracking: false,
});

const subscribers = new Set();
let drops = 0;

wss.on('connection', (ws, req) => {
	ws.on('error', () => {});
	const path = req.url.split('?')[0];
	if (path === '/sub') {
		subscribers.add(ws);
		ws.on('close', () => subscribers.delete(ws));
	} else if (path === '/pub') {
		ws.on('message', (data, isBinary) => {
			const options = { binary: isBinary };
			for (const sub of subscribers) {
				if (sub.bufferedAmount >= MAX_QUEUED) {
					drops++;
					continue;
				}
				sub.send(data, options);
			}
		});
	} else {
		ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
	}
});

const stop = () => {
	console.error(`ws: dropped broadcast deliveries: ${drops}`);
	process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, '127.0.0.1');
