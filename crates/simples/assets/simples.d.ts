/*
 * TypeScript declarations of simples.js, the browser client of simples
 * WebSocket hosts (served beside it by `serve_client`: /simples.js and
 * /simples.d.ts). The behaviour is documented in simples.js's header and in
 * DEVELOPERS.md ("The browser client: simples.js"); object mode's wire
 * format in PROTOCOL.md.
 *
 * simples.js is a plain script that sets the global `simples` and, where
 * `module` exists, `module.exports`; so these declarations are a UMD module:
 *
 *   - as a global, in a script (a file without import/export) that sees this
 *     file (`/// <reference path="simples.d.ts" />` or tsconfig's "files"):
 *     `simples.connect('/chat')`; also `window.simples` from anywhere;
 *   - as a module: `import simples = require('./simples')`, or
 *     `import simples from './simples'` with esModuleInterop.
 *
 * The socket's type follows the `mode` option: ObjectSocket (the default),
 * TextSocket or BinarySocket; AnySocket when the mode is only known at run
 * time (narrow it on `socket.mode`). The server's events can be typed with a
 * map from event name to data: `simples.connect<{said: Said}>('/chat')`.
 */

export = simples;
export as namespace simples;

/** The simples.js module: `simples.connect(url, options)`. */
declare const simples: simples.Simples;

declare global {
  interface Window {
    /** simples.js, set when the script is loaded. */
    simples: simples.Simples;
  }
}

declare namespace simples {
  /** What simples.js exports. */
  interface Simples {
    /**
     * Opens a socket to `url`: an absolute `ws://` or `wss://` URL, or a path
     * such as `'/chat'` resolved against the page's location (`http:` becomes
     * `ws:`, `https:` becomes `wss:`). It connects at once and reconnects by
     * itself (see {@link Options}). Throws a `TypeError` on a bad URL, an
     * unknown option or a bad option value.
     *
     * Object mode (the default): `E`, an interface or object type, maps the
     * server's event names to the type of their data, for the handlers given
     * to `on` (default: any name, data `any`).
     */
    connect<E extends object = AnyEvents>(url: string, options?: Options & { mode?: 'object' }): ObjectSocket<E>;
    /** Opens a socket in text mode: strings both ways. */
    connect(url: string, options: Options & { mode: 'text' }): TextSocket;
    /** Opens a socket in binary mode (`binaryType = 'arraybuffer'`). */
    connect(url: string, options: Options & { mode: 'binary' }): BinarySocket;
    /** Opens a socket whose mode is only known at run time. */
    connect(url: string, options?: Options): AnySocket;
    /**
     * The sockets' constructor, for `instanceof`:
     * `new simples.Socket(url, options)` is `simples.connect(url, options)`.
     */
    readonly Socket: SocketConstructor;
  }

  /** The constructor of every socket (prefer `connect`, which types the mode). */
  interface SocketConstructor {
    /** As `simples.connect(url, options)`. */
    new (url: string, options?: Options): AnySocket;
    /** The sockets' prototype. */
    readonly prototype: AnySocket;
  }

  /** The socket's kind of messages. */
  type Mode = 'object' | 'text' | 'binary';

  /**
   * The options of `connect`, all optional. An unknown name or a bad value
   * throws a `TypeError`; `undefined` means the default (also with
   * exactOptionalPropertyTypes).
   */
  interface Options {
    /**
     * `'object'`: JSON events with acknowledgements (PROTOCOL.md);
     * `'text'`: strings; `'binary'`: `ArrayBuffer`s
     * (`binaryType = 'arraybuffer'`).
     * @default 'object'
     */
    mode?: Mode | undefined;
    /**
     * Subprotocols passed to `WebSocket` (an array, not a single string).
     * @default []
     */
    protocols?: readonly string[] | undefined;
    /**
     * Reconnect after every close not asked by `close()`; with `false` the
     * first close is for good, as `close()`.
     * @default true
     */
    reconnect?: boolean | undefined;
    /**
     * Milliseconds before the first reconnection attempt (finite, >= 0).
     * @default 500
     */
    minDelay?: number | undefined;
    /**
     * Milliseconds, the longest wait between attempts (finite, >= 0).
     * @default 10000
     */
    maxDelay?: number | undefined;
    /**
     * Growth of the delay: `min(maxDelay, minDelay * factor^(attempt-1))`
     * (finite, >= 0).
     * @default 2
     */
    factor?: number | undefined;
    /**
     * The delay is multiplied by `1 - jitter * Math.random()` (0 to 1).
     * @default 0.5
     */
    jitter?: number | undefined;
    /**
     * Milliseconds, the default timeout of `request()` (finite, >= 0).
     * @default 10000
     */
    ackTimeout?: number | undefined;
    /**
     * Messages kept while disconnected; past it the oldest is dropped and
     * counted in `socket.dropped` (a dropped request rejects with
     * `Error('dropped')`) (finite, >= 0).
     * @default 1000
     */
    queueLimit?: number | undefined;
  }

