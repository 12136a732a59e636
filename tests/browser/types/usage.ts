// Type check of simples.d.ts (scripts/typecheck: tsc -p tests/browser/types,
// strict). Never run: it only has to compile, and every `@ts-expect-error`
// line has to be an error. A script (no import or export): it uses the global
// `simples`, as a page that loads /simples.js does; module.ts imports it.

/**
 * Compiles only when A and B are the same type (not merely assignable);
 * else tsc says "Expected 1 arguments, but got 0" at the call.
 */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
declare function same<A, B>(...exact: Same<A, B> extends true ? [] : [never]): void;

// ---- connect and its options ----------------------------------------------

const all: simples.Options = {
  mode: 'object',
  protocols: ['chat.v1'],
  reconnect: true,
  minDelay: 500,
  maxDelay: 10000,
  factor: 2,
  jitter: 0.5,
  ackTimeout: 10000,
  queueLimit: 1000,
};
const socket = simples.connect('/chat');
same<typeof socket, simples.ObjectSocket>();
same<typeof socket.mode, 'object'>();
const objectToo = simples.connect('wss://example.test/chat', { mode: 'object', reconnect: false, minDelay: undefined });
same<typeof objectToo, simples.ObjectSocket>();
const text = simples.connect('/echo', { mode: 'text', queueLimit: 10 });
same<typeof text, simples.TextSocket>();
const binary = simples.connect('/bytes', { mode: 'binary', protocols: [] });
same<typeof binary, simples.BinarySocket>();
declare const someMode: simples.Mode;
const dynamic = simples.connect('/any', { ...all, mode: someMode });
same<typeof dynamic, simples.AnySocket>();
simples.connect('/chat', {});

// @ts-expect-error: an unknown option (simples.js throws a TypeError)
simples.connect('/chat', { reconect: true });
// @ts-expect-error: no such mode
simples.connect('/chat', { mode: 'json' });
// @ts-expect-error: protocols is an array, not a string
simples.connect('/chat', { protocols: 'chat.v1' });
// @ts-expect-error: delays are numbers
simples.connect('/chat', { minDelay: '500' });
// @ts-expect-error: the URL is required
simples.connect();

// ---- properties -------------------------------------------------------------

same<typeof socket.connected, boolean>();
same<typeof socket.dropped, number>();
same<typeof socket.url, string>();
same<typeof text.mode, 'text'>();
same<typeof binary.mode, 'binary'>();
// @ts-expect-error: read-only
socket.connected = true;
// @ts-expect-error: read-only
socket.dropped = 0;

// ---- lifecycle events (every mode) ------------------------------------------

socket
  .on('open', function () {
    const self: simples.ObjectSocket = this; // `this` untyped would not compile (noImplicitThis)
    self.send('hello');
  })
  .on('close', (info) => {
    same<typeof info, simples.CloseInfo>();
    same<typeof info.code, number>();
    same<typeof info.reason, string>();
    same<typeof info.wasClean, boolean>();
  })
  .on('reconnecting', ({ attempt, delay }) => {
    same<typeof attempt, number>();
    same<typeof delay, number>();
  })
  .on('error', (err) => {
    same<typeof err.message, string>();
    same<typeof err.error, unknown>();
    const code: string = err.code;
    if (err.code === 'handler') console.error(code, err.error);
  });
text.on('open', () => {}).on('close', (info) => info.wasClean);
binary.on('reconnecting', (info) => info.attempt).on('error', (info) => info.code);

// @ts-expect-error: 'open' has no argument
socket.on('open', (data: unknown) => data);
// @ts-expect-error: 'close' gives a CloseInfo
socket.on('close', (info: string) => info);
// @ts-expect-error: the handler must be a function
socket.on('open', 'handler');

// ---- 'message', per mode ------------------------------------------------------

socket.on('message', (event, data) => {
  same<typeof event, string>();
  same<typeof data, any>();
});
text.on('message', (data) => {
  same<typeof data, string | Blob>();
  if (typeof data === 'string') text.send(data.toUpperCase());
});
binary.on('message', function (data) {
  const self: simples.BinarySocket = this;
  same<typeof data, ArrayBuffer | string>();
  if (data instanceof ArrayBuffer) self.send(new Uint8Array(data));
});
// @ts-expect-error: in text mode 'message' has one argument
text.on('message', (event: string, data: string) => event + data);

// ---- server events (object mode) --------------------------------------------

socket.on('said', (data, ctx) => {
  same<typeof data, any>();
  same<typeof ctx, simples.EventContext<simples.ObjectSocket, 'said'>>();
  same<typeof ctx.id, number | null>();
  same<typeof ctx.event, 'said'>();
  ctx.socket.send('seen', { id: ctx.id });
});
socket.on('sum', (data: { a: number; b: number }) => data.a + data.b); // the ack's data
socket.on('slow', async () => {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return { ok: true };
});
// @ts-expect-error: server events exist only in object mode
text.on('said', () => {});
// @ts-expect-error: nor in binary mode
binary.on('said', () => {});

