/**
 * SIGTERM on a whole ferry process (its own media engine, port pools and SIP
 * plugin): every pending long poll gets a Janus answer (its session's last
 * events, else a keepalive) instead of a reset connection, WebSocket clients
 * get close code 1001, the process exits 0 within 2 s, and no UDP port it had
 * bound (WebRTC media leases, SIP RTP leases, the SIP signalling socket) is
 * left in /proc/net/udp. A WebSocket client that never answers the close frame
 * does not hold the exit.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { mediaRange, sipRange } from '../helpers/ferry.js';
import { startFerryProcess, type FerryProcess } from '../helpers/ferryProcess.js';
import { JanusWs, startGateway } from '../helpers/http.js';
import { udpPeer, udpSockets, type UdpPeer } from '../helpers/udp.js';
import { webrtcSdp } from '../sip-plugin/helpers.js';

const test = suite('shutdown');

/** What the issue asks: exit within 2 s of SIGTERM (a bound on the wait, failing the test when exceeded). */
const EXIT_BOUND_MS = 2_000;
const WAIT_MS = 10_000;

type Json = Record<string, any>;

async function post(f: FerryProcess, path: string, request: Json): Promise<Json> {
  return f.http.post(path, { transaction: `t${Math.random().toString(36).slice(2)}`, ...request });
}

/** Long polls (bounded) until `match` has seen an event it wants; returns every event seen. */
async function pollFor(f: FerryProcess, sid: number, match: (e: Json) => boolean): Promise<Json[]> {
  const seen: Json[] = [];
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const r = await fetch(`${f.http.base}/${sid}?maxev=10`, { signal: AbortSignal.timeout(WAIT_MS) });
    const events = (await r.json()) as Json[];
    seen.push(...events);
    if (events.some(match)) return seen;
  }
  throw new Error(`no matching event on session ${sid} within ${WAIT_MS} ms: ${JSON.stringify(seen).slice(0, 500)}`);
}

async function status(f: FerryProcess): Promise<Json> {
  const r = await f.admin.post('', { janus: 'ferry_status', transaction: 's', admin_secret: f.config.auth.admin_secret });
  return r['status'] as Json;
}

async function until(cond: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A long poll whose outcome is kept whole: status and text, or the transport error (a reset). */
function openPoll(f: FerryProcess, sid: number, maxev: number): Promise<{ status: number; text: string } | { error: string }> {
  return fetch(`${f.http.base}/${sid}?maxev=${maxev}`).then(
    async (r) => ({ status: r.status, text: await r.text() }),
    (err: unknown) => ({ error: String((err as { cause?: unknown }).cause ?? err) }),
  );
}

/**
 * A WebSocket client on a raw TCP socket: it upgrades, then reads everything
 * and never writes again (no answer to a close frame). Resolves with the code
 * of the first close frame the server sent (server frames are unmasked), or
 * null if the connection ended without one.
 */
async function stubbornWebSocket(port: number): Promise<{ closeCode: Promise<number | null> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]); });
  socket.write([
    'GET / HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: janus-protocol', '', '',
  ].join('\r\n'));
  await until(() => received.includes('\r\n\r\n'), 'the WebSocket upgrade');
  assert.match(received.toString('latin1'), /^HTTP\/1\.1 101 /);
  const closeCode = new Promise<number | null>((resolve) => {
    socket.once('close', () => {
      const frames = received.subarray(received.indexOf('\r\n\r\n') + 4);
      // Opcode 8 (close), FIN set, payload length < 126: the code is the first two payload bytes.
      const at = frames.indexOf(0x88);
      resolve(at >= 0 && frames.length >= at + 4 ? frames.readUInt16BE(at + 2) : null);
    });
  });
  return { closeCode };
}

function isJanusMessage(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as Json)['janus'] === 'string';
}

