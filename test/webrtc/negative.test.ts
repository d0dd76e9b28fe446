// What a broken or hostile WebRTC peer gets: a clear Janus error or a hangup
// with a reason, never a crash, a stuck handle or a leaked port.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import type { ConfigOverrides } from '../../src/config/Config.js';
import type { Json } from '../helpers/http.js';
import type { TestFerry } from '../helpers/ferry.js';
import { bindingRequest, stunErrorCode, stunType } from '../helpers/stun.js';
import { udpPeer, type UdpPeer } from '../helpers/udp.js';
import { client, offerFrom, peerIn, withFerry, type Client } from './handles.js';


async function sendOffer(c: Client, sdp: string): Promise<Json> {
  return c.ws.request({ janus: 'message', session_id: c.session, handle_id: c.handle, body: { audio: true, video: true }, jsep: { type: 'offer', sdp } });
}

/** Sends the peer's offer, returns ferry's answer and what a raw ICE peer needs to check against it. */
async function negotiate(c: Client, pc: RTCPeerConnection): Promise<{ answer: string; port: number; username: string; pwd: string }> {
  const ack = await sendOffer(c, await offerFrom(pc));
  assert.is(ack['janus'], 'ack', JSON.stringify(ack));
  const ev = await c.ws.nextEvent((e) => e['janus'] === 'event' && e['jsep']);
  const answer = String(ev['jsep'].sdp);
  const attr = (sdp: string, name: string) => new RegExp(`^a=${name}:(.*)$`, 'm').exec(sdp)![1]!.trim();
  return {
    answer,
    port: Number(/^m=audio (\d+)/m.exec(answer)![1]),
    // RFC 8445 §7.2.2: USERNAME is "<receiver's ufrag>:<sender's ufrag>".
    username: `${attr(answer, 'ice-ufrag')}:${attr(pc.localDescription!.sdp, 'ice-ufrag')}`,
    pwd: attr(answer, 'ice-pwd'),
  };
}

/**
 * Runs `body` with a ferry (`overrides`), an EchoTest handle that has negotiated a werift peer's
 * offer, and a raw UDP peer for hand-made STUN and DTLS against ferry's answer; whatever happens,
 * closes both peers and stops the ferry.
 */
function withNegotiatedRawPeer(
  overrides: ConfigOverrides,
  body: (t: { f: TestFerry; c: Client; pc: RTCPeerConnection; raw: UdpPeer } & Awaited<ReturnType<typeof negotiate>>) => Promise<void>,
): Promise<void> {
  return withFerry(overrides, async (f, peers) => {
    const pc = peerIn(peers);
    const raw = await udpPeer();
    try {
      const c = await client(f);
      await body({ f, c, pc, raw, ...(await negotiate(c, pc)) });
    } finally {
      await raw.close();
    }
  });
}

async function noLeaks(f: TestFerry, c: Client): Promise<void> {
  await c.ws.request({ janus: 'destroy', session_id: c.session });
  await c.ws.close();
  assert.is(f.ferry.webrtc.count, 0, 'no PeerConnection left');
  assert.is(f.ferry.ports.leased, 0, 'no port lease left');
  assert.is(f.ferry.engine.endpointCount(), 0, 'no native endpoint left');
}

test('SDP without fingerprint or ICE credentials → 465', () =>
  withFerry({}, async (f, peers) => {
    const pc = peerIn(peers);
    const c = await client(f);
    const sdp = await offerFrom(pc);
    for (const strip of [/^a=fingerprint:.*\r\n/gm, /^a=ice-pwd:.*\r\n/gm, /^a=ice-ufrag:.*\r\n/gm]) {
      const r = await sendOffer(c, sdp.replace(strip, ''));
      assert.is(r['janus'], 'error', JSON.stringify(r));
      assert.is(r['error'].code, 465);
    }
    const garbage = await sendOffer(c, 'v=0\r\nthis is not sdp\r\n');
    assert.is(garbage['error'].code, 465);
    await noLeaks(f, c);
  }));