  /** The default event map: any event name, data of any type. */
  type AnyEvents = { [event: string]: any };

  /** The argument of `'close'`, after every closed connection or failed attempt. */
  interface CloseInfo {
    /** The close code (1000 after `close()` without a code, 1006 when the connection was lost). */
    code: number;
    /** The close reason, `''` when none. */
    reason: string;
    /** Whether the closing handshake completed. */
    wasClean: boolean;
  }

  /** The argument of `'reconnecting'`, before each wait for a new attempt. */
  interface ReconnectingInfo {
    /** The attempt, counted from 1 and restarted after a successful open. */
    attempt: number;
    /** Milliseconds until the attempt. */
    delay: number;
  }

  /** The codes of `'error'`; a server may send others in its `error` events. */
  type ErrorCode =
    | 'invalid_json' // the server could not parse a message, or the client a server's
    | 'too_deep' // the server: JSON nested deeper than its max_json_depth
    | 'not_an_object' // the server: a JSON message that is not an object
    | 'binary' // a binary message in object mode (either side)
    | 'invalid_message' // a server message with neither ack nor event, or a bad id
    | 'transport' // the WebSocket failed, or could not be created
    | 'handler' // a handler threw (the exception is in `error`)
    | (string & {});

  /** The argument of `'error'`. Nothing thrown ever escapes the socket's callbacks. */
  interface ErrorInfo {
    /** What failed. */
    code: ErrorCode;
    /** A human-readable explanation. */
    message: string;
    /** With code `'handler'`: what the handler threw. */
    error?: unknown;
  }

  /** The lifecycle events of every mode, with their handlers' arguments. */
  interface LifecycleEvents {
    /** Connected (again); the queued messages are already sent. */
    open: [];
    /** After every closed connection or failed attempt. */
    close: [info: CloseInfo];
    /** A reconnection attempt is scheduled. */
    reconnecting: [info: ReconnectingInfo];
    /** An error: the server's, a malformed message, the transport's or a handler's. */
    error: [info: ErrorInfo];
  }

  /** A channel's position: its history's epoch and the message's offset in it. */
  interface Position {
    /** Changes whenever the channel's history is lost. */
    epoch: string;
    /** 1 for the epoch's first message, then +1 per message. */
    offset: number;
  }

  /** The options of `join`. */
  interface JoinOptions {
    /** How many of the channel's latest messages to receive first (at most what its history holds); default 0. */
    recent?: number | undefined;
  }

  /** The answer to `join`, and the `'recovered'` event's argument. */
  interface JoinResult {
    /** The channel. */
    channel: string;
    /**
     * Whether every message after the position given was replayed (always
     * true on a first join); false: messages were missed for good (too old,
     * or the history was lost), reload the state.
     */
    recovered: boolean;
    /** The channel's epoch; null when it keeps no history. */
    epoch: string | null;
    /** The offset of the last message sent before live ones; null without history. */
    offset: number | null;
  }

  /** Object mode's events: the lifecycle and every server event as `'message'`. */
  interface ObjectEvents extends LifecycleEvents {
    /** A joined channel was joined again after a reconnection (`recovered` says whether nothing was lost). */
    recovered: [info: JoinResult];
    /** Every server event, reserved names included, before its handlers run. */
    message: [event: string, data: any];
  }

  /** Text mode's events. A binary message arrives as a `Blob` (the WebSocket's default). */
  interface TextEvents extends LifecycleEvents {
    /** A message from the server. */
    message: [data: string | Blob];
  }

  /** Binary mode's events. A text message still arrives as a string. */
  interface BinaryEvents extends LifecycleEvents {
    /** A message from the server. */
    message: [data: ArrayBuffer | string];
  }

  /** A handler of a lifecycle or `'message'` event; `this` is the socket. */
  type Handler<S, Args extends unknown[]> = (this: S, ...args: Args) => void;

  /**
   * Object mode: a handler of a server event. When the event carries an id,
   * the first handler's return value (or what its Promise resolves to) is
   * the acknowledgement's data, and a throw or rejection an error
   * acknowledgement with its message.
   */
  type ServerEventHandler<D, S, K extends string = string> = (
    this: S,
    data: D,
    ctx: EventContext<S, K>,
  ) => unknown | Promise<unknown>;