test('SIGTERM: long polls get a Janus answer, WebSockets 1001, exit 0 within 2 s, no UDP port left bound', async () => {
  const media = mediaRange(24);
  const sipRtp = sipRange(24);
  const sink: UdpPeer = await udpPeer();
  const f = await startFerryProcess(
    { media: { ...media, workers: 1 }, sip: { ...sipRtp, bind: '127.0.0.1' } },
    { entry: 'source' },
  );
  let stopped: Promise<void> | undefined;
  try {
    // Media: an EchoTest PeerConnection leases a port of the media range.
    const echoSid = (await post(f, '', { janus: 'create' }))['data'].id as number;
    const echoHid = (await post(f, `/${echoSid}`, { janus: 'attach', plugin: 'janus.plugin.echotest' }))['data'].id as number;
    const acked = await post(f, `/${echoSid}/${echoHid}`, { janus: 'message', body: { audio: true }, jsep: { type: 'offer', sdp: webrtcSdp('offer') } });
    assert.is(acked['janus'], 'ack', JSON.stringify(acked));
    await pollFor(f, echoSid, (e) => e['jsep']?.['type'] === 'answer');

    // SIP: a guest account binds its signalling socket; a call leases a SIP RTP port and INVITEs the sink.
    const sipSid = (await post(f, '', { janus: 'create' }))['data'].id as number;
    const sipHid = (await post(f, `/${sipSid}`, { janus: 'attach', plugin: 'janus.plugin.sip' }))['data'].id as number;
    await post(f, `/${sipSid}/${sipHid}`, { janus: 'message', body: { request: 'register', type: 'guest', username: 'sip:alice@127.0.0.1' } });
    await pollFor(f, sipSid, (e) => e['plugindata']?.['data']?.['result']?.['event'] === 'registered');
    const info = await f.admin.post(`/${sipSid}/${sipHid}`, { janus: 'handle_info', transaction: 'i', admin_secret: f.config.auth.admin_secret });
    const sipSignalling = info['info']['plugin_specific']['sip_udp_port'] as number;
    assert.ok(sipSignalling > 0, 'the SIP account has a UDP socket');
    await post(f, `/${sipSid}/${sipHid}`, {
      janus: 'message', body: { request: 'call', uri: `sip:bob@127.0.0.1:${sink.port}` }, jsep: { type: 'offer', sdp: webrtcSdp('offer') },
    });
    const [invite] = await sink.waitFor(1, WAIT_MS);
    assert.ok(invite, 'the sink got the INVITE');
    assert.match(invite.toString('utf8'), /^INVITE /);

    const pools = (await status(f))['port_pools'] as Array<{ name: string; leases: Array<{ port: number }> }>;
    const leased = pools.flatMap((p) => p.leases.map((l) => l.port));
    const rtpLeases = pools.find((p) => p.name === 'rtp')?.leases.length ?? 0;
    const sipLeases = pools.find((p) => p.name === 'sip')?.leases.length ?? 0;
    assert.ok(rtpLeases >= 2, `media range leases (EchoTest and the SIP call's WebRTC side): ${JSON.stringify(pools)}`);
    assert.ok(sipLeases >= 1, `SIP RTP range lease: ${JSON.stringify(pools)}`);
    const ferryPorts = [...leased, sipSignalling];
    // ferry's own sockets, by inode: after it exits, another process may take one of its ports.
    const ferrySockets = udpSockets({ pid: f.pid });
    const boundBefore = new Set(ferrySockets.map((s) => s.port));
    for (const port of ferryPorts) assert.ok(boundBefore.has(port), `port ${port} is bound by ferry while it runs`);

    // Pending long polls: bare sessions with maxev 1 and 10 (two polls on one), and the EchoTest session with its
    // PeerConnection (whatever its handle's ending queues is delivered; else a keepalive).
    const bare1 = (await post(f, '', { janus: 'create' }))['data'].id as number;
    const bare10 = (await post(f, '', { janus: 'create' }))['data'].id as number;
    const polls = {
      bare1: openPoll(f, bare1, 1),
      bare10: openPoll(f, bare10, 10),
      bare10b: openPoll(f, bare10, 10),
      echo: openPoll(f, echoSid, 10),
    };
    await until(async () => (await status(f))['long_poll_waiters'] >= 4, 'the four long polls to wait');

    // A WebSocket client with a session, and one that reads but never answers the close frame (it must not hold
    // shutdown: ws would wait 30 s for its answer).
    const ws = await JanusWs.connect(f.wsUrl);
    await ws.request({ janus: 'create' });
    const wsClosed = new Promise<number>((resolve) => ws.socket.once('close', (code) => resolve(code)));
    const stubborn = await stubbornWebSocket(Number(new URL(f.wsUrl).port));

    const boundOf = (p: Promise<unknown>) => {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<'bound'>((resolve) => { timer = setTimeout(() => resolve('bound'), EXIT_BOUND_MS); });
      return Promise.race([p.then(() => 'done' as const), bound]).finally(() => clearTimeout(timer));
    };
    stopped = f.stop(); // SIGTERM; rejects unless the exit code is 0
    assert.is(await boundOf(stopped), 'done', `ferry did not exit within ${EXIT_BOUND_MS} ms of SIGTERM\n${f.output()}`);
    await stopped;

    const answers = {
      bare1: await polls.bare1,
      bare10: await polls.bare10,
      bare10b: await polls.bare10b,
      echo: await polls.echo,
    };
    for (const [name, answer] of Object.entries(answers)) {
      assert.ok('status' in answer, `${name}: the long poll got a reset, not an answer: ${JSON.stringify(answer)}`);
      assert.is(answer.status, 200, name);
    }
    const body = (name: keyof typeof answers) => JSON.parse((answers[name] as { text: string }).text) as unknown;
    assert.equal(body('bare1'), { janus: 'keepalive' }, 'maxev=1 with nothing queued: a keepalive object');
    assert.equal(body('bare10'), [{ janus: 'keepalive' }], 'maxev>1 with nothing queued: a keepalive array');
    assert.equal(body('bare10b'), [{ janus: 'keepalive' }]);
    const echo = body('echo') as Json[];
    assert.ok(Array.isArray(echo) && echo.length >= 1 && echo.every(isJanusMessage), `EchoTest poll: ${JSON.stringify(echo)}`);
    for (const e of echo) if (e['janus'] !== 'keepalive') assert.is(e['session_id'], echoSid, JSON.stringify(e));

    assert.is(await wsClosed, 1001, 'WebSocket clients are told the server is going away');
    assert.is(ws.socket.readyState, WebSocket.CLOSED);
    assert.is(await stubborn.closeCode, 1001, 'the client that never answered got the 1001 close frame too');

    const stillOpen = new Set(udpSockets().map((s) => s.inode));
    for (const { port, inode } of ferrySockets) {
      assert.not.ok(stillOpen.has(inode), `ferry's socket on port ${port} is still open after it exited (something inherited it)`);
    }
  } finally {
    await (stopped ?? f.stop()).catch(() => undefined);
    await sink.close();
  }
});

