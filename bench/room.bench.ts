// The VideoRoom room path: one publisher fanned out to 10 subscribers through the
// real VideoRoom objects, PeerConnections and engine, beside the engine-only
// `forward.*` figures. The publisher is a cascaded (`add_remote_publisher`) leg
// fed by the native blaster with SRTP AES_CM_128_HMAC_SHA1_80 (the one suite
// Janus's `srtp_suite`/`srtp_crypto` offer); the subscribers are werift
// PeerConnections that negotiate DTLS-SRTP, AEAD_AES_128_GCM being ferry's
// first choice (RFC 7714), so every packet out is GCM-protected as in the
// `forward.aead_aes_128_gcm.*` case.
//
// werift decrypts in JavaScript and could not take the flood. Once every
// subscriber is up, its UDP sockets are closed (their send made a no-op so
// werift's timers stay harmless): the subscribers are then closed ports, and
// the kernel drops ferry's packets at the port lookup, as it drops them in a
// full unread socket queue in the engine-only case. ferry's sockets are
// unconnected, so the ICMP replies never reach the media thread.
import dgram from 'node:dgram';
import { syncBuiltinESMExports } from 'node:module';

import type { RTCPeerConnection } from 'werift';

import { loadNative } from '../src/media/native.js';
import { VrClient, closeAll, startVrFerry, subscribe } from '../test/videoroom-e2e/harness.js';
import { keepWeriftOnLoopback } from '../test/helpers/werift.js';
import type { Figures } from './figures.js';
import { PAYLOAD } from './srtp.bench.js';

const FANOUT = 10;
const ROOM = 1234;
const FEED = 4242;
/** Janus's cascade SSRC for mindex 0, layer 0 (1000 + 10 × mindex). */
const CASCADE_SSRC = 1000;
/** Same offered load as the engine-only case: packets/s out, the blaster sends this / fan-out. */
const OFFERED_OUT_PPS = 1_200_000;
const VP8_PT = 96;
/** RFC 7714 §14.2: the DTLS-SRTP protection profile id of AEAD_AES_128_GCM. */
const DTLS_SRTP_AEAD_AES_128_GCM = 0x0007;

/** UDP sockets werift opens while `record` is on, so they can be closed once the peers are up. */
const recorded: dgram.Socket[] = [];
let recording = false;
let wrapped = false;

function recordWeriftSockets(): void {
  if (wrapped) return;
  wrapped = true;
  keepWeriftOnLoopback();
  const create = dgram.createSocket;
  (dgram as unknown as { createSocket: typeof dgram.createSocket }).createSocket = ((...args: Parameters<typeof dgram.createSocket>) => {
    const socket = create(...args);
    if (recording) recorded.push(socket);
    return socket;
  }) as typeof dgram.createSocket;
  // werift imports createSocket by name: named imports must see this wrapper too.
  syncBuiltinESMExports();
}

/** Closes a werift socket under it: later sends from werift's timers go nowhere instead of throwing. */
function silence(socket: dgram.Socket): void {
  socket.removeAllListeners('message');
  (socket as unknown as { send: () => void }).send = () => undefined;
  try {
    socket.close();
  } catch {
    /* already closed */
  }
}

export interface RoomResult {
  ppsOut: number;
  cpuUsPerPacket: number;
  ppsOutPerCore: number;
}

async function roomFanout(seconds: number): Promise<RoomResult> {
  recordWeriftSockets();
  const native = loadNative();
  const vr = await startVrFerry({ media: { workers: 1 } });
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(vr.f);
    await admin.sync({ request: 'create', room: ROOM, publishers: 2, videocodec: 'vp8' });
    const masterKey = Buffer.alloc(16, 0x5a);
    const masterSalt = Buffer.alloc(14, 0xa5);
    const added = await admin.sync({
      request: 'add_remote_publisher',
      room: ROOM,
      id: FEED,
      display: 'bench',
      streams: [{ type: 'video', mindex: 0, mid: '0', codec: 'vp8' }],
      srtp_suite: 80,
      srtp_crypto: Buffer.concat([masterKey, masterSalt]).toString('base64'),
    });
    const ingressPort = added['port'];
    if (typeof ingressPort !== 'number') throw new Error(`add_remote_publisher gave no port: ${JSON.stringify(added)}`);
    recording = true;
    try {
      for (let i = 0; i < FANOUT; i++) await subscribe(vr.f, ROOM, [{ feed: FEED }], peers);
    } finally {
      recording = false;
    }
    for (const s of recorded.splice(0)) silence(s);
    // The figures are named for the egress profile: make sure DTLS-SRTP really chose it.
    for (const pc of peers) {
      const profile = (pc.dtlsTransports[0] as unknown as { dtls?: { srtp?: { srtpProfile?: number } } } | undefined)?.dtls?.srtp?.srtpProfile;
      if (profile !== DTLS_SRTP_AEAD_AES_128_GCM) throw new Error(`subscriber negotiated DTLS-SRTP profile ${String(profile)}, not AEAD_AES_128_GCM`);
    }

    const engine = vr.f.ferry.engine;
    const txOut = (s: ReturnType<typeof engine.stats>) => s.endpoints.filter((e) => e.port !== ingressPort).reduce((a, e) => a + e.txPackets, 0);
    const before = engine.stats();
    const blast = await native.blast({
      address: '127.0.0.1',
      port: ingressPort,
      profile: 'AES_CM_128_HMAC_SHA1_80',
      key: masterKey,
      salt: masterSalt,
      ssrc: CASCADE_SSRC,
      payloadType: VP8_PT,
      payload: PAYLOAD,
      durationMs: Math.round(seconds * 1000),
      packetsPerSecond: Math.round(OFFERED_OUT_PPS / FANOUT),
    });
    await new Promise((r) => setTimeout(r, 50)); // let the media thread drain its socket
    const after = engine.stats();
    const out = txOut(after) - txOut(before);
    const cpuNs = after.workers[0]!.cpuNs - before.workers[0]!.cpuNs;
    if (process.env.FERRY_BENCH_DEBUG === '1') {
      console.error(JSON.stringify({ blast, out, cpuNs, endpoints: after.endpoints.map((e) => [e.port, e.rtpIn, e.txPackets, e.srtpAuthFailures, e.unknownSsrc]) }));
    }
    return { ppsOut: out / (blast.nanos / 1e9), cpuUsPerPacket: cpuNs / 1000 / Math.max(1, out), ppsOutPerCore: out / Math.max(1e-9, cpuNs / 1e9) };
  } finally {
    await vr.stop();
    await closeAll(peers);
  }
}

export async function benchRoom(figures: Figures, seconds: number): Promise<void> {
  const r = await roomFanout(seconds);
  figures.add(`room.aead_aes_128_gcm.fanout${FANOUT}.pps_out`, r.ppsOut, 'packets/s');
  figures.add(`room.aead_aes_128_gcm.fanout${FANOUT}.cpu_us_per_packet`, r.cpuUsPerPacket, 'µs/packet');
  figures.add(`room.aead_aes_128_gcm.fanout${FANOUT}.pps_out_per_core`, r.ppsOutPerCore, 'packets/s/core');
}
