// WHIP (RFC 9725) and WHEP on the Janus HTTP listener, with werift peers that use only fetch:
// a WHIP publisher is a VideoRoom publisher a Janus API subscriber receives; a WHEP player plays
// a VideoRoom publisher and a Streaming mountpoint; bearer tokens, bad offers, PATCH (trickle,
// ICE restart), DELETE, a publisher that never connects times out through the one ending, and
// 10^2 WHIP sessions come and go leaving nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, type RTCPeerConnection, type RtpPacket } from 'werift';

import { ferryStatus } from '../helpers/ferry.js';
import { connectionState, loopbackPeer } from '../helpers/werift.js';
import { JanusClient, ScriptedSender, closeAll, startStreamingFerry, tagOf, until, type StreamingFerry } from '../streaming/harness.js';
import { VrClient, countDecryptFailures, payload, sendRtp, subscribe } from '../videoroom-e2e/harness.js';

const ROOM = 4321;

async function post(st: StreamingFerry, path: string, sdp: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${st.f.origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/sdp', ...headers }, body: sdp });
}

/** A werift peer that sends audio + video (a WHIP encoder) or receives them (a WHEP player); its offer. */
async function offerer(peers: RTCPeerConnection[], direction: 'sendonly' | 'recvonly') {
  const pc = loopbackPeer();
  peers.push(pc);
  const received = new Map<string, RtpPacket[]>();
  const audio = pc.addTransceiver(direction === 'sendonly' ? new MediaStreamTrack({ kind: 'audio' }) : 'audio', { direction });
  const video = pc.addTransceiver(direction === 'sendonly' ? new MediaStreamTrack({ kind: 'video' }) : 'video', { direction });
  for (const t of [audio, video]) {
    t.onTrack.subscribe((track) => {
      const mid = t.mid ?? '';
      received.set(mid, received.get(mid) ?? []);
      track.onReceiveRtp.subscribe((rtp) => received.get(mid)!.push(rtp));
    });
  }
  await pc.setLocalDescription(await pc.createOffer());
  return { pc, audio, video, received, sdp: pc.localDescription!.sdp };
}

test('WHIP: bearer = room secret; the publisher is a VideoRoom publisher a Janus subscriber receives; a WHEP player plays it; DELETE ends it', async () => {
  const st = await startStreamingFerry();
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(st.f);
    await admin.sync({ request: 'create', room: ROOM, secret: 'rs' });
    const pub = await offerer(peers, 'sendonly');
    assert.is((await post(st, `/whip/endpoint/${ROOM}`, pub.sdp)).status, 401, 'no token');
    const wrong = await post(st, `/whip/endpoint/${ROOM}`, pub.sdp, { authorization: 'Bearer nope' });
    assert.is(wrong.status, 403);
    assert.is((await post(st, '/whip/endpoint/999', pub.sdp, { authorization: 'Bearer rs' })).status, 404, 'no such room');
    const r = await post(st, `/whip/endpoint/${ROOM}?display=encoder`, pub.sdp, { authorization: 'Bearer rs' });
    assert.is(r.status, 201, await r.clone().text());
    assert.is(r.headers.get('content-type'), 'application/sdp');
    const location = r.headers.get('location')!;
    assert.match(location, /^\/whip\/resource\/[0-9a-f]{24}$/);
    assert.match(String(r.headers.get('etag')), /^"[0-9a-f]{16}"$/);
    assert.is(r.headers.get('accept-patch'), 'application/trickle-ice-sdpfrag');
    await pub.pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
    await connectionState(pub.pc, 'connected');
    // Janus API clients see a publisher named "encoder" with audio and video.
    const listed = await admin.sync({ request: 'listparticipants', room: ROOM });
    const feed = (listed['participants'] as Record<string, unknown>[]).find((p) => p['display'] === 'encoder');
    assert.ok(feed && feed['publisher'] === true, JSON.stringify(listed));
    const sub = await subscribe(st.f, ROOM, [{ feed: feed!['id'] }], peers);
    // And a WHEP player on the room (secret too) gets the same feed.
    const player = await offerer(peers, 'recvonly');
    const whep = await post(st, `/whep/endpoint/${ROOM}`, player.sdp, { authorization: 'Bearer rs' });
    assert.is(whep.status, 201, await whep.clone().text());
    await player.pc.setRemoteDescription({ type: 'answer', sdp: await whep.text() });
    await connectionState(player.pc, 'connected');
    assert.ok(await until(() => st.f.ferry.webrtc.count === 3), 'publisher, subscriber and player connected');
    await new Promise((res) => setTimeout(res, 300));
    for (let i = 0; i < 60; i++) {
      await sendRtp(pub.audio.sender, 10 + i, i * 960, payload('a', i, 100));
      await sendRtp(pub.video.sender, 10 + i, i * 3000, payload('v', i, 800), true);
    }
    assert.ok(await until(() => sub.received.get('1')!.length >= 60 && sub.received.get('0')!.length >= 60), 'the Janus subscriber receives the WHIP publisher');
    const mids = [...player.received.keys()];
    assert.ok(await until(() => [...player.received.values()].reduce((n, p) => n + p.length, 0) >= 120), `the WHEP player receives it: ${mids}`);
    assert.is(sub.decryptFailures(), 0);
    assert.is(countDecryptFailures(player.pc)(), 0);
    assert.equal(st.f.ferry.gateway.whipWhep?.status(), { whip: 1, whep: 1 });
    // DELETE: the publisher leaves the room; its PeerConnection and port go.
    const unpublished = sub.client.ws.nextEvent((e) => e['plugindata']?.data?.unpublished === feed!['id'] || e['janus'] === 'hangup' || e['plugindata']?.data?.updated === true, 10_000).catch(() => null);
    const del = await fetch(`${st.f.origin}${location}`, { method: 'DELETE' });
    assert.is(del.status, 200);
    assert.is((await fetch(`${st.f.origin}${location}`, { method: 'DELETE' })).status, 404, 'gone');
    await unpublished;
    const listedAfter = await admin.sync({ request: 'listparticipants', room: ROOM });
    assert.not.ok((listedAfter['participants'] as Record<string, unknown>[]).some((p) => p['display'] === 'encoder'), 'the WHIP publisher left the room');
    await sub.client.close();
    await admin.close();
    const whepLocation = whep.headers.get('location')!;
    assert.is((await fetch(`${st.f.origin}${whepLocation}`, { method: 'DELETE' })).status, 200);
    assert.ok(await until(() => st.f.ferry.webrtc.count === 0 && st.f.ferry.gateway.registry.sessionCount === 0), 'nothing left');
    assert.is(st.f.ferry.ports.leased, 0);
  } finally {
    await closeAll(peers);
    await st.stop();
  }
});

