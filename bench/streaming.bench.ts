// A Streaming mountpoint fanned out to 100 viewers: plain RTP into the mountpoint's leased port
// (an encoder's stream, no SRTP), one SRTP (AEAD_AES_128_GCM) output per viewer. The mountpoint is
// the plugin's own (its leg, its SSRC adoption); the viewers are what their PeerConnections leave
// in the engine once DTLS is done: an endpoint with keys and an output fed by the mountpoint's
// source. Load comes from a native sender, goes to native sinks; the media thread's own CPU time
// gives µs per packet out. A pure-TypeScript relay (dgram + werift-rtp) runs the same job beside it.


import { EngineMediaServices } from '../src/media/MediaServices.js';
import { MediaEngine } from '../src/media/MediaEngine.js';
import { loadNative } from '../src/media/native.js';
import { PortPool } from '../src/media/PortPool.js';
import { StreamingPlugin } from '../src/plugins/streaming/StreamingPlugin.js';
import { newKeys } from '../test/helpers/rtp.js';
import type { Figures } from './figures.js';
import { startWeriftForwarder } from './weriftForwarder.js';
import { PAYLOAD } from './srtp.bench.js';

const VIEWERS = 100;
/** Offered packets/s out (the sender sends this / VIEWERS): near what one media core delivers. */
const OFFERED_OUT_PPS = 1_200_000;
const PROFILE = 'AEAD_AES_128_GCM' as const;
const INGEST_SSRC = 0x5000;

interface StreamingResult {
  ppsOut: number;
  usPerPacket: number;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

async function ferryStreaming(seconds: number): Promise<StreamingResult> {
  const native = loadNative();
  const engine = new MediaEngine({ workers: 1 });
  const sink = new native.BenchSink(VIEWERS, process.env.FERRY_BENCH_DRAIN === '1');
  const pool = new PortPool(engine, { name: 'rtp', range: { min: 45100, max: 45199 }, bindAddress: '127.0.0.1' });
  const plugin = new StreamingPlugin({ media: new EngineMediaServices(engine, { rtp: pool }) });
  try {
    const created = plugin.handleSync({ request: 'create', type: 'rtp', id: 1, media: [{ type: 'video', mid: 'v', codec: 'vp8', pt: 96, port: 0 }] }, null);
    const stream = created['stream'] as { ports: { port: number }[] } | undefined;
    const port = stream?.ports[0]?.port;
    if (!port) throw new Error(`mountpoint not created: ${JSON.stringify(created)}`);
    // The first packets make the mountpoint adopt the encoder's SSRC.
    await native.blast({ address: '127.0.0.1', port, ssrc: INGEST_SSRC, payloadType: 96, payload: PAYLOAD, durationMs: 50, packetsPerSecond: 200 });
    const layer = plugin.mountpoints.get(1)!.media[0]!.layers[0]!;
    if (!(await until(() => layer.source !== null, 2000)) || layer.source === null) throw new Error('the mountpoint adopted no source');
    const outEps: number[] = [];
    sink.ports().forEach((sinkPort, i) => {
      const k = newKeys(PROFILE);
      const ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, remoteAddress: '127.0.0.1', remotePort: sinkPort });
      engine.setSrtp(ep.id, { profile: PROFILE, localKey: k.key, localSalt: k.salt, remoteKey: k.key, remoteSalt: k.salt });
      engine.addOutput(ep.id, { source: layer.source!, ssrc: 0x6000 + i, payloadType: 100 });
      outEps.push(ep.id);
    });
    const before = engine.stats();
    const blast = await native.blast({
      address: '127.0.0.1', port, ssrc: INGEST_SSRC, payloadType: 96, payload: PAYLOAD, firstSeq: 1000,
      durationMs: Math.round(seconds * 1000), packetsPerSecond: Math.round(OFFERED_OUT_PPS / VIEWERS),
    });
    await new Promise((r) => setTimeout(r, 50)); // let the media thread drain
    const after = engine.stats();
    const txOf = (s: typeof before) => s.endpoints.filter((e) => outEps.includes(e.id)).reduce((a, e) => a + e.txPackets, 0);
    const out = txOf(after) - txOf(before);
    const cpuNs = after.workers.reduce((n, w, i) => n + w.cpuNs - before.workers[i]!.cpuNs, 0);
    return { ppsOut: out / (blast.nanos / 1e9), usPerPacket: cpuNs / 1000 / Math.max(1, out) };
  } finally {
    plugin.destroy();
    pool.releaseAll();
    engine.close();
    sink.stop();
  }
}

/** The same relay in pure TypeScript: plain RTP in on a dgram socket, werift-rtp encrypts per viewer. */
async function weriftStreaming(seconds: number): Promise<StreamingResult> {
  const native = loadNative();
  const sink = new native.BenchSink(VIEWERS, process.env.FERRY_BENCH_DRAIN === '1');
  const forwarder = await startWeriftForwarder({ profile: PROFILE, inputKeys: null, outputPorts: sink.ports(), firstSsrc: 0x6000 });
  const blast = await native.blast({
    address: '127.0.0.1', port: forwarder.port, ssrc: INGEST_SSRC, payloadType: 96, payload: PAYLOAD,
    durationMs: Math.round(seconds * 1000),
    // What one JavaScript thread can take, so the baseline is measured working, not drowning.
    packetsPerSecond: Math.round(20_000 / VIEWERS),
  });
  await new Promise((r) => setTimeout(r, 50));
  forwarder.close();
  sink.stop();
  return { ppsOut: forwarder.sent() / (blast.nanos / 1e9), usPerPacket: 0 };
}

export async function benchStreaming(figures: Figures, seconds: number): Promise<void> {
  const r = await ferryStreaming(seconds);
  figures.add(`streaming.rtp_in.fanout${VIEWERS}.pps_out`, r.ppsOut, 'packets/s');
  figures.add(`streaming.rtp_in.fanout${VIEWERS}.us_per_packet`, r.usPerPacket, 'µs/packet');
  const w = await weriftStreaming(seconds);
  figures.add(`streaming.rtp_in.fanout${VIEWERS}.werift_pps_out`, w.ppsOut, 'packets/s');
}