  /** The second argument of a server event's handler. */
  interface EventContext<S, K extends string = string> {
    /** The event's name. */
    event: K;
    /** The event's id when the server waits for an acknowledgement, else null. */
    id: number | null;
    /** The socket that received it. */
    socket: S;
    /** A channel message (history on): its channel, else null. */
    channel: string | null;
    /** A channel message: its epoch, else null. */
    epoch: string | null;
    /** A channel message: its offset, else null. */
    offset: number | null;
  }

  /** The options of `request`. */
  interface RequestOptions {
    /** Milliseconds before the request rejects with `Error('timeout')`; default: the socket's `ackTimeout`. */
    timeout?: number | undefined;
  }

  /** What every socket has, whatever its mode. */
  interface SocketBase<M extends Mode> {
    /** Whether it is connected now. */
    readonly connected: boolean;
    /** How many messages were dropped from the queue while disconnected (`queueLimit`). */
    readonly dropped: number;
    /** The resolved URL (`ws:` or `wss:`). */
    readonly url: string;
    /** The mode it was opened with. */
    readonly mode: M;
    /** Removes `handler` from `event`, or all the event's handlers without one. */
    off(event: string, handler?: (...args: never[]) => unknown): this;
    /**
     * Closes for good: no reconnection; queued messages are dropped and
     * pending requests reject with `Error('closed')`. The code must be 1000
     * or 3000-4999 (else a `RangeError`). A second call does nothing.
     */
    close(code?: number, reason?: string): void;
  }

  /** A socket in object mode: JSON events with acknowledgements both ways. */
  interface ObjectSocket<E extends object = AnyEvents> extends SocketBase<'object'> {
    /**
     * Adds a handler: for a lifecycle event, `'message'` (`(event, data)`
     * for every server event), or a server event (`(data, ctx)`). The names
     * `open`, `close`, `reconnecting` and `message` are reserved: a server
     * event with one of them reaches only the `'message'` handlers; the
     * server's `error` events reach the `'error'` handlers.
     */
    on<K extends keyof ObjectEvents | (keyof E & string)>(
      event: K,
      handler: K extends keyof ObjectEvents ? Handler<this, ObjectEvents[K]> : ServerEventHandler<E[K & keyof E], this, K>,
    ): this;
    /**
     * Sends an event (its data `null` when undefined, JSON-encoded). While
     * disconnected it is queued and sent in order on (re)connection. Throws
     * `Error('closed')` after `close()`, a `TypeError` for the reserved name
     * `'error'` or data that JSON cannot encode.
     */
    send(event: string, data?: unknown): void;
    /**
     * Sends an event with an id and resolves with the acknowledgement's data
     * (`T` is not checked: it is what the caller expects). Rejects with
     * `Error('timeout')` after the timeout (counted from the call, also while
     * queued), `Error(message)` on an error acknowledgement, `Error('closed')`
     * once `close()` was called, `Error('disconnected')` when the connection
     * that carried it is lost before the acknowledgement, `Error('dropped')`
     * when the queue overflowed.
     */
    request<T = unknown>(event: string, data?: unknown, options?: RequestOptions): Promise<T>;
    /**
     * Joins a channel (the `@join` request; the host allows it with
     * `on_join`). From then on the socket remembers the position of the last
     * message seen on it and, after each reconnection, joins again from it:
     * the server replays what was missed, then `'recovered'` fires. Rejects
     * as `request` does (e.g. with the reason the host refused).
     */
    join(channel: string, options?: JoinOptions): Promise<JoinResult>;
    /** Leaves a channel (the `@leave` request) and forgets its position. */
    leave(channel: string): Promise<{ channel: string; left: boolean }>;
    /** The position of the last message seen on a joined channel (or its join's); null otherwise. */
    position(channel: string): Position | null;
  }

  /** A socket in text mode. */
  interface TextSocket extends SocketBase<'text'> {
    /** Adds a handler of a lifecycle event or of `'message'`. */
    on<K extends keyof TextEvents>(event: K, handler: Handler<this, TextEvents[K]>): this;
    /** Sends a string, queued while disconnected. Throws `Error('closed')` after `close()`. */
    send(payload: string): void;
  }

  /** A socket in binary mode. */
  interface BinarySocket extends SocketBase<'binary'> {
    /** Adds a handler of a lifecycle event or of `'message'`. */
    on<K extends keyof BinaryEvents>(event: K, handler: Handler<this, BinaryEvents[K]>): this;
    /**
     * Sends bytes (copied at once, so the buffer may be reused), queued while
     * disconnected. Throws `Error('closed')` after `close()`.
     */
    send(payload: ArrayBuffer | ArrayBufferView | Blob): void;
  }

  /** A socket of any mode: narrow it on `socket.mode`. */
  type AnySocket = ObjectSocket | TextSocket | BinarySocket;
}
