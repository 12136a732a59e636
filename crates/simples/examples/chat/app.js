// The chat page: wires the DOM to the /chat WebSocket host (object mode).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const socket = simples.connect('/chat');

  function setStatus(connected) {
    $('status').textContent = connected ? 'connected' : 'disconnected';
    $('status').className = connected ? 'connected' : 'disconnected';
  }

  function add(kind, from, text) {
    const li = document.createElement('li');
    li.className = kind;
    if (from !== null) {
      const b = document.createElement('b');
      b.className = 'from';
      b.textContent = from;
      li.appendChild(b);
    }
    const span = document.createElement('span');
    span.className = 'text';
    span.textContent = text;
    li.appendChild(span);
    const list = $('messages');
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  // The room the page is in: joined with simples.js's join(), so after a
  // reconnection (to this node or another) the page gets what it missed.
  let room = null;
  function enter(name) {
    const old = room;
    if (old && old !== name) socket.leave(old).catch(() => {});
    return socket.join(name, { recent: 20 }).then((data) => {
      room = name;
      $('current-room').textContent = name;
      return data;
    });
  }
  enter('lobby').catch((e) => add('system', null, 'cannot join lobby: ' + e.message));
  socket.on('recovered', (info) => {
    if (!info.recovered) add('system', null, 'messages of ' + info.channel + ' were missed while offline');
  });

  socket.on('open', () => setStatus(true));
  socket.on('close', () => setStatus(false));
  socket.on('online', (data) => { $('online').textContent = String(data.count); });
  socket.on('room', (data) => { $('current-room').textContent = data.room; });
  socket.on('said', (data) => add('msg', data.nick, data.text));
  socket.on('system', (data) => add('system', null, data.text));
  // Transport errors repeat on every reconnection attempt; #status already
  // shows the state. The server's own error events are worth showing.
  socket.on('error', (e) => {
    if (e.code !== 'transport') add('system', null, 'error: ' + (e.message || e.code));
  });

  $('nick-save').addEventListener('click', () => {
    const nick = $('nick').value.trim();
    if (!nick) return;
    socket.request('nick', { nick })
      .then((data) => { $('current-nick').textContent = data.nick; $('nick').value = ''; })
      .catch((e) => add('system', null, 'nickname not changed: ' + e.message));
  });

  $('join').addEventListener('click', () => {
    const room = $('room').value.trim();
    if (!room) return;
    enter(room)
      .then(() => { $('room').value = ''; })
      .catch((e) => add('system', null, 'cannot join: ' + e.message));
  });

  $('send-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('text').value.trim();
    if (!text) return;
    socket.send('say', { text });
    $('text').value = '';
  });
})();
