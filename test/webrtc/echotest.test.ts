// EchoTest end to end: a werift RTCPeerConnection talks to ferry through the
// Janus API (HTTP and WebSocket), connects with ICE-lite + DTLS to ferry's
// native endpoint, sends RTP and receives it back, decrypted and intact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection } from 'werift';

import { JanusWs, tx, type Json } from '../helpers/http.js';
import { startFerry, type TestFerry } from '../helpers/ferry.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';

const PACKETS = 1000;

interface Signalling {
  message(body: Json, jsep?: Json): Promise<void>;
  nextEvent(match: (e: Json) => boolean, ms?: number): Promise<Json>;
  hangup(): Promise<void>;
  close(): Promise<void>;
}

async function httpSignalling(f: TestFerry): Promise<Signalling> {
  const session = await f.http.createSession();
  const handle = await f.http.attach(session);
  const events: Json[] = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const r = await f.http.get(`/${session}?maxev=10`).catch(() => null);
      if (!r) break;
      if (r.status !== 200) break;
      const list = Array.isArray(r.body) ? r.body : [r.body];
      for (const e of list) if (e && e.janus !== 'keepalive') events.push(e);
    }
  })();
  return {
    async message(body, jsep) {
      const r = await f.http.post(`/${session}/${handle}`, { janus: 'message', body, ...(jsep ? { jsep } : {}) });
      assert.ok(r.janus === 'ack' || r.janus === 'success', JSON.stringify(r));
    },
    async nextEvent(match, ms = 10_000) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const i = events.findIndex(match);
        if (i >= 0) return events.splice(i, 1)[0]!;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no matching event; have ${JSON.stringify(events).slice(0, 400)}`);
    },
    async hangup() {
      await f.http.post(`/${session}/${handle}`, { janus: 'hangup' });
    },
    async close() {
      await f.http.post(`/${session}`, { janus: 'destroy' });
      polling = false;
      await poll.catch(() => undefined);
    },
  };
}

async function wsSignalling(f: TestFerry): Promise<Signalling> {
  const ws = await JanusWs.connect(f.wsUrl);
  const created = await ws.request({ janus: 'create' });
  const session = created['data'].id as number;
  const attached = await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' });
  const handle = attached['data'].id as number;
  return {
    async message(body, jsep) {
      const r = await ws.request({ janus: 'message', session_id: session, handle_id: handle, body, ...(jsep ? { jsep } : {}) });
      assert.ok(r['janus'] === 'ack' || r['janus'] === 'success', JSON.stringify(r));
    },
    nextEvent: (match, ms = 10_000) => ws.nextEvent(match, ms),
    async hangup() {
      await ws.request({ janus: 'hangup', session_id: session, handle_id: handle, transaction: tx() });
    },
    async close() {
      await ws.request({ janus: 'destroy', session_id: session });
      await ws.close();
    },
  };
}

function payload(kind: string, i: number): Buffer {
  const b = Buffer.alloc(kind === 'audio' ? 120 : 900);
  b.write(`${kind}:${i}:`, 0);
  for (let k = 16; k < b.length; k++) b[k] = (i + k) & 0xff;
  return b;
}

async function echo(f: TestFerry, signalling: Signalling, pc: RTCPeerConnection): Promise<void> {
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendrecv' });
  const received: Record<string, Buffer[]> = { audio: [], video: [] };
  for (const t of [audio, video]) {
    t.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => received[track.kind]!.push(rtp.payload));
    });
  }
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await signalling.message({ audio: true, video: true }, { type: 'offer', sdp: pc.localDescription!.sdp });
  const ev = await signalling.nextEvent((e) => e.janus === 'event' && e.jsep);
  assert.equal(ev.plugindata.data, { echotest: 'event', result: 'ok' });
  assert.is(ev.jsep.type, 'answer');
  assert.match(ev.jsep.sdp, /a=ice-lite/);
  await pc.setRemoteDescription(ev.jsep);
  await connectionState(pc, 'connected');
  await signalling.nextEvent((e) => e.janus === 'webrtcup');

  const senders = { audio: audio.sender, video: video.sender };
  for (let i = 0; i < PACKETS; i++) {
    for (const kind of ['audio', 'video'] as const) {
      const sender = senders[kind];
      const header = new RtpHeader({ payloadType: sender.codec!.payloadType, sequenceNumber: (i + 1) & 0xffff, timestamp: i * 960 });
      await sender.sendRtp(new RtpPacket(header, payload(kind, i)));
    }
    // werift decrypts in JavaScript in this same process: pace to ~5k packets/s so its socket never overflows.
    if (i % 25 === 24) await new Promise((r) => setTimeout(r, 10));
  }
  const end = Date.now() + 10_000;
  while ((received.audio!.length < PACKETS || received.video!.length < PACKETS) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const engineStats = JSON.stringify(f.ferry.engine.stats());
  for (const kind of ['audio', 'video'] as const) {
    assert.is(received[kind]!.length, PACKETS, `${kind}: every packet echoed (engine: ${engineStats})`);
    received[kind]!.forEach((p, i) => assert.ok(p.equals(payload(kind, i)), `${kind} payload ${i} intact`));
  }
  const media = await signalling.nextEvent((e) => e.janus === 'media' && e.receiving === true, 5000);
  assert.ok(media.type === 'audio' || media.type === 'video');
  // Nothing more is sent: each m-line is reported as no longer receiving (checked once a second).
  for (const kind of ['audio', 'video'] as const) {
    const stopped = await signalling.nextEvent((e) => e.janus === 'media' && e.type === kind && e.receiving === false, 5000);
    assert.is(stopped.mid, kind === 'audio' ? '0' : '1');
  }

  await signalling.hangup();
  await signalling.nextEvent((e) => e.janus === 'hangup');
}

for (const [name, profiles, transport] of [
  ['HTTP, AEAD_AES_128_GCM', 'AEAD_AES_128_GCM', httpSignalling],
  ['WebSocket, AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_80', wsSignalling],
] as const) {
  test(`echotest over ${name}: 1000 packets per kind echoed intact`, async () => {
    const f = await startFerry({ media: { srtp_profiles: profiles } });
    const pc = loopbackPeer();
    try {
      const signalling = await transport(f);
      await echo(f, signalling, pc);
      const pcStats = f.ferry.webrtc.count;
      assert.is(pcStats, 0, 'PeerConnection gone after hangup');
      await signalling.close();
      assert.is(f.ferry.ports.leased, 0, 'port lease released');
      assert.is(f.ferry.engine.endpointCount(), 0, 'native endpoint closed');
    } finally {
      await closePeer(pc);
      await f.stop();
    }
  });
}

test.run();