test('WHEP on a mountpoint: fetch-only player, PATCH trickle (204) and ICE restart (200, new credentials), bad requests get 4xx with a reason', async () => {
  const st = await startStreamingFerry();
  const peers: RTCPeerConnection[] = [];
  let sender: ScriptedSender | null = null;
  try {
    const api = await JanusClient.open(st.f);
    const created = await api.sync({ request: 'create', type: 'rtp', id: 55, secret: 'ms', media: [{ type: 'video', mid: 'v', codec: 'vp8', pt: 100, port: 0 }] });
    sender = await ScriptedSender.open(created['stream'].ports[0].port, { ssrc: 5, tag: 'mp' });
    sender.start(30);
    const player = await offerer(peers, 'recvonly');
    assert.is((await post(st, '/whep/endpoint/55', player.sdp)).status, 401);
    const r = await post(st, '/whep/endpoint/55', player.sdp, { authorization: 'Bearer ms' });
    assert.is(r.status, 201, await r.clone().text());
    const answer = await r.text();
    assert.match(answer, /a=sendonly/);
    assert.match(answer, /VP8\/90000/);
    await player.pc.setRemoteDescription({ type: 'answer', sdp: answer });
    await connectionState(player.pc, 'connected');
    const video = () => [...player.received.values()].flat();
    assert.ok(await until(() => video().length >= 10), 'the player receives the mountpoint');
    assert.ok(video().every((p) => tagOf(p.payload) === 'mp'));
    const location = r.headers.get('location')!;
    const etag = r.headers.get('etag')!;
    const url = `${st.f.origin}${location}`;
    const patch = (body: string, headers: Record<string, string> = {}) => fetch(url, { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag', 'if-match': etag, ...headers }, body });
    const ufrag = /a=ice-ufrag:(\S+)/.exec(player.sdp)![1]!;
    const pwd = /a=ice-pwd:(\S+)/.exec(player.sdp)![1]!;
    const trickle = await patch(`a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n`);
    assert.is(trickle.status, 204);
    assert.is((await patch('a=end-of-candidates\r\n', { 'if-match': '"stale"' })).status, 412);
    assert.is((await patch('x', { 'content-type': 'text/plain' })).status, 415);
    // ICE restart: new credentials from the player, ferry's new ones back, a new ETag.
    const restart = await patch('a=ice-ufrag:newu\r\na=ice-pwd:newpasswordnewpassword12\r\n', { 'if-match': '*' });
    assert.is(restart.status, 200, await restart.clone().text());
    assert.is(restart.headers.get('content-type'), 'application/trickle-ice-sdpfrag');
    const frag = await restart.text();
    const oldLocal = /a=ice-ufrag:(\S+)/.exec(answer)![1];
    const newLocal = /a=ice-ufrag:(\S+)/.exec(frag)?.[1];
    assert.ok(newLocal && newLocal !== oldLocal, `ferry's credentials changed: ${frag}`);
    assert.match(frag, /a=candidate:/);
    assert.is.not(restart.headers.get('etag'), etag);
    assert.is(st.plugin.stats().viewers, 1, 'still one viewer after the restart');
    assert.is((await fetch(url, { method: 'DELETE' })).status, 200);
    assert.ok(await until(() => st.plugin.stats().viewers === 0 && st.f.ferry.webrtc.count === 0), 'the viewer is gone');

    // Bad requests: 4xx with a reason, nothing left behind.
    const bad = async (path: string, body: string, headers: Record<string, string> = {}) => {
      const res = await post(st, path, body, headers);
      return [res.status, await res.text()] as const;
    };
    assert.equal((await bad('/whip/endpoint/1', '', {}))[0], 400);
    assert.equal((await bad('/whip/endpoint/1', 'hello'))[0], 400);
    assert.equal((await bad('/whip/endpoint/1', player.sdp, { 'content-type': 'text/plain' }))[0], 415);
    assert.equal((await bad('/whip/endpoint/abc', player.sdp))[0], 404);
    const vr = await VrClient.open(st.f);
    await vr.sync({ request: 'create', room: 77 });
    const noMedia = await bad('/whip/endpoint/77', 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n');
    assert.is(noMedia[0], 400);
    const broken = player.sdp.replace(/a=fingerprint:sha-256 \S+/, 'a=fingerprint:sha-256 00:11');
    const refused = await bad('/whip/endpoint/77', broken);
    assert.is(refused[0], 400);
    assert.match(refused[1], /fingerprint/i, 'the reason names what is wrong');
    const noPublisher = await bad('/whep/endpoint/77', player.sdp);
    assert.equal(noPublisher, [404, 'Nobody publishes in room 77']);
    assert.is((await fetch(`${st.f.origin}/whip/endpoint/77`)).status, 405);
    const options = await fetch(`${st.f.origin}/whip/endpoint/77`, { method: 'OPTIONS' });
    assert.is(options.status, 204);
    assert.is(options.headers.get('accept-post'), 'application/sdp');
    assert.match(String(options.headers.get('access-control-expose-headers')), /Location/);
    assert.is((await fetch(`${st.f.origin}/whip/resource/abc`, { method: 'DELETE' })).status, 404);
    await vr.close();
    await api.close();
    assert.ok(await until(() => st.f.ferry.gateway.registry.sessionCount === 0 && st.f.ferry.webrtc.count === 0), 'no session left by refused requests');
    assert.is(st.f.ferry.ports.leased, 1, "only the mountpoint's port");
  } finally {
    await sender?.close();
    await closeAll(peers);
    await st.stop();
  }
});

test('a WHIP publisher that never connects ends by the connect timeout through the one ending; 10^2 WHIP sessions come and go', async () => {
  const st = await startStreamingFerry({ media: { connect_timeout: 1 } });
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(st.f);
    await admin.sync({ request: 'create', room: ROOM, publishers: 100 });
    const pub = await offerer(peers, 'sendonly');
    const r = await post(st, `/whip/endpoint/${ROOM}`, pub.sdp);
    assert.is(r.status, 201);
    assert.equal(st.f.ferry.gateway.whipWhep?.status(), { whip: 1, whep: 0 });
    // Never answered: no ICE, no DTLS. After media.connect_timeout the PeerConnection hangs up and
    // the resource's session ends; the client's DELETE then finds nothing.
    assert.ok(await until(() => st.f.ferry.gateway.whipWhep?.status().whip === 0, 10_000), 'the resource ended');
    assert.is((await fetch(`${st.f.origin}${r.headers.get('location')}`, { method: 'DELETE' })).status, 404);
    // Churn: POST and DELETE, pipelined ten at a time.
    for (let wave = 0; wave < 10; wave++) {
      const created = await Promise.all(Array.from({ length: 10 }, () => post(st, `/whip/endpoint/${ROOM}`, pub.sdp)));
      for (const c of created) assert.is(c.status, 201, await c.clone().text());
      const deleted = await Promise.all(created.map((c) => fetch(`${st.f.origin}${c.headers.get('location')}`, { method: 'DELETE' })));
      for (const d of deleted) assert.is(d.status, 200);
    }
    await admin.close();
    assert.ok(await until(() => st.f.ferry.gateway.registry.sessionCount === 0 && st.f.ferry.webrtc.count === 0), 'no session or PeerConnection left');
    const status = await ferryStatus(st.f);
    assert.equal([status['sessions'], status['peer_connections'], status['port_leases']], [0, 0, 0], JSON.stringify(status));
    assert.equal(st.f.ferry.gateway.whipWhep?.status(), { whip: 0, whep: 0 });
  } finally {
    await closeAll(peers);
    await st.stop();
  }
});

test.run();


