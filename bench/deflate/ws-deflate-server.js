'use strict';
// ws (npm) echo server with permessage-deflate, the peer of
// `echo_server` (simples-ws, deflate on by default) in bench/deflate/run.
// Level 1 and a 64-byte threshold, like simples-ws's DeflateConfig::default();
// context takeover unless the client offers *_no_context_takeover (ws
// accepts those). No idle timeout, messages up to 64 MiB.
//
//   node ws-deflate-server.js <port>

const path = require('path');
const http = require('http');
const { WebSocketServer } = require(path.join(__dirname, '../servers/node/node_modules/ws'));

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || process.argv.length !== 3) {
	console.error('usage: node ws-deflate-server.js <port>');
	process.exit(2);
}

const server = http.createServer((req, res) => {
	res.writeHead(426, { 'Content-Type': 'text/plain' });
	res.end('WebSocket only\n');
});
const wss = new WebSocketServer({
	server,
	perMessageDeflate: { threshold: 64, zlibDeflateOptions: { level: 1 } },
	maxPayload: 64 << 20,
	clientTracking: false,
});
wss.on('connection', (ws) => {
	ws.on('error', () => {});
	ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
server.listen(port, '127.0.0.1', () => console.log(`ws-deflate listening on ws://127.0.0.1:${port}`));