test('stop() in process: a request whose body never comes is cut after the grace; the long poll beside it is answered', async () => {
  const t = await startGateway();
  let stopped: Promise<void> | undefined;
  const stalled = connect(Number(new URL(t.httpBase).port), '127.0.0.1');
  try {
    await new Promise<void>((resolve, reject) => {
      stalled.once('connect', resolve);
      stalled.once('error', reject);
    });
    stalled.on('error', () => undefined);
    const stalledEnded = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
    // Headers promise a body that never arrives: the request stays in flight.
    stalled.write('POST /janus HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"janus":');
    const sid = await t.http.createSession();
    const poll = t.http.get(`/${sid}?maxev=5`);
    await until(() => t.gw.registry.longPollWaiterCount === 1, 'the long poll to wait');

    stopped = t.stop();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'bound'>((resolve) => { timer = setTimeout(() => resolve('bound'), EXIT_BOUND_MS); });
    const outcome = await Promise.race([stopped.then(() => 'stopped' as const), bound]);
    clearTimeout(timer);
    assert.is(outcome, 'stopped', `stop() did not finish within ${EXIT_BOUND_MS} ms with a stalled request open`);
    const answered = await poll;
    assert.is(answered.status, 200);
    assert.equal(answered.body, [{ janus: 'keepalive' }]);
    await stalledEnded; // the stalled connection was cut, not left open
  } finally {
    stalled.destroy();
    await (stopped ?? t.stop()).catch(() => undefined);
  }
});

test.run();
