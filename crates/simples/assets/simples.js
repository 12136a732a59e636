/*
 * simples.js: the browser client of simples WebSocket hosts.
 * Plain script, no build step. It sets `window.simples` (and `module.exports`
 * where `module` exists). Object mode's wire format: assets/PROTOCOL.md.
 * TypeScript declarations: assets/simples.d.ts (keep them in step).
 *
 *   const socket = simples.connect(url, options)
 *
 * url: an absolute ws:// or wss:// URL, or a path such as '/chat' resolved
 * against the page's location (http: becomes ws:, https: becomes wss:).
 *
 * options (all optional; unknown names throw a TypeError):
 *   mode: 'object'       'object' (JSON events, acks), 'text' or 'binary'
 *   protocols: []        subprotocols passed to WebSocket
 *   reconnect: true      reconnect after every close not asked by close();
 *                        false: the first close is for good, as close()
 *   minDelay: 500        ms before the first reconnection attempt
 *   maxDelay: 10000      ms, the longest wait between attempts
 *   factor: 2            delay = min(maxDelay, minDelay * factor^(attempt-1))
 *   jitter: 0.5              * (1 - jitter * Math.random())
 *   ackTimeout: 10000    ms, default timeout of request()
 *   queueLimit: 1000     messages kept while disconnected; beyond it the
 *                        oldest is dropped and counted in socket.dropped
 *                        (a dropped request rejects with Error('dropped'))
 *
 * socket.on(event, handler) / socket.off(event, handler?)  (off without a
 * handler removes all of the event's handlers); both return the socket.
 *   Object mode: handler(data, ctx) for the server's events, where ctx is
 *   {event, id, socket}. If the event has an id, the first handler's return
 *   value (or the value its Promise resolves to) is sent back as
 *   {ack: id, data}; a throw or rejection as {ack: id, error: message}; no
 *   handler at all as an error ack, as the server does.
 *   Lifecycle events, in every mode:
 *     'open'          ()                        connected (again)
 *     'close'         ({code, reason, wasClean}) after every closed connection
 *                                               or failed attempt
 *     'reconnecting'  ({attempt, delay})        attempt counts from 1; reset
 *                                               by a successful open
 *     'error'         ({code, message})         the server's error events
 *                     (object mode: invalid_json, too_deep, not_an_object,
 *                     binary), malformed server messages ('invalid_message',
 *                     'binary', 'invalid_json'), 'transport' errors and
 *                     exceptions thrown by handlers ('handler', with .error)
 *     'recovered'     ({channel, recovered, epoch, offset})  object mode:
 *                                               a joined channel was joined
 *                                               again after a reconnection;
 *                                               recovered false: messages
 *                                               were missed for good (reload
 *                                               the state)
 *     'message'       text/binary modes: (data), the raw message (a string;
 *                     binary: an ArrayBuffer in binary mode, a Blob in text
 *                     mode); object mode: (event, data) for every event
 *   In object mode these names are reserved: a server event called 'open',
 *   'close', 'reconnecting', 'recovered' or 'message' reaches only the
 *   'message' handlers (an id on it gets an error ack).
 *   A channel message (history on, see PROTOCOL.md) also has ctx.channel,
 *   ctx.epoch and ctx.offset (null on other events).
 *
 * socket.send(event, data)   object mode; send(payload) in text mode (a
 *   string) and binary mode (ArrayBuffer, typed array, DataView or Blob).
 *   While disconnected, messages are queued and flushed in order on
 *   (re)connect, before 'open' fires. Throws Error('closed') after close().
 * socket.request(event, data, {timeout})  object mode: a Promise of the ack's
 *   data. Rejects with Error('timeout') after the timeout (counted from the
 *   call, also when queued), Error(message) on an error ack, Error('closed')
 *   once close() was called, Error('disconnected') if the connection it was
 *   sent on is lost before the ack (the reply can never arrive).
 * socket.join(channel, {recent: 0})  object mode: a Promise of {channel,
 *   recovered, epoch, offset} (the `@join` request; the host must allow it
 *   with on_join); recent: the latest messages to receive first. The
 *   socket then remembers the position of the last message seen on the
 *   channel, and after every reconnection joins again from it: the server
 *   replays what was missed (each message once, in order) and 'recovered'
 *   fires. socket.leave(channel): a Promise of {channel, left}; forgotten.
 *   socket.position(channel): {epoch, offset} of the last message seen (or
 *   the join's), null for a channel not joined.
 * socket.close(code = 1000, reason = '')  closes for good: no reconnection.
 * socket.connected (bool), socket.dropped (count), socket.url (resolved),
 * socket.mode: read-only.
 */