test('certificate fingerprint mismatch → no media, hangup with reason', () =>
  withFerry({}, async (f, peers) => {
    const pc = peerIn(peers);
    const c = await client(f);
    const sdp = (await offerFrom(pc)).replace(/^(a=fingerprint:sha-256 )([0-9A-F]{2})/gim, (_m, p, b) => `${p}${b === '00' ? '01' : '00'}`);
    const ack = await sendOffer(c, sdp);
    assert.is(ack['janus'], 'ack');
    const ev = await c.ws.nextEvent((e) => e['janus'] === 'event' && e['jsep']);
    await pc.setRemoteDescription(ev['jsep']);
    const hangup = await c.ws.nextEvent((e) => e['janus'] === 'hangup', 10_000);
    assert.match(String(hangup['reason']), /fingerprint/i);
    assert.is(c.ws.events.filter((e) => e['janus'] === 'webrtcup').length, 0, 'never webrtcup');
    const stats = f.ferry.engine.stats();
    assert.is(stats.endpoints.length, 0, 'endpoint closed by the hangup');
    await noLeaks(f, c);
  }));

test('wrong ICE password → STUN 401, no media, hangup after the connect timeout', () =>
  withNegotiatedRawPeer({ media: { connect_timeout: 2 } }, async ({ f, c, pc, raw, answer, port, username }) => {
    // A raw ICE peer with the wrong password gets 401 Unauthorized (RFC 8489 §9.1.3).
    await raw.send(bindingRequest(username, 'definitely-not-the-password'), port);
    const [reply] = await raw.waitFor(1, 2000);
    assert.ok(reply, 'a STUN reply');
    assert.is(stunType(reply!), 0x0111, 'error response');
    assert.is(stunErrorCode(reply!), 401);
    // werift with a tampered password never connects; ferry hangs up on its own.
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.replace(/^a=ice-pwd:.*$/gm, 'a=ice-pwd:0123456789abcdef0123456789abcdef') });
    const hangup = await c.ws.nextEvent((e) => e['janus'] === 'hangup', 10_000);
    assert.match(String(hangup['reason']), /timeout/i);
    assert.is(c.ws.events.filter((e) => e['janus'] === 'webrtcup').length, 0);
    await noLeaks(f, c);
  }));

test('DTLS garbage and truncated records from a validated address are dropped; ferry stays up', () =>
  withNegotiatedRawPeer({ media: { connect_timeout: 3 } }, async ({ f, c, raw, port, username, pwd }) => {
    await raw.send(bindingRequest(username, pwd), port);
    const [ok] = await raw.waitFor(1, 2000);
    assert.is(stunType(ok!), 0x0101, 'validated by a real check');
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 300; i++) {
      const len = 1 + (rnd() * 3) % 200;
      const b = Buffer.alloc(len);
      for (let k = 0; k < len; k++) b[k] = rnd();
      b[0] = 20 + (rnd() % 44); // a DTLS content type byte (RFC 7983)
      if (i % 3 === 0 && len > 13) { b[1] = 0xfe; b[2] = 0xfd; } // DTLS 1.2 version, junk after
      await raw.send(b, port);
    }
    await new Promise((r) => setTimeout(r, 300));
    const stats = f.ferry.engine.stats();
    assert.ok(stats.endpoints[0]!.dtlsIn >= 300, 'records reached the DTLS layer');
    assert.is(stats.workers[0]!.panics, 0);
    // The handle either hung up cleanly or is still usable: a request on it still gets an answer.
    const r = await c.ws.request({ janus: 'message', session_id: c.session, handle_id: c.handle, body: { audio: false } });
    assert.ok(r['janus'] === 'ack' || r['janus'] === 'success', JSON.stringify(r));
    await noLeaks(f, c);
  }));

test('consent lost (RFC 7675) → hangup with reason, everything released', () =>
  withNegotiatedRawPeer({ media: { consent_timeout: 1, connect_timeout: 30 } }, async ({ f, c, raw, port, username, pwd }) => {
    // One nominating check, then silence: consent expires after the configured second.
    await raw.send(bindingRequest(username, pwd, true), port);
    await raw.waitFor(1, 2000);
    const hangup = await c.ws.nextEvent((e) => e['janus'] === 'hangup', 5000);
    assert.match(String(hangup['reason']), /consent/i);
    await noLeaks(f, c);
  }));

test.run();
