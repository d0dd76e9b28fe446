/*
 * TextRoom demo: janus.plugin.textroom with janus.js. `setup` gets ferry's
 * offer of one m=application; the answer goes back with `ack`; once the data
 * channel is open, every Text Room request (join, message, leave) is a JSON
 * text on it, answered on it with the same transaction.
 */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const log = FerryDemo.logger($('log'));
  const chat = FerryDemo.chat($('chat'));
  const demo = { janus: null, handle: null, room: 1234, username: null, people: new Map(), pending: new Map(), events: [], joined: false };
  window.ferryTextRoom = demo;
  $('username').value = FerryDemo.query('username') ?? '';

  /** A Text Room request over the data channel; resolves with its reply. */
  function request(body) {
    const transaction = Janus.randomString(12);
    return new Promise((resolve, reject) => {
      demo.pending.set(transaction, resolve);
      demo.handle.data({ text: JSON.stringify({ ...body, transaction }), error: (err) => reject(new Error(String(err))) });
    });
  }

  async function join() {
    $('join').disabled = true;
    demo.room = Number($('room').value) || 1234;
    demo.username = $('username').value.trim() || `guest-${Janus.randomString(4)}`;
    $('username').value = demo.username;
    try {
      FerryDemo.setState($('state'), 'connecting', 'warn');
      demo.janus = await FerryDemo.connect({ onDestroyed: () => FerryDemo.setState($('state'), 'session ended', 'bad') });
      demo.handle = await FerryDemo.attach(demo.janus, {
        plugin: 'janus.plugin.textroom',
        onmessage: (msg, jsep) => {
          demo.events.push(msg);
          if (msg.error) log(`error ${msg.error_code}: ${msg.error}`, true);
          if (!jsep) return;
          demo.handle.createAnswer({
            jsep,
            // Data only: janus.js opens its default data channel with the answer.
            tracks: [{ type: 'data' }],
            success: (answer) => demo.handle.send({ message: { request: 'ack' }, jsep: answer }),
            error: (err) => log(`createAnswer: ${err?.message ?? err}`, true),
          });
        },
        webrtcState: (up, reason) => log(`PeerConnection ${up ? 'up' : `down${reason ? ` (${reason})` : ''}`}`, !up),
        ondataopen: () => enter(),
        ondata: (data) => onData(data),
        oncleanup: () => {
          log('PeerConnection closed');
          setJoined(false);
        },
      });
      demo.handle.send({ message: { request: 'setup' } });
      $('leave').disabled = false;
    } catch (err) {
      log(String(err.message ?? err), true);
      FerryDemo.setState($('state'), 'failed', 'bad');
      $('join').disabled = false;
    }
  }

  /** The data channel is open: join the room. */
  async function enter() {
    if (demo.joined) return;
    const reply = await request({ textroom: 'join', room: demo.room, username: demo.username, display: demo.username });
    if (reply.textroom !== 'success') {
      log(`join: ${reply.error}`, true);
      FerryDemo.setState($('state'), 'join refused', 'bad');
      return;
    }
    setJoined(true);
    for (const p of reply.participants ?? []) addPerson(p.username, p.display);
    FerryDemo.setState($('state'), `in room ${demo.room} as ${demo.username}`, 'ok');
    $('roomname').textContent = String(demo.room);
  }

  function setJoined(on) {
    demo.joined = on;
    $('text').disabled = $('send').disabled = !on;
  }

  function onData(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      log(`not JSON: ${data}`, true);
      return;
    }
    demo.events.push(msg);
    const waiter = msg.transaction ? demo.pending.get(msg.transaction) : undefined;
    if (waiter) {
      demo.pending.delete(msg.transaction);
      waiter(msg);
      return;
    }
    switch (msg.textroom) {
      case 'message': {
        const who = demo.people.get(msg.from) ?? msg.from;
        chat.add(msg.whisper ? `${who} (whisper)` : who, msg.text, msg.whisper ? 'whisper' : '');
        break;
      }
      case 'announcement':
        chat.add('room', msg.text, 'note');
        break;
      case 'join':
        if (msg.username !== demo.username) {
          addPerson(msg.username, msg.display);
          chat.add('', `${msg.display ?? msg.username} joined`, 'note');
        }
        break;
      case 'leave':
      case 'kicked':
        if (msg.username === demo.username) {
          chat.add('', msg.textroom === 'kicked' ? 'you were kicked' : 'you left', 'note');
          setJoined(false);
        } else {
          chat.add('', `${demo.people.get(msg.username) ?? msg.username} ${msg.textroom === 'kicked' ? 'was kicked' : 'left'}`, 'note');
          removePerson(msg.username);
        }
        break;
      case 'destroyed':
        chat.add('', `room ${msg.room} was destroyed`, 'note');
        setJoined(false);
        break;
      default:
        break;
    }
  }

  function addPerson(username, display) {
    demo.people.set(username, display ?? username);
    renderPeople();
  }

  function removePerson(username) {
    demo.people.delete(username);
    renderPeople();
  }

  function renderPeople() {
    const list = $('people');
    list.textContent = '';
    const to = $('to');
    const chosen = to.value;
    to.textContent = '';
    to.append(FerryDemo.el('option', { value: '' }, 'everyone'));
    for (const [username, display] of demo.people) {
      list.append(FerryDemo.el('div', {}, display));
      to.append(FerryDemo.el('option', { value: username }, `only ${display}`));
    }
    to.value = demo.people.has(chosen) ? chosen : '';
  }

  async function send(text) {
    const to = $('to').value;
    const reply = await request({ textroom: 'message', room: demo.room, text, ...(to ? { to } : {}) });
    if (reply.textroom !== 'success') log(`message: ${reply.error}`, true);
    else if (to) chat.add(`you → ${demo.people.get(to) ?? to}`, text, 'whisper');
  }

  async function leave() {
    $('leave').disabled = true;
    if (demo.joined) await request({ textroom: 'leave', room: demo.room }).catch(() => undefined);
    setJoined(false);
    demo.people.clear();
    renderPeople();
    demo.janus?.destroy({ cleanupHandles: true });
    demo.janus = demo.handle = null;
    FerryDemo.setState($('state'), 'idle');
    $('join').disabled = false;
  }

  $('join').onclick = join;
  $('leave').onclick = leave;
  FerryDemo.textInput($('text'), $('send'), (text) => {
    if (!demo.joined) return false;
    void send(text);
  });
  if (FerryDemo.query('autostart')) join();
})();