(function (root) {
  'use strict';

  var DEFAULTS = {
    mode: 'object', protocols: [], reconnect: true, minDelay: 500, maxDelay: 10000,
    factor: 2, jitter: 0.5, ackTimeout: 10000, queueLimit: 1000,
  };
  var RESERVED = { open: 1, close: 1, reconnecting: 1, recovered: 1, message: 1 };
  var MAX_ID = Math.pow(2, 53) - 1;

  function resolveUrl(url) {
    if (typeof url !== 'string' || url === '') throw new TypeError('simples.connect: url must be a non-empty string');
    if (/^wss?:\/\//i.test(url)) return new URL(url).href;
    if (typeof location === 'undefined') throw new TypeError('simples.connect: relative url "' + url + '" needs a page location');
    var u = new URL(url, location.href);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TypeError('simples.connect: unsupported scheme in "' + u.href + '"');
    u.hash = '';
    return u.href;
  }

  function checkOptions(options) {
    var o = {};
    if (options !== undefined && (options === null || typeof options !== 'object')) throw new TypeError('simples.connect: options must be an object');
    Object.keys(DEFAULTS).forEach(function (k) { o[k] = DEFAULTS[k]; });
    Object.keys(options || {}).forEach(function (k) {
      if (!Object.prototype.hasOwnProperty.call(DEFAULTS, k)) throw new TypeError('simples.connect: unknown option "' + k + '"');
      if (options[k] !== undefined) o[k] = options[k];
    });
    if (['object', 'text', 'binary'].indexOf(o.mode) < 0) throw new TypeError('simples.connect: mode must be "object", "text" or "binary"');
    ['minDelay', 'maxDelay', 'factor', 'ackTimeout', 'queueLimit'].forEach(function (k) {
      if (typeof o[k] !== 'number' || !(o[k] >= 0) || o[k] === Infinity) throw new TypeError('simples.connect: ' + k + ' must be a finite number >= 0');
    });
    if (typeof o.jitter !== 'number' || !(o.jitter >= 0 && o.jitter <= 1)) throw new TypeError('simples.connect: jitter must be between 0 and 1');
    if (!Array.isArray(o.protocols)) throw new TypeError('simples.connect: protocols must be an array');
    return o;
  }

  function errorMessage(err) {
    return String(err && err.message !== undefined ? err.message : err);
  }

  function Socket(url, options) {
    this._opts = checkOptions(options);
    this._url = resolveUrl(url);
    this._handlers = Object.create(null); // event -> [handler]
    this._queue = [];                     // [{payload, id}] waiting for a connection
    this._pending = new Map();            // id -> {resolve, reject, timer, ws}
    this._nextId = 1;
    this._ws = null;
    this._connected = false;
    this._closed = false;                 // close() was called
    this._attempt = 0;
    this._timer = null;
    this._dropped = 0;
    this._joined = new Map();             // channel -> {epoch, offset} (null: no history)
    this._open();
  }

  Object.defineProperties(Socket.prototype, {
    connected: { get: function () { return this._connected; } },
    dropped: { get: function () { return this._dropped; } },
    url: { get: function () { return this._url; } },
    mode: { get: function () { return this._opts.mode; } },
  });

  Socket.prototype.on = function (event, handler) {
    if (typeof event !== 'string' || event === '') throw new TypeError('on: event must be a non-empty string');
    if (typeof handler !== 'function') throw new TypeError('on: handler must be a function');
    (this._handlers[event] || (this._handlers[event] = [])).push(handler);
    return this;
  };

  Socket.prototype.off = function (event, handler) {
    var list = this._handlers[event];
    if (!list) return this;
    if (handler === undefined) delete this._handlers[event];
    else {
      var i = list.indexOf(handler);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) delete this._handlers[event];
    }
    return this;
  };

  // Calls every handler of `event`; a throw is reported, never propagated.
  Socket.prototype._emit = function (event) {
    var args = Array.prototype.slice.call(arguments, 1);
    var list = (this._handlers[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i].apply(this, args); } catch (err) { this._handlerError(event, err); }
    }
  };

  Socket.prototype._handlerError = function (event, err) {
    if (event !== 'error' && this._handlers.error) {
      this._emit('error', { code: 'handler', message: 'handler of "' + event + '" threw: ' + errorMessage(err), error: err });
    } else if (typeof console !== 'undefined') {
      console.error('simples: handler of "' + event + '" threw', err);
    }
  };

  Socket.prototype._open = function () {
    var self = this, ws;
    this._timer = null;
    try {
      ws = new WebSocket(this._url, this._opts.protocols);
    } catch (err) {
      this._emit('error', { code: 'transport', message: 'cannot open ' + this._url + ': ' + errorMessage(err) });
      this._scheduleReconnect();
      return;
    }
    if (this._opts.mode === 'binary') ws.binaryType = 'arraybuffer';
    this._ws = ws;
    ws.onopen = function () {
      self._connected = true;
      self._attempt = 0;
      self._rejoin();
      var queue = self._queue;
      self._queue = [];
      for (var i = 0; i < queue.length; i++) self._transmit(queue[i]);
      self._emit('open');
    };
    ws.onmessage = function (ev) {
      if (self._opts.mode !== 'object') self._emit('message', ev.data);
      else self._receive(ev.data, ws);
    };
    ws.onerror = function () {
      self._emit('error', { code: 'transport', message: 'WebSocket error on ' + self._url });
    };
    ws.onclose = function (ev) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (self._ws === ws) self._ws = null;
      self._connected = false;
      self._pending.forEach(function (p, id) {
        if (p.ws === ws) self._settle(id, new Error('disconnected'));
      });
      if (!self._opts.reconnect) self._shutdown();
      self._emit('close', { code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
      if (!self._closed) self._scheduleReconnect();
    };
  };

  Socket.prototype._scheduleReconnect = function () {
    if (this._closed || !this._opts.reconnect) return;
    var o = this._opts;
    this._attempt += 1;
    var base = Math.min(o.maxDelay, o.minDelay * Math.pow(o.factor, this._attempt - 1));
    var delay = Math.round(base * (1 - o.jitter * Math.random()));
    this._emit('reconnecting', { attempt: this._attempt, delay: delay });
    if (this._closed) return; // a handler may have called close()
    this._timer = setTimeout(this._open.bind(this), delay);
  };

  // Sends now if connected, else queues (dropping the oldest past the limit).
  Socket.prototype._enqueue = function (payload, id) {
    if (this._closed) throw new Error('closed');
    var entry = { payload: payload, id: id };
    if (this._connected) return this._transmit(entry);
    this._queue.push(entry);
    while (this._queue.length > this._opts.queueLimit) {
      var old = this._queue.shift();
      this._dropped += 1;
      if (old.id !== undefined) this._settle(old.id, new Error('dropped'));
    }
  };

  Socket.prototype._transmit = function (entry) {
    if (entry.id !== undefined) {
      var p = this._pending.get(entry.id);
      if (!p) return; // timed out while queued
      p.ws = this._ws;
    }
    this._ws.send(entry.payload);
  };

  Socket.prototype.send = function (event, data) {
    if (this._opts.mode === 'object') return this._enqueue(this._encodeEvent(event, data));
    var payload = event;
    if (this._opts.mode === 'text') {
      if (typeof payload !== 'string') throw new TypeError('send: text mode sends strings');
    } else if (payload instanceof ArrayBuffer) {
      payload = payload.slice(0); // the caller may reuse its buffer while queued
    } else if (ArrayBuffer.isView(payload)) {
      payload = new Uint8Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength));
    } else if (!(typeof Blob !== 'undefined' && payload instanceof Blob)) {
      throw new TypeError('send: binary mode sends an ArrayBuffer, a typed array, a DataView or a Blob');
    }
    this._enqueue(payload);
  };

  Socket.prototype._encodeEvent = function (event, data, id) {
    if (typeof event !== 'string' || event === '') throw new TypeError('event name must be a non-empty string');
    if (event === 'error') throw new TypeError('event name "error" is reserved');
    var msg = { event: event, data: data === undefined ? null : data };
    if (id !== undefined) msg.id = id;
    return JSON.stringify(msg);
  };

  Socket.prototype.request = function (event, data, options) {
    var self = this;
    return new Promise(function (resolve, reject) {
      if (self._opts.mode !== 'object') throw new Error('request() needs object mode');
      if (self._closed) throw new Error('closed');
      var timeout = options && options.timeout !== undefined ? options.timeout : self._opts.ackTimeout;
      if (typeof timeout !== 'number' || !(timeout >= 0)) throw new TypeError('request: timeout must be a number >= 0');
      var id = self._nextId;
      self._nextId = id >= MAX_ID ? 1 : id + 1;
      var payload = self._encodeEvent(event, data, id);
      var timer = setTimeout(function () { self._settle(id, new Error('timeout')); }, timeout);
      self._pending.set(id, { resolve: resolve, reject: reject, timer: timer, ws: null });
      self._enqueue(payload, id);
    });
  };

  // Resolves (error undefined) or rejects a pending request, exactly once.
  Socket.prototype._settle = function (id, error, data) {
    var p = this._pending.get(id);
    if (!p) return;
    this._pending.delete(id);
    clearTimeout(p.timer);
    if (p.ws === null) this._queue = this._queue.filter(function (e) { return e.id !== id; });
    if (error) p.reject(error); else p.resolve(data);
  };

  Socket.prototype._receive = function (raw, ws) {
    if (typeof raw !== 'string') return this._emit('error', { code: 'binary', message: 'binary message in object mode' });
    var msg;
    try { msg = JSON.parse(raw); } catch (err) {
      return this._emit('error', { code: 'invalid_json', message: 'invalid JSON from the server: ' + errorMessage(err) });
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      return this._emit('error', { code: 'invalid_message', message: 'server message is not a JSON object' });
    }
    if (msg.ack !== undefined && msg.ack !== null) {
      if (msg.error !== undefined && msg.error !== null) this._settle(msg.ack, new Error(String(msg.error)));
      else this._settle(msg.ack, undefined, msg.data === undefined ? null : msg.data);
      return; // unknown ids (e.g. after a timeout) are ignored
    }
    var event = msg.event, id = msg.id, data = msg.data === undefined ? null : msg.data;
    if (typeof event !== 'string' || event === '') {
      return this._emit('error', { code: 'invalid_message', message: 'server message has neither "ack" nor a non-empty "event"' });
    }
    if (id !== undefined && id !== null && !(Number.isInteger(id) && id >= 1 && id <= MAX_ID)) {
      return this._emit('error', { code: 'invalid_message', message: 'event "' + event + '" has an invalid id' });
    }
    this._seen(msg);
    this._emit('message', event, data);
    if (event === 'error') return this._emit('error', data);
    var list = RESERVED[event] ? [] : (this._handlers[event] || []).slice();
    var ctx = { event: event, id: id === undefined ? null : id, socket: this };
    if (typeof msg.channel === 'string' && typeof msg.offset === 'number') {
      ctx.channel = msg.channel;
      ctx.epoch = msg.epoch;
      ctx.offset = msg.offset;
    } else {
      ctx.channel = ctx.epoch = ctx.offset = null;
    }
    if (ctx.id === null) {
      for (var i = 0; i < list.length; i++) {
        try { list[i].call(this, data, ctx); } catch (err) { this._handlerError(event, err); }
      }
      return;
    }
    var self = this;
    var result;
    if (RESERVED[event]) result = Promise.reject(new Error('event name "' + event + '" is reserved by the client'));
    else if (list.length === 0) result = Promise.reject(new Error('no handler for event "' + event + '"'));
    else {
      try { result = Promise.resolve(list[0].call(this, data, ctx)); } catch (err) { result = Promise.reject(err); }
      for (var i = 1; i < list.length; i++) {
        try { list[i].call(this, data, ctx); } catch (err) { this._handlerError(event, err); }
      }
    }
    result.then(function (value) {
      return JSON.stringify({ ack: id, data: value === undefined ? null : value });
    }).catch(function (err) {
      return JSON.stringify({ ack: id, error: errorMessage(err) });
    }).then(function (reply) {
      // An ack belongs to the connection that carried the event.
      if (self._ws === ws && self._connected) ws.send(reply);
    });
  };

  // The position of a join's answer, unless a newer one was already seen.
  Socket.prototype._joinedAt = function (channel, answer) {
    var current = this._joined.get(channel);
    var fresh = answer && answer.epoch !== null && answer.epoch !== undefined
      ? { epoch: answer.epoch, offset: answer.offset } : null;
    if (current && fresh && current.epoch === fresh.epoch && current.offset > fresh.offset) return;
    this._joined.set(channel, fresh);
  };

  Socket.prototype.join = function (channel, options) {
    var self = this;
    if (typeof channel !== 'string' || channel === '') return Promise.reject(new TypeError('join: channel must be a non-empty string'));
    var recent = options && options.recent !== undefined ? options.recent : 0;
    if (!(Number.isInteger(recent) && recent >= 0)) return Promise.reject(new TypeError('join: recent must be an integer >= 0'));
    return this.request('@join', { channel: channel, recent: recent }).then(function (answer) {
      self._joinedAt(channel, answer);
      return answer;
    });
  };

  Socket.prototype.leave = function (channel) {
    this._joined.delete(channel);
    return this.request('@leave', { channel: channel });
  };

  Socket.prototype.position = function (channel) {
    var p = this._joined.get(channel);
    return p ? { epoch: p.epoch, offset: p.offset } : null;
  };

  // After a reconnection: every joined channel again, from its position.
  Socket.prototype._rejoin = function () {
    var self = this;
    this._joined.forEach(function (since, channel) {
      self.request('@join', { channel: channel, since: since }).then(function (answer) {
        if (!self._joined.has(channel)) return; // left meanwhile
        self._joinedAt(channel, answer);
        self._emit('recovered', { channel: channel, recovered: answer.recovered, epoch: answer.epoch, offset: answer.offset });
      }, function (err) {
        if (errorMessage(err) === 'disconnected' || errorMessage(err) === 'closed') return; // the next open tries again
        self._joined.delete(channel);
        self._emit('error', { code: 'join', message: 'cannot join "' + channel + '" again: ' + errorMessage(err) });
      });
    });
  };

  // A channel message's position (history on): remembered for recovery.
  Socket.prototype._seen = function (msg) {
    if (typeof msg.channel !== 'string' || typeof msg.offset !== 'number' || typeof msg.epoch !== 'string') return;
    if (!this._joined.has(msg.channel)) return;
    var current = this._joined.get(msg.channel);
    if (current && current.epoch === msg.epoch && current.offset >= msg.offset) return;
    this._joined.set(msg.channel, { epoch: msg.epoch, offset: msg.offset });
  };

  Socket.prototype.close = function (code, reason) {
    if (this._closed) return;
    code = code === undefined ? 1000 : code;
    reason = reason === undefined ? '' : String(reason);
    if (code !== 1000 && !(code >= 3000 && code <= 4999)) throw new RangeError('close: code must be 1000 or 3000-4999');
    this._shutdown();
    if (this._ws) this._ws.close(code, reason); // 'close' follows from onclose
    else this._emit('close', { code: code, reason: reason, wasClean: true });
  };

  // For good: no more reconnection; what waits is rejected with 'closed'.
  Socket.prototype._shutdown = function () {
    var self = this;
    this._closed = true;
    clearTimeout(this._timer);
    this._timer = null;
    this._queue = [];
    Array.from(this._pending.keys()).forEach(function (id) { self._settle(id, new Error('closed')); });
  };

  var simples = {
    connect: function (url, options) { return new Socket(url, options); },
    Socket: Socket,
  };
  if (typeof module === 'object' && module && module.exports) module.exports = simples;
  root.simples = simples;
})(typeof window !== 'undefined' ? window : typeof globalThis !== 'undefined' ? globalThis : this);
