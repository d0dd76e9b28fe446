// A negotiation that fails releases its PeerConnection, native endpoint and port
// lease at once, through the same ending as `hangup`, with no `hangup` request;
// the handle then negotiates a correct offer. Refusals of bad SDP are 465 with a
// reason naming the offending line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { ferryStatus, type TestFerry } from '../helpers/ferry.js';
import type { Json } from '../helpers/http.js';
import { connectionState, loopbackPeer } from '../helpers/werift.js';
import { client, offerFrom, peerIn, withFerry, type Client } from './handles.js';

let tx = 0;
function message(c: Client, body: Json, jsep?: Json): { reply: Promise<Json>; transaction: string } {
  const transaction = `fn-${++tx}`;
  return { reply: c.ws.request({ janus: 'message', session_id: c.session, handle_id: c.handle, transaction, body, ...(jsep ? { jsep } : {}) }), transaction };
}

/** What ferry holds for media, from Admin `ferry_status`. */
async function held(f: TestFerry): Promise<{ peer_connections: number; native_endpoints: number; port_leases: number }> {
  const s = await ferryStatus(f);
  return { peer_connections: s['peer_connections'], native_endpoints: s['native_endpoints'], port_leases: s['port_leases'] };
}

const NOTHING = { peer_connections: 0, native_endpoints: 0, port_leases: 0 };

/** The handle still works: a correct werift offer is answered and ICE + DTLS complete (webrtcup). */
async function connects(f: TestFerry, c: Client, body: Json = { audio: true, video: true }): Promise<{ pc: RTCPeerConnection; event: Json }> {
  const pc = loopbackPeer();
  const { reply, transaction } = message(c, body, { type: 'offer', sdp: await offerFrom(pc, body['request'] ? 'sendonly' : 'sendrecv') });
  assert.is((await reply)['janus'], 'ack');
  const ev = await c.ws.nextEvent((e) => e['transaction'] === transaction && e['janus'] === 'event', 10_000);
  assert.ok(ev['jsep'], `an answer: ${JSON.stringify(ev['plugindata'])}`);
  await pc.setRemoteDescription(ev['jsep']);
  await connectionState(pc, 'connected');
  await c.ws.nextEvent((e) => e['janus'] === 'webrtcup' && e['sender'] === c.handle, 10_000);
  assert.equal(await held(f), { peer_connections: 1, native_endpoints: 1, port_leases: 1 });
  return { pc, event: ev };
}

/** Offer text with one line (or all lines matching) replaced. */
function replaced(sdp: string, re: RegExp, to: string): string {
  assert.ok(re.test(sdp), `the offer has ${re}`);
  return sdp.replace(re, to);
}

test('each bad offer → 465 naming the offending line, nothing held at once (no hangup), then a correct offer connects', () =>
  withFerry({ media: { max_mlines: 8 } }, async (f, peers) => {
    const pc = peerIn(peers);
    const c = await client(f);
    const good = await offerFrom(pc);
    const audioSection = /(m=audio[\s\S]*?)(?=m=video)/.exec(good)![1]!;
    const tooMany = good + Array.from({ length: 9 }, (_, i) => audioSection.replace(/^a=mid:.*$/m, `a=mid:extra${i}`).replace(/^a=ssrc.*\r\n/gm, '').replace(/^a=msid.*\r\n/gm, '')).join('');
    const bad: [string, string][] = [
      [replaced(good, /^m=audio 9 UDP\/TLS\/RTP\/SAVPF .*$/m, 'm=audio 9 RTP/AVP 0 8'), 'm=audio 9 RTP/AVP 0 8'],
      [replaced(good, /^a=fingerprint:.*$/gm, 'a=fingerprint:md5 00:11'), 'a=fingerprint:md5 00:11'],
      [replaced(good, /^a=ice-pwd:.*$/gm, 'a=ice-pwd:x'), 'a=ice-pwd:x'],
      [replaced(good, /^a=ice-ufrag:.*$/gm, 'a=ice-ufrag:abc'), 'a=ice-ufrag:abc'],
      [replaced(good, /^a=setup:actpass$/gm, 'a=setup:passive'), 'a=setup:passive'],
      [replaced(good, /^m=audio 9 UDP\/TLS\/RTP\/SAVPF .*$/m, 'm=audio 9 UDP/TLS/RTP/SAVPF 99999'), 'm=audio 9 UDP/TLS/RTP/SAVPF 99999'],
      [tooMany, 'm-line 9 of 11'],
    ];
    for (const [sdp, line] of bad) {
      const r = await message(c, { audio: true, video: true }, { type: 'offer', sdp }).reply;
      assert.is(r['janus'], 'error', JSON.stringify(r));
      assert.is(r['error'].code, 465, JSON.stringify(r));
      assert.ok(String(r['error'].reason).includes(line), `"${r['error'].reason}" names "${line}"`);
      assert.equal(await held(f), NOTHING, `nothing held after: ${line}`);
    }
    assert.is(c.ws.events.filter((e) => e['janus'] === 'hangup').length, 0, 'a refused first offer had no media to hang up');
    const live = (await connects(f, c)).pc;
    peers.push(live);
    // A connected call survives a refused re-offer: nothing of it was applied (as in a browser).
    const reoffer = replaced(live.localDescription!.sdp, /^a=ice-pwd:.*$/gm, 'a=ice-pwd:x');
    const r = await message(c, { audio: true, video: true }, { type: 'offer', sdp: reoffer }).reply;
    assert.is(r['error']?.code, 465, JSON.stringify(r));
    assert.equal(await held(f), { peer_connections: 1, native_endpoints: 1, port_leases: 1 }, 'the live call keeps its PeerConnection');
    assert.is(live.connectionState, 'connected');
    assert.is(c.ws.events.filter((e) => e['janus'] === 'hangup').length, 0, 'no hangup');
    await c.ws.request({ janus: 'destroy', session_id: c.session });
    await c.ws.close();
    assert.equal(await held(f), NOTHING);
  }));

