/*
 * SIP demo: janus.plugin.sip with janus.js. Register (or be a guest), call a
 * SIP URI, answer or decline incoming calls, hang up, hold, and send DTMF as
 * SIP INFO. ferry's plugin supports exactly the requests used here; see
 * src/plugins/sip/requests.ts.
 */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const log = FerryDemo.logger($('log'));
  const DIGITS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];
  const IN_CALL = new Set(['incall', 'held']);

  const demo = {
    janus: null,
    handle: null,
    /** unregistered | registering | registered | guest | failed | unregistering */
    registration: 'unregistered',
    /** idle | calling | ringing | proceeding | early | incoming | accepting | incall | held | hangingup */
    call: 'idle',
    callId: null,
    peer: null,
    /** The pending incoming call: { caller, callId, jsep (null for an offerless INVITE) }. */
    incoming: null,
    /** Every plugin result received ({event, ...}), oldest first. */
    events: [],
    /** Every error event ({error_code, error}). */
    errors: [],
    dtmfSent: '',
    stats: null,
    lastHangup: null,
  };
  // Exposed for people poking at the page in devtools, and for the browser tests.
  window.ferrySip = demo;

  // ---- UI state -------------------------------------------------------------------------------

  function refresh() {
    const attached = demo.handle !== null;
    const reg = demo.registration;
    const registered = reg === 'registered' || reg === 'guest';
    const busy = demo.call !== 'idle';
    // ferry keeps one account per handle: a new one only after unregistering, or after a failure.
    $('register').disabled = !attached || busy || !(reg === 'unregistered' || reg === 'failed');
    $('unregister').disabled = !attached || !registered || busy;
    $('unregister').textContent = reg === 'guest' ? 'Leave' : 'Unregister';
    $('callbtn').disabled = !registered || busy;
    $('hangup').disabled = !busy || demo.call === 'hangingup' || demo.call === 'incoming';
    $('hold').disabled = !IN_CALL.has(demo.call);
    $('hold').textContent = demo.call === 'held' ? 'Resume' : 'Hold';
    for (const b of $('dialpad').querySelectorAll('button')) b.disabled = !IN_CALL.has(demo.call);
    $('incoming').hidden = demo.call !== 'incoming' || !demo.incoming;
    const regText = { unregistered: 'not registered', guest: 'guest (no REGISTER)' }[reg] ?? reg;
    FerryDemo.setState($('reg'), regText, reg === 'guest' ? 'ok' : reg === 'unregistered' ? '' : FerryDemo.stateClass(reg));
    const callText = { idle: 'no call', incall: 'in call', hangingup: 'hanging up', early: 'early media' }[demo.call] ?? demo.call;
    FerryDemo.setState($('call'), callText, demo.call === 'idle' ? '' : FerryDemo.stateClass(demo.call));
    $('peer').textContent = demo.peer ? `${IN_CALL.has(demo.call) ? 'with' : busy ? 'peer' : 'last call'}: ${demo.peer}${demo.callId ? ` · Call-ID ${demo.callId}` : ''}` : '';
  }

  function setCall(state) {
    demo.call = state;
    refresh();
  }

  // ---- plugin events --------------------------------------------------------------------------

  function onResult(result, callId, jsep) {
    demo.events.push(result);
    const ev = result.event;
    switch (ev) {
      case 'registering':
      case 'unregistering':
        demo.registration = ev;
        log(ev);
        break;
      case 'registered':
        demo.registration = result.register_sent === false ? 'guest' : 'registered';
        log(`registered as ${result.username}${result.register_sent === false ? ' (guest: no REGISTER sent)' : ''}`);
        break;
      case 'registration_failed':
        demo.registration = 'failed';
        log(`registration failed: ${result.code} ${result.reason}`, true);
        break;
      case 'unregistered':
        demo.registration = 'unregistered';
        log('unregistered');
        break;
      case 'calling':
        demo.callId = result.call_id ?? callId ?? demo.callId;
        log(`calling ${demo.peer} (Call-ID ${demo.callId})`);
        setCall('calling');
        break;
      case 'ringing':
        log('ringing');
        setCall('ringing');
        break;
      case 'proceeding':
        log(`proceeding (${result.code})`);
        setCall('proceeding');
        break;
      case 'progress':
        log('early media (183 with SDP)');
        if (jsep) demo.handle.handleRemoteJsep({ jsep, error: (e) => log(`remote answer refused: ${e}`, true) });
        setCall('early');
        break;
      case 'accepting':
        log('accepted the offerless INVITE: our offer went in the 200 OK, waiting for the answer in the ACK');
        setCall('accepting');
        break;
      case 'accepted':
        if (jsep) demo.handle.handleRemoteJsep({ jsep, error: (e) => log(`remote answer refused: ${e}`, true) });
        log(`call established${result.username ? ` with ${result.username}` : ''}`);
        setCall('incall');
        break;
      case 'incomingcall':
        onIncoming(result, callId, jsep);
        break;
      case 'missed_call':
        log(`missed call from ${result.caller} (busy)`);
        break;
      case 'declining':
        log(`declining (${result.code})`);
        break;
      case 'hangingup':
        setCall('hangingup');
        break;
      case 'hangup':
        endCall(result);
        break;
      case 'holding':
        log(`holding (${result.direction})`);
        setCall('held');
        break;
      case 'resuming':
        log('resuming');
        setCall('incall');
        break;
      case 'dtmfsent':
        break;
      case 'dtmf':
        log(`DTMF from ${result.sender}: ${result.signal}${result.duration ? ` (${result.duration} ms)` : ''}`);
        break;
      case 'info':
        log(`INFO from ${result.sender} (${result.type}): ${result.content}`);
        break;
      case 'message':
        log(`MESSAGE from ${result.sender}: ${result.content}`);
        break;
      case 'messagedelivery':
      case 'messagesent':
      case 'infosent':
        break;
      default:
        log(`event ${ev}`);
    }
    refresh();
  }

  function onIncoming(result, callId, jsep) {
    demo.incoming = { caller: result.username, displayname: result.displayname, callId: result.call_id ?? callId, jsep: jsep ?? null };
    demo.callId = demo.incoming.callId;
    demo.peer = result.displayname ? `"${result.displayname}" ${result.username}` : result.username;
    $('caller').textContent = demo.peer;
    const hasVideo = !!jsep && /m=video [1-9]/.test(jsep.sdp);
    $('answer-video').checked = hasVideo;
    $('answer-video').disabled = !!jsep && !hasVideo;
    $('incoming-detail').textContent = jsep ? `offers ${hasVideo ? 'audio and video' : 'audio'}` : 'no SDP offer: accepting sends ours';
    log(`incoming call from ${demo.peer}${jsep ? '' : ' (offerless INVITE)'}`);
    setCall('incoming');
  }

  function endCall(result) {
    demo.lastHangup = { code: result.code, reason: result.reason };
    // Busy, no answer, cancelled and declined are how calls end, not failures of the page.
    log(`call ended: ${result.code} ${result.reason}`, result.code >= 400 && ![480, 486, 487, 603].includes(result.code));
    demo.incoming = null;
    // ferry closes the PeerConnection with the call; drop ours too (idempotent in janus.js).
    demo.handle?.hangup();
    demo.stats?.stop();
    setCall('idle');
    FerryDemo.setState($('media'), 'media: none', '');
  }

  function onError(msg) {
    demo.errors.push({ error_code: msg.error_code, error: msg.error });
    log(`error ${msg.error_code}: ${msg.error}`, true);
    // A refused call or accept leaves no call behind; ferry also closes the PeerConnection it brought.
    if (demo.call === 'calling' || demo.call === 'accepting') {
      demo.handle?.hangup();
      setCall('idle');
    }
    if (demo.registration === 'registering') demo.registration = 'failed';
    refresh();
  }

  // ---- session ----------------------------------------------------------------------------------

  const remoteTracks = new Map();

  async function connect() {
    FerryDemo.setState($('state'), 'connecting', 'warn');
    try {
      demo.janus = await FerryDemo.connect({
        onDestroyed: () => FerryDemo.setState($('state'), 'session ended', 'bad'),
        onError: (err) => FerryDemo.setState($('state'), `session lost: ${err}`, 'bad'),
      });
      demo.handle = await FerryDemo.attach(demo.janus, {
        plugin: 'janus.plugin.sip',
        iceState: (state) => FerryDemo.setState($('ice'), `ice: ${state}`, FerryDemo.stateClass(state)),
        webrtcState: (up, reason) => log(`PeerConnection ${up ? 'up' : 'down'}${reason ? ` (${reason})` : ''}`),
        mediaState: (medium, on, mid) => {
          FerryDemo.setState($('media'), `media: ${medium} ${on ? 'flowing' : 'stopped'}`, on ? 'ok' : 'warn');
          log(`ferry ${on ? 'receives' : 'stopped receiving'} ${medium} from the browser (mid ${mid})`);
        },
        slowLink: (uplink, lost, mid) => log(`slowlink: ${uplink ? 'uplink' : 'downlink'}, ${lost} packets lost (mid ${mid})`),
        onmessage: (msg, jsep) => {
          if (msg.error) return onError(msg);
          if (msg.result) onResult(msg.result, msg.call_id, jsep);
        },
        onlocaltrack: (track, on) => {
          if (track.kind !== 'video') return;
          $('localvideo').hidden = !on;
          if (on) FerryDemo.playTrack($('localvideo'), track);
        },
        onremotetrack: (track, mid, on) => {
          // janus.js reports a track again when it unmutes: log changes only.
          const key = `${mid}:${track.id}`;
          if (remoteTracks.get(key) !== on) log(`remote ${track.kind} track ${on ? 'added' : 'removed'} (mid ${mid})`);
          remoteTracks.set(key, on);
          if (track.kind === 'audio' && on) FerryDemo.playTrack($('remote'), track);
          if (track.kind === 'video') {
            $('remotevideo').hidden = !on;
            if (on) FerryDemo.playTrack($('remotevideo'), track);
          }
        },
        oncleanup: () => {
          remoteTracks.clear();
          $('localvideo').hidden = true;
          $('remotevideo').hidden = true;
          FerryDemo.setState($('ice'), 'ice: new', '');
        },
      });
      FerryDemo.setState($('state'), 'connected', 'ok');
      log(`attached to janus.plugin.sip, handle ${demo.handle.getId()}`);
      refresh();
    } catch (err) {
      log(`cannot reach ferry: ${err.message ?? err}`, true);
      FerryDemo.setState($('state'), 'failed', 'bad');
    }
  }

  function send(message, jsep) {
    demo.handle.send({ message, ...(jsep ? { jsep } : {}), error: (e) => log(`${message.request} not sent: ${e}`, true) });
  }

  // ---- actions --------------------------------------------------------------------------------

  function register() {
    const guest = $('guest').checked;
    let username = $('username').value.trim();
    if (!username && guest) {
      username = `sip:guest-${Janus.randomString(6).toLowerCase()}@${location.hostname}`;
      $('username').value = username;
    }
    if (!/^sips?:[^@\s]+@\S+$/.test(username)) {
      log('the SIP identity must look like sip:user@domain', true);
      return;
    }
    const message = { request: 'register', username };
    const display = $('display').value.trim();
    if (display) message.display_name = display;
    if (guest) message.type = 'guest';
    else {
      const secret = $('secret').value;
      if (!secret) {
        log('a secret is needed to register (or tick "guest")', true);
        return;
      }
      message.secret = secret;
      const authuser = $('authuser').value.trim();
      if (authuser) message.authuser = authuser;
      const proxy = $('proxy').value.trim();
      if (proxy) message.proxy = proxy;
    }
    log(guest ? `guest ${username}` : `registering ${username}${message.proxy ? ` via ${message.proxy}` : ''}`);
    send(message);
  }

  function tracks(video, capture = true) {
    const list = [{ type: 'audio', capture, recv: true }];
    if (video) list.push({ type: 'video', capture: capture ? { width: 640, height: 480 } : false, recv: true });
    return list;
  }

  /** A fresh stats panel per call: janus.js makes a new PeerConnection for each. */
  function startStats() {
    demo.stats?.stop();
    $('stats').replaceChildren();
    demo.stats = new FerryDemo.StatsPanel($('stats'), () => demo.handle?.webrtcStuff?.pc);
  }

  function createOffer(video) {
    return new Promise((resolve, reject) =>
      demo.handle.createOffer({ tracks: tracks(video), success: resolve, error: (e) => reject(new Error(String(e?.message ?? e))) }),
    );
  }

  async function call() {
    const uri = $('uri').value.trim();
    if (!/^sips?:\S+$/.test(uri)) {
      log('call a SIP URI, e.g. sip:bob@example.com', true);
      return;
    }
    demo.peer = uri;
    demo.callId = null;
    demo.dtmfSent = '';
    $('dtmf-sent').textContent = '';
    setCall('calling');
    try {
      const jsep = await createOffer($('video').checked);
      send({ request: 'call', uri }, jsep);
      startStats();
    } catch (err) {
      log(`cannot start the call: ${err.message}`, true);
      demo.handle.hangup();
      setCall('idle');
    }
  }

  async function accept() {
    const incoming = demo.incoming;
    if (!incoming) return;
    const video = $('answer-video').checked;
    demo.dtmfSent = '';
    $('dtmf-sent').textContent = '';
    setCall('accepting');
    try {
      if (incoming.jsep) {
        const jsep = await new Promise((resolve, reject) =>
          demo.handle.createAnswer({ jsep: incoming.jsep, tracks: tracks(video), success: resolve, error: (e) => reject(new Error(String(e?.message ?? e))) }),
        );
        send({ request: 'accept' }, jsep);
      } else {
        // Offerless INVITE: ferry puts our offer in its 200 OK; the SIP answer arrives in the ACK (`accepted`).
        const jsep = await createOffer(video);
        send({ request: 'accept' }, jsep);
      }
      startStats();
    } catch (err) {
      log(`cannot answer: ${err.message}`, true);
      demo.handle.hangup();
      send({ request: 'decline', code: 488 });
    }
  }

  function decline() {
    send({ request: 'decline' });
  }

  function hangup() {
    log('hanging up');
    send({ request: 'hangup' });
  }

  function hold() {
    send({ request: demo.call === 'held' ? 'unhold' : 'hold' });
  }

  function dtmf(digit) {
    send({ request: 'dtmf_info', digit });
    demo.dtmfSent += digit;
    $('dtmf-sent').textContent = demo.dtmfSent;
    log(`DTMF ${digit} sent as SIP INFO`);
  }

  // ---- wiring ---------------------------------------------------------------------------------

  for (const d of DIGITS) {
    const b = FerryDemo.el('button', { type: 'button', 'data-digit': d }, d);
    b.onclick = () => dtmf(d);
    $('dialpad').append(b);
  }
  $('account').onsubmit = (e) => {
    e.preventDefault();
    register();
  };
  $('unregister').onclick = () => send({ request: 'unregister' });
  $('dial').onsubmit = (e) => {
    e.preventDefault();
    call();
  };
  $('hangup').onclick = hangup;
  $('hold').onclick = hold;
  $('accept').onclick = accept;
  $('decline').onclick = decline;
  $('guest').onchange = () => {
    for (const id of ['authuser', 'secret', 'proxy']) $(id).disabled = $('guest').checked;
  };

  // Query parameters prefill the forms (never the secret): ?username=…&display=…&proxy=…&authuser=…&guest=1&uri=…&autoregister=1
  for (const id of ['username', 'display', 'authuser', 'proxy', 'uri']) {
    const v = FerryDemo.query(id);
    if (v !== null) $(id).value = v;
  }
  $('guest').checked = FerryDemo.query('guest') === '1';
  $('guest').onchange();
  refresh();
  connect().then(() => {
    if (demo.handle && FerryDemo.query('autoregister')) register();
  });
})();
