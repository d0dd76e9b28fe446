// Simulcast end to end. The werift publisher announces three video SSRCs in an
// a=ssrc-group:SIM (RFC 5576 grouping, lowest layer first, as browsers do
// with SSRC simulcast) and sends all three layers at once over its DTLS
// transport; a werift subscriber moves between substreams with `configure`
// and its one video stream stays continuous (one SSRC, seq +1, timestamps
// forward) while its payloads come from the layer it asked for. The layers carry
// VP8 payload descriptors (RFC 7741 §4.2) with real keyframe flags (§4.3), each
// layer's keyframe at another frame of the phase: after each change the old
// layer keeps flowing until the new layer's keyframe, which is the first packet
// of the new layer the subscriber sees.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, useSdesMid, useSdesRTPStreamId, type RTCPeerConnection, type RTCRtpSender } from 'werift';

import { assertContinuous } from './checks.js';
import { openClientAndPeer, payload, subscribe, until, withRoom, type VrClient, type WeriftSubscriber, type WsEndpoint } from './harness.js';
import type { Json } from '../helpers/http.js';
import { connectionState } from '../helpers/werift.js';

const PHASES = 30;
const FRAMES = 10;
/** Frame of each phase at which layer L sends a keyframe: distinct per layer. */
const keyframeAt = (layer: number) => 2 + layer * 2;
/** Octets of VP8 framing before the test's tag. */
const VP8_PREFIX = 4;

/**
 * A VP8 RTP payload: descriptor with S=1, PID=0 (start of partition 0), then the payload
 * header whose P bit is the inverse key-frame flag, then `body`.
 */
function vp8Payload(keyframe: boolean, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x10, keyframe ? 0x10 : 0x11, 0x02, 0x00]), body]);
}

function isVp8Keyframe(p: Buffer): boolean {
  return p.length > 1 && (p[0]! & 0x17) === 0x10 && (p[1]! & 0x01) === 0;
}

/** Adds two SSRCs and a SIM group after the video m-line's own SSRC. */
function withSsrcSimulcast(sdp: string, extra: [number, number]): { sdp: string; layers: number[] } {
  const sections = sdp.split(/\r\n(?=m=)/);
  const i = sections.findIndex((s) => s.startsWith('m=video'));
  const video = sections[i]!;
  const first = /a=ssrc:(\d+) cname:(\S+)/.exec(video);
  if (!first) throw new Error('werift offered no video SSRC');
  const layers = [Number(first[1]), ...extra];
  const added = [`a=ssrc-group:SIM ${layers.join(' ')}`, ...extra.map((s) => `a=ssrc:${s} cname:${first[2]}`)].join('\r\n');
  sections[i] = video.replace(/\r\n$/, '') + '\r\n' + added + '\r\n';
  return { sdp: sections.join('\r\n'), layers };
}

/** Applies ferry's answer in `joined`, waits for ICE + DTLS and `webrtcup`; returns the publisher's id. */
async function connected(client: VrClient, pc: RTCPeerConnection, joined: { data: Json; jsep?: Json }): Promise<number> {
  await pc.setRemoteDescription(joined.jsep as never);
  await connectionState(pc, 'connected');
  await client.core('webrtcup');
  return joined.data['id'] as number;
}

/**
 * A werift publisher joined to `room` with SSRC simulcast: its video m-line (after an audio one
 * when `withAudio`) announces its own SSRC and `extra` in a SIM group. `sendLayer` writes a
 * layer's packet (VP8 payload type, marker set) on its transport with that layer's SSRC.
 */
async function publishSsrcSimulcast(
  f: WsEndpoint,
  room: number,
  peers: RTCPeerConnection[],
  extra: [number, number],
  withAudio: boolean,
): Promise<{ pubId: number; video: RTCRtpSender; sendLayer: (layer: number, seq: number, ts: number, body: Buffer) => Promise<void> }> {
  const { client, pc } = await openClientAndPeer(f, peers);
  if (withAudio) pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const { sdp, layers } = withSsrcSimulcast(pc.localDescription!.sdp, extra);
  const joined = await client.call({ request: 'joinandconfigure', ptype: 'publisher', room }, { type: 'offer', sdp });
  const pubId = await connected(client, pc, joined);
  const transport = video.sender.dtlsTransport;
  const pt = video.sender.codec!.payloadType;
  const sendLayer = (layer: number, seq: number, ts: number, body: Buffer) =>
    transport.sendRtp(body, new RtpHeader({ payloadType: pt, ssrc: layers[layer]!, sequenceNumber: seq, timestamp: ts, marker: true })).then(() => undefined);
  return { pubId, video: video.sender, sendLayer };
}

/**
 * Sends FRAMES frames of all three layers per phase (layer order: highest
 * first, so arrival order says nothing about quality), moving the subscriber
 * to another substream between phases; checks it got exactly the wanted
 * layer, continuously, and was told of each change.
 */