test('an offer whose payload types have no rtpmap is answered with only its own payload types (static 0/8 as PCMU/PCMA)', () =>
  withFerry({}, async (f, peers) => {
    const pc = peerIn(peers);
    const c = await client(f);
    // The probe: audio lists 0 8 and video lists 8, each with no rtpmap of its own; the offer keeps
    // werift's rtpmaps for opus and VP8, which the m-lines no longer list.
    let sdp = await offerFrom(pc);
    sdp = replaced(sdp, /^m=audio (\d+) UDP\/TLS\/RTP\/SAVPF .*$/m, 'm=audio $1 UDP/TLS/RTP/SAVPF 0 8');
    sdp = replaced(sdp, /^m=video (\d+) UDP\/TLS\/RTP\/SAVPF .*$/m, 'm=video $1 UDP/TLS/RTP/SAVPF 8');
    assert.match(sdp, /^a=rtpmap:\d+ opus\/48000\/2/im);
    assert.match(sdp, /^a=rtpmap:\d+ VP8\/90000/im);
    const { reply, transaction } = message(c, { audio: true, video: true }, { type: 'offer', sdp });
    assert.is((await reply)['janus'], 'ack');
    const ev = await c.ws.nextEvent((e) => e['transaction'] === transaction && e['janus'] === 'event', 10_000);
    const answer = String(ev['jsep']?.sdp);
    const audio = /^m=audio (\d+) (\S+) (.*)$/m.exec(answer)!;
    const video = /^m=video (\d+) (\S+) (.*)$/m.exec(answer)!;
    assert.is(audio[3], '0', 'PCMU, the first static type ferry prefers');
    assert.match(answer, /^a=rtpmap:0 PCMU\/8000\r?$/m);
    assert.is(video[1], '0', 'video rejected: 8 is PCMA, not a video codec');
    assert.is(video[3], '8', 'the rejected m-line lists only what the offer had');
    assert.not.match(answer, /opus|VP8/i, 'no codec the m-lines did not list');
    const listed = new Set(['0', '8']);
    for (const m of answer.matchAll(/^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)/gm)) assert.ok(listed.has(m[1]!), `answer names only offered payload types (${m[0]})`);
    await c.ws.request({ janus: 'destroy', session_id: c.session });
    await c.ws.close();
  }));

