'use strict';
// uWebSockets.js benchmark peer (npm @btc-vision/uwebsockets.js); see
// bench/servers/README.md. Its native addon needs glibc >= 2.38: `bench/run`
// starts it under the glibc that `bench/servers/setup` puts in
// bench/.runtime/glibc (see the README).
//
// - any path: echo with `ws.send(message, isBinary)` (uWS corks the socket
//   for the whole callback, so replies to one read leave in one write);
// - /sub subscribes to topic 'b'; /pub: `app.publish('b', message,
//   isBinary)`, uWS's built-in pub/sub (one copy per topic, queued on each
//   subscriber);
// - a subscriber with maxBackpressure (MAX_QUEUED) bytes waiting misses the
//   message (uWS drops it and calls `dropped`; counted, printed on
//   SIGTERM/SIGINT), the same policy as the Rust servers.
// No compression, messages up to 2 MiB, no idle timeout, no automatic pings.

const uWS = require('@btc-vision/uwebsockets.js');

const MAX_MESSAGE = 2 * 1024 * 1024;
const MAX_QUEUED = 16 * 1024 * 1024;

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || process.argv.length !== 3) {
	console.error('usage: node uws-server.js <port>');
	process.exit(2);
}

let drops = 0;
let echoDrops = 0;

const common = {
	compression: uWS.DISABLED,
	maxPayloadLength: MAX_MESSAGE,
	idleTimeout: 0,
	sendPingsAutomatically: false,
	maxBackpressure: MAX_QUEUED,
	closeOnBackpressureLimit: false,
};

const app = uWS.App();

app.ws('/sub', {
	...common,
	open: (ws) => {
		ws.subscribe('b');
	},
	message: () => {},
	dropped: () => {
		drops++;
	},
});

app.ws('/pub', {
	...common,
	message: (ws, message, isBinary) => {
		app.publish('b', message, isBinary);
	},
});

app.ws('/*', {
	...common,
	// An echo client that does not read would make uWS drop replies past
	// maxBackpressure; allow more than a subscriber and count any drop.
	maxBackpressure: 4 * MAX_QUEUED,
	message: (ws, message, isBinary) => {
		if (ws.send(message, isBinary) === 2) {
			echoDrops++;
		}
	},
});

app.any('/*', (res) => {
	res.writeStatus('426 Upgrade Required').end('WebSocket only\n');
});

app.listen('127.0.0.1', port, (token) => {
	if (!token) {
		console.error(`uws: cannot listen on 127.0.0.1:${port}`);
		process.exit(1);
	}
});

const stop = () => {
	console.error(`uws: dropped broadcast deliveries: ${drops}, dropped echo replies: ${echoDrops}`);
	process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