async function switchLayers(sub: WeriftSubscriber, send: (layer: number, seq: number, ts: number, body: Buffer) => Promise<void>): Promise<void> {
  const seq = [1, 1, 1];
  let ts = 0;
  const wanted: number[] = [];
  /** Indices into the received packets where a new layer starts. */
  const changes: number[] = [];
  let substream = 2; // Janus's default: the best layer
  for (let phase = 0; phase < PHASES; phase++) {
    let relayed = substream; // the layer feeding the subscriber until the new one's keyframe
    if (phase > 0) {
      substream = (substream + 1 + (phase % 2)) % 3;
      const seen = sub.client.ws.events.length;
      const configured = await sub.client.call({ request: 'configure', streams: [{ mid: '0', substream }] });
      assert.is(configured.data['configured'], 'ok');
      // Janus announces the layer when the subscriber gets it, i.e. at the new layer's keyframe
      // (and the first layer when it starts, as Janus does).
      const early = sub.client.ws.events.slice(seen).filter((e) => e['sender'] === sub.client.handleId && e['plugindata']?.data?.['substream'] !== undefined);
      assert.not.ok(early.length, `no substream event before the keyframe (phase ${phase}, substream ${substream}): ${JSON.stringify(early)}`);
    }
    const before = sub.received.get('0')!.length;
    for (let f = 0; f < FRAMES; f++) {
      ts += 3000;
      // Every layer of a frame has the frame's timestamp; each layer its own SSRC and sequence.
      for (const layer of [2, 1, 0]) {
        const keyframe = f === keyframeAt(layer);
        const body = payload(`layer${layer}`, phase * FRAMES + f, 300 + layer * 300);
        await send(layer, seq[layer]!++, ts, vp8Payload(keyframe, body));
        // The old layer bridges until the new layer's keyframe, packet by packet: when the
        // old layer is sent first within a frame, the subscriber gets both of that frame.
        if (layer === substream && keyframe && relayed !== substream) {
          relayed = substream;
          changes.push(wanted.length);
        }
        if (layer === relayed) wanted.push(layer);
      }
    }
    const expected = wanted.length;
    const ok = await until(() => sub.received.get('0')!.length >= expected, 5000, 2);
    assert.ok(ok, `phase ${phase} (substream ${substream}): ${sub.received.get('0')!.length - before} of ${expected - before}`);
    if (phase === 0) {
      // Janus announces the first layer a subscriber gets, too.
      await sub.client.ws.nextEvent((e) => e['sender'] === sub.client.handleId && e['plugindata']?.data?.['substream'] === 2, 2000);
    }
    if (phase > 0) {
      await sub.client.ws.nextEvent((e) => e['sender'] === sub.client.handleId && e['plugindata']?.data?.['substream'] === substream, 2000);
    }
  }
  const got = sub.received.get('0')!;
  assert.is(got.length, wanted.length, 'exactly one layer relayed at a time');
  got.forEach((p, i) => {
    const tag = p.payload.subarray(VP8_PREFIX, VP8_PREFIX + 6).toString();
    if (tag !== `layer${wanted[i]}`) assert.unreachable(`packet ${i} from ${tag}, wanted layer${wanted[i]}`);
  });
  assert.is(changes.length, PHASES - 1, 'every phase changes layer');
  for (const i of changes) {
    if (!isVp8Keyframe(got[i]!.payload)) assert.unreachable(`packet ${i}, the first of a new layer, is not a keyframe`);
    if (i > 0 && isVp8Keyframe(got[i - 1]!.payload)) assert.unreachable(`packet ${i - 1}, the old layer's last, should be an inter frame here`);
  }
  assertContinuous(got, 'simulcast video');
  assert.is(sub.decryptFailures(), 0);
}

/**
 * The switching tests send each phase's frames as one burst, at rates no link carries: the
 * subscriber's bandwidth estimate would (rightly) move it down by itself. They test the layers
 * a subscriber asks for, so estimation is off; the layer choice by estimate has its own tests
 * (native/crates/engine/tests/layers.rs, test/demos/videoroom-bwe-browser.test.ts).
 */
const MANUAL_LAYERS = { media: { bandwidth_estimation: false } };

test(`SSRC simulcast: a subscriber changes substream ${PHASES} times; its stream stays continuous`, () =>
  withRoom({ room: 3 }, async ({ vr, admin, peers }) => {
    const { pubId, sendLayer } = await publishSsrcSimulcast(vr.f, 3, peers, [0x5100_0001, 0x5100_0002], true);
    const listed = await admin.sync({ request: 'listparticipants', room: 3 });
    assert.equal(listed['participants'].map((p: any) => p.id), [pubId]);

    const sub = await subscribe(vr.f, 3, [{ feed: pubId, mid: '1' }], peers);
    assert.equal(sub.streams.map((s) => [s['type'], s['feed_mid'], s['simulcast']]), [['video', '1', { substream: 2, temporal: 2 }]]);
    await switchLayers(sub, sendLayer);
  }, MANUAL_LAYERS));