test('a valid offer the plugin refuses (error event) releases everything at once; hangup event; then a correct offer connects', () =>
  withFerry({}, async (f, peers) => {
    const c = await client(f);
    // Two ways EchoTest refuses an offer the SDP checks pass: a bad request field, and no codec it can answer with.
    const noCodec = (sdp: string) =>
      replaced(replaced(replaced(sdp, /^(m=audio \S+ \S+ \d+).*$/m, '$1'), /^a=rtpmap:(\d+) opus\//im, 'a=rtpmap:$1 speex/'), /^a=rtpmap:(\d+) vp8\//im, 'a=rtpmap:$1 mpv/');
    const cases: [Json, (sdp: string) => string, RegExp][] = [
      [{ audio: 'yes' }, (s) => s, /audio/],
      [{ audio: true, video: true }, noCodec, /m-line/],
    ];
    for (const [body, mangle, why] of cases) {
      const pc = peerIn(peers);
      const { reply, transaction } = message(c, body, { type: 'offer', sdp: mangle(await offerFrom(pc)) });
      assert.is((await reply)['janus'], 'ack');
      const ev = await c.ws.nextEvent((e) => e['transaction'] === transaction && e['janus'] === 'event', 10_000);
      assert.ok(ev['plugindata'].data['error_code'], JSON.stringify(ev));
      assert.match(String(ev['plugindata'].data['error']), why);
      assert.is(ev['jsep'], undefined);
      // The hangup happened as the error event went out: the Admin request after it sees nothing held.
      assert.equal(await held(f), NOTHING, `nothing held after ${JSON.stringify(body)}`);
      const hangup = await c.ws.nextEvent((e) => e['janus'] === 'hangup' && e['sender'] === c.handle);
      assert.match(String(hangup['reason']), /Negotiation failed/);
    }
    peers.push((await connects(f, c)).pc);
    await c.ws.request({ janus: 'destroy', session_id: c.session });
    await c.ws.close();
    assert.equal(await held(f), NOTHING);
  }));

test('VideoRoom: an offer with a refused request, then a refused answer from a subscriber, release at once', () =>
  withFerry({}, async (f, peers) => {
    const pub = await client(f, 'janus.plugin.videoroom');
    // `publish` before joining: the plugin refuses it with an error event; the offer's PeerConnection goes.
    const early = peerIn(peers);
    const { reply, transaction } = message(pub, { request: 'publish' }, { type: 'offer', sdp: await offerFrom(early, 'sendonly') });
    assert.is((await reply)['janus'], 'ack');
    const ev = await pub.ws.nextEvent((e) => e['transaction'] === transaction && e['janus'] === 'event', 10_000);
    assert.ok(ev['plugindata'].data['error_code'], JSON.stringify(ev));
    assert.equal(await held(f), NOTHING);
    // The handle then publishes for real.
    const published = await connects(f, pub, { request: 'joinandconfigure', ptype: 'publisher', room: 1234, display: 'p' });
    peers.push(published.pc);
    assert.is(published.event['plugindata'].data['videoroom'], 'joined');
    const feedId = published.event['plugindata'].data['id'] as number;

    // Subscribers whose answers are refused: an answer may not say actpass (RFC 8842 §5.3), nor
    // leave out an offered m-line (RFC 3264 §6). Their PeerConnections go; the publisher's stays.
    const badAnswers: [(sdp: string) => string, string][] = [
      [(sdp) => replaced(sdp, /^a=setup:\w+$/gm, 'a=setup:actpass'), 'a=setup:actpass'],
      [(sdp) => sdp.slice(0, sdp.lastIndexOf('m=')), 'the answer has 1 m-lines, the offer had 2'],
    ];
    const subs: Client[] = [];
    for (const [mangle, reason] of badAnswers) {
      const sub = await client(f, 'janus.plugin.videoroom');
      subs.push(sub);
      const joined = message(sub, { request: 'join', ptype: 'subscriber', room: 1234, streams: [{ feed: feedId }] });
      assert.is((await joined.reply)['janus'], 'ack');
      const offer = await sub.ws.nextEvent((e) => e['transaction'] === joined.transaction && e['janus'] === 'event', 10_000);
      assert.is(offer['jsep']?.type, 'offer', JSON.stringify(offer));
      assert.is((String(offer['jsep'].sdp).match(/^m=/gm) ?? []).length, 2, 'audio and video offered');
      const spc = peerIn(peers);
      await spc.setRemoteDescription(offer['jsep']);
      await spc.setLocalDescription(await spc.createAnswer());
      assert.equal(await held(f), { peer_connections: 2, native_endpoints: 2, port_leases: 2 });
      const r = await message(sub, { request: 'start' }, { type: 'answer', sdp: mangle(spc.localDescription!.sdp) }).reply;
      assert.is(r['error']?.code, 465, JSON.stringify(r));
      assert.ok(String(r['error'].reason).includes(reason), `"${r['error'].reason}" names "${reason}"`);
      assert.equal(await held(f), { peer_connections: 1, native_endpoints: 1, port_leases: 1 }, 'only the publisher left');
      await sub.ws.nextEvent((e) => e['janus'] === 'hangup' && e['sender'] === sub.handle);
    }
    for (const c of [...subs, pub]) {
      await c.ws.request({ janus: 'destroy', session_id: c.session });
      await c.ws.close();
    }
    assert.equal(await held(f), NOTHING);
  }));

test.run();