interface ChatEvents {
  said: { from: string; text: string };
  online: number;
}
const chat = simples.connect<ChatEvents>('/chat', { ackTimeout: 2000 });
same<typeof chat, simples.ObjectSocket<ChatEvents>>();
chat.on('said', (data, ctx) => {
  same<typeof data, { from: string; text: string }>();
  same<typeof ctx.socket, simples.ObjectSocket<ChatEvents>>();
});
chat.on('online', (count) => count.toFixed());
chat.on('open', () => chat.send('join', 'lobby'));
// @ts-expect-error: not an event of ChatEvents
chat.on('typing', () => {});
// @ts-expect-error: said's data has no `nick`
chat.on('said', (data) => data.nick);

// ---- off ----------------------------------------------------------------------

const onSaid = (data: unknown) => console.log(data);
socket.on('said', onSaid).off('said', onSaid).off('said');
text.off('message');
same<ReturnType<typeof binary.off>, simples.BinarySocket>();

// ---- send, per mode -------------------------------------------------------------

// Exact parameters: a loosened declaration fails here too.
same<Parameters<typeof socket.send>, [event: string, data?: unknown]>();
same<Parameters<typeof text.send>, [payload: string]>();
same<Parameters<typeof binary.send>, [payload: ArrayBuffer | ArrayBufferView | Blob]>();
socket.send('say', { text: 'hello' });
socket.send('ping'); // data null
same<ReturnType<typeof socket.send>, void>();
text.send('hello');
binary.send(new ArrayBuffer(8));
binary.send(new Uint8Array([1, 2, 3]));
binary.send(new DataView(new ArrayBuffer(2)));
binary.send(new Blob(['bytes']));

// @ts-expect-error: object mode sends a named event
socket.send(new ArrayBuffer(8));
// @ts-expect-error: the event name is a string
socket.send(42, 'data');
// @ts-expect-error: text mode sends strings
text.send(new Uint8Array(2));
// @ts-expect-error: binary mode sends bytes
binary.send('hello');
// @ts-expect-error: only one payload outside object mode
text.send('say', 'hello');

// ---- request (object mode) ----------------------------------------------------

same<Parameters<typeof socket.request>, [event: string, data?: unknown, options?: simples.RequestOptions | undefined]>();
async function requests(): Promise<void> {
  const members = await socket.request<string[]>('join', { room: 'rust' });
  same<typeof members, string[]>();
  const ack = await socket.request('ping');
  same<typeof ack, unknown>();
  await socket.request('save', { id: 1 }, { timeout: 300 });
  await socket.request('save', undefined, {});
  await socket.request('save', null, { timeout: undefined }); // the default, as in simples.js
  // @ts-expect-error: the timeout is a number of milliseconds
  await socket.request('save', null, { timeout: '300' });
  // @ts-expect-error: an unknown request option
  await socket.request('save', null, { retries: 3 });
  // @ts-expect-error: text mode has no request()
  await text.request('join');
  // @ts-expect-error: nor binary mode
  await binary.request('join');
}
requests().catch((err: Error) => console.error(err.message));

// ---- close ----------------------------------------------------------------------

same<Parameters<typeof socket.close>, [code?: number | undefined, reason?: string | undefined]>();
socket.close();
text.close(1000);
binary.close(4001, 'bye');
same<ReturnType<typeof socket.close>, void>();
// @ts-expect-error: the code is a number
socket.close('1000');
// @ts-expect-error: the reason is a string
socket.close(1000, 42);

// ---- a mode known at run time -----------------------------------------------

dynamic.close(1000);
dynamic.off('open');
same<typeof dynamic.mode, simples.Mode>();
if (dynamic.mode === 'object') dynamic.request('join');
else if (dynamic.mode === 'text') dynamic.send('hello');
else dynamic.send(new ArrayBuffer(1));
// @ts-expect-error: send depends on the mode: narrow first
dynamic.send('hello');

// ---- the constructor and window.simples ------------------------------------------

const constructed = new simples.Socket('/chat', { mode: 'text' });
same<typeof constructed, simples.AnySocket>();
declare const something: unknown;
if (something instanceof simples.Socket) same<typeof something, simples.AnySocket>();
same<typeof window.simples, simples.Simples>();
same<typeof simples, simples.Simples>();

// ---- channels: join, positions, recovery (object mode) -----------------------

socket.join('lobby').then((r) => {
  same<typeof r, simples.JoinResult>();
  same<typeof r.recovered, boolean>();
  same<typeof r.epoch, string | null>();
  same<typeof r.offset, number | null>();
});
socket.join('lobby', { recent: 20 }).then((r) => r.channel);
// @ts-expect-error: recent is a number
socket.join('lobby', { recent: '20' });
socket.leave('lobby').then((r) => same<typeof r.left, boolean>());
const at = socket.position('lobby');
same<typeof at, simples.Position | null>();
if (at) same<typeof at.offset, number>();
socket.on('recovered', (info) => {
  same<typeof info, simples.JoinResult>();
  if (!info.recovered) console.log('reload', info.channel);
});
socket.on('said', (_data, ctx) => {
  same<typeof ctx.channel, string | null>();
  same<typeof ctx.offset, number | null>();
});
// @ts-expect-error: a channel name is a string
socket.join(42);
// @ts-expect-error: text sockets have no channels
text.join('lobby');