test(`rid simulcast (RFC 8853): ferry accepts the three rids, orders them by the offer, a subscriber changes substream ${PHASES} times`, () =>
  withRoom({ room: 4 }, async ({ vr, peers }) => {
    const { client, pc } = await openClientAndPeer(vr.f, peers, { headerExtensions: { audio: [], video: [useSdesMid(), useSdesRTPStreamId()] } });
    const rids = ['h', 'm', 'l']; // Janus's default rid_order "hml": the first rid is the best layer
    const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly', simulcast: rids.map((rid) => ({ rid, direction: 'send' as const })) });
    await pc.setLocalDescription(await pc.createOffer());
    const offer = pc.localDescription!.sdp;
    assert.match(offer, /a=simulcast:send h;m;l/);
    const ridExt = Number(/a=extmap:(\d+) urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id/.exec(offer)?.[1]);
    const joined = await client.call({ request: 'joinandconfigure', ptype: 'publisher', room: 4 }, { type: 'offer', sdp: offer });
    const answer = String(joined.jsep?.['sdp']);
    assert.match(answer, /a=simulcast:recv h;m;l/);
    assert.match(answer, /a=rid:h recv\r\na=rid:m recv\r\na=rid:l recv/);
    assert.match(answer, new RegExp(`a=extmap:${ridExt} urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id`));
    const pubId = await connected(client, pc, joined);

    // werift's sender sends one encoding only: the layers are written on its transport, each
    // with its own unsignalled SSRC and its rid in the RtpStreamId extension (RFC 8852).
    const transport = video.sender.dtlsTransport;
    const pt = video.sender.codec!.payloadType;
    const ssrcOf = (layer: number) => 0x7700_0000 + layer;
    const ridOf = (layer: number) => rids[2 - layer]!; // layer 0 is the lowest: "l"
    const send = (layer: number, seq: number, ts: number, body: Buffer) => {
      const header = new RtpHeader({ payloadType: pt, ssrc: ssrcOf(layer), sequenceNumber: seq, timestamp: ts, marker: true, extension: true });
      header.extensions = [{ id: ridExt, payload: Buffer.from(ridOf(layer)) }];
      return transport.sendRtp(body, header).then(() => undefined);
    };
    // The feed becomes simulcast once ferry has seen a packet of each layer, here in neither
    // the offer's order nor quality order (m, l, h): the layer order must come from the rids.
    for (const layer of [1, 0, 2]) await send(layer, 0, 0, payload('probe', layer, 100));
    const videoStream = () => vr.plugin.rooms.get(4)?.participants.get(pubId)?.streams.find((x) => x.mid === '0');
    assert.ok(await until(() => (videoStream()?.layers.length ?? 0) === 3, 3000), 'three layers learned');
    assert.is(videoStream()?.simulcast, true);

    const sub = await subscribe(vr.f, 4, [{ feed: pubId }], peers);
    assert.equal(sub.streams.map((x) => [x['type'], x['simulcast']]), [['video', { substream: 2, temporal: 2 }]]);
    await switchLayers(sub, send);
  }, MANUAL_LAYERS));

test('subscribers that want only the lower layers cap the publisher to them (REMB); one wanting the top layer lifts the cap', () =>
  withRoom({ room: 5 }, async ({ vr, peers }) => {
    let sending = true;
    try {
      const { pubId, video, sendLayer } = await publishSsrcSimulcast(vr.f, 5, peers, [0x5200_0001, 0x5200_0002], false);
      // Three layers at about 60, 120 and 180 kbit/s (25 frames a second), until the test ends.
      const seq = [1, 1, 1];
      const pump = (async () => {
        for (let frame = 0; sending && frame < 2000; frame++) {
          for (const layer of [0, 1, 2]) {
            const body = vp8Payload(frame % 25 === 0, payload(`layer${layer}`, frame, 300 * (layer + 1)));
            await sendLayer(layer, seq[layer]!++, frame * 3600, body);
          }
          await new Promise((r) => setTimeout(r, 40));
        }
      })();
      const sender = video as unknown as { receiverEstimatedMaxBitrate: bigint | number };
      const cap = () => Number(sender.receiverEstimatedMaxBitrate ?? 0);
      const sub = await subscribe(vr.f, 5, [{ feed: pubId, mid: '0', substream: 0 }], peers);
      // Only layer 0 is wanted: the REMB allows about what it carries (×1.5, plus 100 kbit/s).
      // After the subscribers have wanted only layer 0 for the hold (15 s), checked every 2 s.
    const capped = await until(() => cap() > 0 && cap() < 400_000, 30_000, 50);
      assert.ok(capped, `the publisher is capped to the wanted layer (REMB ${cap()})`);
      await sub.client.call({ request: 'configure', streams: [{ mid: '0', substream: 2 }] });
      assert.ok(await until(() => cap() >= 1e9, 10_000, 50), `the cap is lifted when the top layer is wanted (REMB ${cap()})`);
      sending = false;
      await pump;
    } finally {
      sending = false;
    }
  }));

test.run();
