'use strict';
// simpleS (npm simples@0.9.0-alpha-10, the original simpleS) benchmark
// peer; see bench/servers/README.md.
//
// - /echo (and /): echo each message with its type (`connection.send` of
//   the received string or Buffer);
// - /sub: subscriber; /pub: each message is broadcast with the /sub host's
//   `broadcast(data, filter)` (simpleS frames it once per subscriber: its
//   API cannot share an encoded frame);
// - the filter skips a subscriber with MAX_QUEUED bytes or more waiting
//   (counted, printed on SIGTERM/SIGINT), the same policy as the other
//   servers.
// simpleS can only serve the paths it is given: a wildcard WS route
// ('/*') makes its router throw (it reads `host._pattern`, which WS hosts do
// not have), so other paths are refused with 400.
// Options: origins ['*'] (any origin), timeout 0 (no idle timeout, no
// pings), limit 2 MiB, UTF-8 validation of text on (simpleS skips it by
// default; every other server validates). No compression: simpleS has none
// for WebSocket.

const simples = require('simples');

const MAX_MESSAGE = 2 * 1024 * 1024;
const MAX_QUEUED = 16 * 1024 * 1024;

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || process.argv.length !== 3) {
	console.error('usage: node simples-server.js <port>');
	process.exit(2);
}

const options = {
	limit: MAX_MESSAGE,
	origins: ['*'],
	timeout: 0,
	validation: true,
};

let drops = 0;

// Bytes waiting for a connection: in its frame transform and its socket.
const queued = (connection) => connection.writableLength + connection.readableLength + connection.socket.writableLength;

const ignoreErrors = (connection) => connection.on('error', () => {});

const server = simples(port, { hostname: '127.0.0.1' });
server.on('error', (error) => {
	console.error(`simples-node: ${error.message}`);
});

const echo = (connection) => {
	ignoreErrors(connection);
	connection.on('message', (message) => connection.send(message.data));
};
// Socket errors of a host's connections (EPIPE, ECONNRESET when a client
// goes away) are emitted on the host; simpleS prints them without a listener.
const quiet = (host) => host.on('error', () => {});
quiet(server.ws('/echo', options, echo));
quiet(server.ws('/', options, echo));

const subscribers = quiet(server.ws('/sub', options, ignoreErrors));
const hasRoom = (connection) => {
	if (queued(connection) < MAX_QUEUED) {
		return true;
	}
	drops++;
	return false;
};

quiet(server.ws('/pub', options, (connection) => {
	ignoreErrors(connection);
	connection.on('message', (message) => subscribers.broadcast(message.data, hasRoom));
}));

const stop = () => {
	console.error(`simples-node: dropped broadcast deliveries: ${drops}`);
	process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
