// Forwarding over loopback through the real engine: one SRTP source fanned out
// to N SRTP outputs on one media thread. Load comes from a native sender and
// goes to native sinks, so neither is the bottleneck; the media thread's own
// CPU time gives µs per packet out. A pure-TypeScript forwarder built on
// werift-rtp runs the same job in the same run as the baseline.

import { MediaEngine, type SrtpProfileName } from '../src/media/MediaEngine.js';
import { loadNative } from '../src/media/native.js';
import { newKeys, type KeyPair } from '../test/helpers/rtp.js';
import type { Figures } from './figures.js';
import { PAYLOAD } from './srtp.bench.js';
import { startWeriftForwarder } from './weriftForwarder.js';

/**
 * Offered load of the ferry runs, in packets/s out (the blaster sends this divided by the
 * fan-out), about twice what one media core forwards. Far beyond it the ingress socket drops
 * in long runs (UDP frees receive memory in quarter-buffer steps): once one run of losses
 * spans more than 2^15 sequence numbers the SRTP receiver's ROC estimate (RFC 3711 §3.3.1)
 * falls behind and every later packet fails authentication, which measures the load
 * generator, not the forwarder.
 */
const OFFERED_OUT_PPS = 1_200_000;

interface ForwardResult {
  ppsOut: number;
  cpuUsPerPacket: number;
  ppsOutPerCore: number;
}

/**
 * `echo`: the EchoTest shape — the output sits on the ingress endpoint itself
 * (one socket, one SRTP context pair), sending back toward one sink.
 */
/** One-byte extension id the transport-cc variant uses (any of 1..14). */
const TWCC_EXTENSION_ID = 3;

interface ForwardCase {
  profile: SrtpProfileName;
  fanout: number;
  seconds: number;
  /** The EchoTest shape (see above). */
  echo?: boolean;
  /** Transport-wide sequence numbers in every packet, answered with feedback. */
  twcc?: boolean;
  /**
   * Send side of loss repair and bandwidth estimation on every output: an RFC 4588 RTX stream,
   * and a transport-wide sequence number written in every packet sent and shown to the estimator.
   */
  sendSide?: boolean;
  /** Single-port mode: the outputs' endpoints share their media thread's socket. */
  singlePort?: boolean;
  /** Media threads (default 1). */
  workers?: number;
  /** Thread of the ingress endpoint (default: placement decides). */
  ingressWorker?: number;
  /** Thread of output i's endpoint (default: placement decides). */
  outputWorker?: (i: number) => number;
  /** Offered load in packets/s out (default OFFERED_OUT_PPS). */
  offeredOutPps?: number;
}

interface ThreadedResult extends ForwardResult {
  /** Each media thread's CPU per delivered packet (they add up to cpuUsPerPacket). */
  perThreadUsPerPacket: number[];
}

/** The load both forwarders are offered: `seconds` of SRTP (keys `keys`) from SSRC 0x1000 to `port`. */
function offered(port: number, profile: SrtpProfileName, keys: KeyPair, seconds: number) {
  return { address: '127.0.0.1', port, profile, key: keys.key, salt: keys.salt, ssrc: 0x1000, payload: PAYLOAD, durationMs: Math.round(seconds * 1000) };
}

async function ferryForward(c: ForwardCase): Promise<ThreadedResult> {
  const { profile, fanout, seconds, echo = false, twcc = false } = c;
  const native = loadNative();
  const workers = c.workers ?? 1;
  const engine = new MediaEngine({ workers, ...(c.singlePort ? { sharedPorts: { address: '127.0.0.1', ports: Array.from({ length: workers }, () => 0) } } : {}) });
  // Receivers are bound but not read, as a remote host's would be: the media thread pays
  // for delivery up to their socket, not for waking a reader thread on this same machine.
  const sink = new native.BenchSink(fanout, process.env.FERRY_BENCH_DRAIN === '1');
  try {
    const inKeys = newKeys(profile);
    const ingress = engine.openEndpoint({
      bindAddress: '127.0.0.1',
      port: 0,
      ...(twcc ? { twccExtensionId: TWCC_EXTENSION_ID } : {}),
      ...(c.ingressWorker !== undefined ? { worker: c.ingressWorker } : {}),
    });
    engine.setSrtp(ingress.id, { profile, localKey: inKeys.key, localSalt: inKeys.salt, remoteKey: inKeys.key, remoteSalt: inKeys.salt });
    // Transport-cc feedback needs somewhere to go: a sink port stands in for the sender.
    if (twcc) engine.setRemote(ingress.id, { address: '127.0.0.1', port: sink.ports()[0]! });
    const source = engine.addSource(ingress.id, { ssrc: 0x1000, kind: 'video', clockRate: 90000 });
    const outEps: number[] = [];
    if (echo) {
      engine.setRemote(ingress.id, { address: '127.0.0.1', port: sink.ports()[0]! });
      engine.addOutput(ingress.id, { source, ssrc: 0x2000 });
      outEps.push(ingress.id);
    }
    sink.ports().forEach((port, i) => {
      if (echo) return;
      const k = newKeys(profile);
      const worker = c.outputWorker?.(i);
      // On the shared socket an endpoint needs ICE (its ufrag routes checks); the sink never
      // checks, so media goes to the fixed remote, as to a nominated address.
      const shared = c.singlePort ? { shared: true, ice: { ufrag: `out${i}`, pwd: `forward-output-password-${i}` } } : {};
      const ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, remoteAddress: '127.0.0.1', remotePort: port, ...(worker !== undefined ? { worker } : {}), ...shared });
      engine.setSrtp(ep.id, { profile, localKey: k.key, localSalt: k.salt, remoteKey: k.key, remoteSalt: k.salt });
      engine.addOutput(ep.id, { source, ssrc: 0x2000 + i, ...(c.sendSide ? { rtxSsrc: 0x3000 + i, rtxPayloadType: 97 } : {}) });
      if (c.sendSide) engine.setSendBwe(ep.id, { extensionId: TWCC_EXTENSION_ID });
      outEps.push(ep.id);
    });
    const before = engine.stats();
    const blast = await native.blast({
      ...offered(ingress.port, profile, inKeys, seconds),
      packetsPerSecond: Math.round((c.offeredOutPps ?? OFFERED_OUT_PPS) / fanout),
      ...(twcc ? { twccExtensionId: TWCC_EXTENSION_ID } : {}),
    });
    await new Promise((r) => setTimeout(r, 50)); // let the media threads drain their queues
    const after = engine.stats();
    const txOf = (s: typeof before) => s.endpoints.filter((e) => outEps.includes(e.id)).reduce((a, e) => a + e.txPackets, 0);
    const out = txOf(after) - txOf(before);
    const perThreadNs = after.workers.map((w, i) => w.cpuNs - before.workers[i]!.cpuNs);
    const cpuNs = perThreadNs.reduce((a, b) => a + b, 0);
    const wallS = blast.nanos / 1e9;
    return {
      ppsOut: out / wallS,
      cpuUsPerPacket: cpuNs / 1000 / Math.max(1, out),
      ppsOutPerCore: out / (cpuNs / 1e9),
      perThreadUsPerPacket: perThreadNs.map((ns) => ns / 1000 / Math.max(1, out)),
    };
  } finally {
    engine.close();
    sink.stop();
  }
}

/** The same job in pure TypeScript: dgram + werift-rtp decrypt once, encrypt per output. */
async function weriftForward(profile: SrtpProfileName, fanout: number, seconds: number): Promise<ForwardResult> {
  const native = loadNative();
  const sink = new native.BenchSink(fanout, process.env.FERRY_BENCH_DRAIN === '1');
  const inKeys = newKeys(profile);
  const forwarder = await startWeriftForwarder({ profile, inputKeys: inKeys, outputPorts: sink.ports(), firstSsrc: 0x2000 });
  const cpu0 = process.cpuUsage();
  const blast = await native.blast({
    ...offered(forwarder.port, profile, inKeys, seconds),
    // Offered at a rate one JavaScript thread can take, so the baseline is measured working
    // rather than collapsing under a flood it drops at the socket.
    packetsPerSecond: Math.round(20_000 / fanout),
  });
  await new Promise((r) => setTimeout(r, 50));
  const cpu = process.cpuUsage(cpu0);
  forwarder.close();
  sink.stop();
  // The blaster runs on a libuv thread of this process, so process CPU includes it: report
  // the wall-clock rate, and CPU per packet only as an upper bound.
  const cpuNs = (cpu.user + cpu.system) * 1000;
  const sent = forwarder.sent();
  return { ppsOut: sent / (blast.nanos / 1e9), cpuUsPerPacket: cpuNs / 1000 / Math.max(1, sent), ppsOutPerCore: 0 };
}

export async function benchForward(figures: Figures, seconds: number): Promise<void> {
  for (const profile of ['AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80'] as const) {
    const key = profile.toLowerCase();
    const e = await ferryForward({ profile, fanout: 1, seconds, echo: true });
    figures.add(`echo.${key}.pps_out`, e.ppsOut, 'packets/s');
    figures.add(`echo.${key}.cpu_us_per_packet`, e.cpuUsPerPacket, 'µs/packet');
    figures.add(`echo.${key}.pps_out_per_core`, e.ppsOutPerCore, 'packets/s/core');
    for (const fanout of [1, 10]) {
      const r = await ferryForward({ profile, fanout, seconds });
      figures.add(`forward.${key}.fanout${fanout}.pps_out`, r.ppsOut, 'packets/s');
      figures.add(`forward.${key}.fanout${fanout}.cpu_us_per_packet`, r.cpuUsPerPacket, 'µs/packet');
      figures.add(`forward.${key}.fanout${fanout}.pps_out_per_core`, r.ppsOutPerCore, 'packets/s/core');
      const w = await weriftForward(profile, fanout, seconds);
      figures.add(`forward.${key}.fanout${fanout}.werift_pps_out`, w.ppsOut, 'packets/s');
    }
  }
  // Single-port mode: the same fan-out 10 with every output on the thread's one socket.
  const one = await ferryForward({ profile: 'AEAD_AES_128_GCM', fanout: 10, seconds, singlePort: true });
  figures.add('forward.aead_aes_128_gcm.fanout10.single_port.us_per_packet', one.cpuUsPerPacket, 'µs/packet');
  figures.add('forward.aead_aes_128_gcm.fanout10.single_port.pps_out', one.ppsOut, 'packets/s');
  // What transport-cc costs: the same 1→1 forward with a transport-wide sequence number in every
  // packet, recorded by the engine and answered with feedback every 100 ms, as for a browser.
  const t = await ferryForward({ profile: 'AEAD_AES_128_GCM', fanout: 1, seconds, twcc: true });
  figures.add('forward.aead_aes_128_gcm.fanout1_twcc.pps_out', t.ppsOut, 'packets/s');
  figures.add('forward.aead_aes_128_gcm.fanout1_twcc.cpu_us_per_packet', t.cpuUsPerPacket, 'µs/packet');
  figures.add('forward.aead_aes_128_gcm.fanout1_twcc.pps_out_per_core', t.ppsOutPerCore, 'packets/s/core');
  // Loss repair's and estimation's share of the fan-out: every video source keeps its
  // retransmission history (always on), the publisher's transport-wide sequence numbers are
  // recorded and answered, and every output has RTX and writes its own transport-wide sequence
  // numbers for its subscriber's estimate, as for browsers.
  const rtx = await ferryForward({ profile: 'AEAD_AES_128_GCM', fanout: 10, seconds, twcc: true, sendSide: true });
  figures.add('forward.aead_aes_128_gcm.fanout10_rtx.us_per_packet', rtx.cpuUsPerPacket, 'µs/packet');
  figures.add('forward.aead_aes_128_gcm.fanout10_rtx.pps_out', rtx.ppsOut, 'packets/s');

  await benchThreads(figures, seconds);
}

/**
 * Crossing media threads. Same job, two placements: the ingress endpoint and its 10 outputs on
 * one thread, or the ingress on thread 0 and the outputs on thread 1 (every packet handed over);
 * CPU per delivered packet summed over both threads. Then fan-out 20 on one thread and split
 * over two. The load generator and the sinks share this machine's cores with the media threads,
 * so on a 2-core host the two-thread figures show the cost of crossing, not a 2× gain.
 */
async function benchThreads(figures: Figures, seconds: number): Promise<void> {
  const gcm = 'AEAD_AES_128_GCM' as const;
  // Below one thread's saturation, so both placements deliver everything offered.
  const offeredOutPps = 600_000;
  const same = await ferryForward({ profile: gcm, fanout: 10, seconds, workers: 2, ingressWorker: 0, outputWorker: () => 0, offeredOutPps });
  figures.add('forward.aead_aes_128_gcm.fanout10.same_thread.us_per_packet', same.cpuUsPerPacket, 'µs/packet');
  figures.add('forward.aead_aes_128_gcm.fanout10.same_thread.pps_out', same.ppsOut, 'packets/s');
  const cross = await ferryForward({ profile: gcm, fanout: 10, seconds, workers: 2, ingressWorker: 0, outputWorker: () => 1, offeredOutPps });
  figures.add('forward.aead_aes_128_gcm.fanout10.cross_thread.us_per_packet', cross.cpuUsPerPacket, 'µs/packet');
  figures.add('forward.aead_aes_128_gcm.fanout10.cross_thread.pps_out', cross.ppsOut, 'packets/s');
  figures.add('forward.aead_aes_128_gcm.fanout10.cross_thread.cost_ratio', cross.cpuUsPerPacket / same.cpuUsPerPacket, '× same thread');
  for (const workers of [1, 2]) {
    const r = await fanout20(workers, seconds);
    const name = `forward.aead_aes_128_gcm.fanout20.workers${workers}`;
    figures.add(`${name}.pps_out`, r.ppsOut, 'packets/s');
    r.perThreadUsPerPacket.forEach((us, i) => figures.add(`${name}.thread${i}.cpu_us_per_packet`, us, 'µs/packet'));
  }
}

/** GCM fan-out 20 over `workers` threads: ingress on thread 0, outputs spread evenly, load scaled. */
function fanout20(workers: number, seconds: number): Promise<ThreadedResult> {
  return ferryForward({ profile: 'AEAD_AES_128_GCM', fanout: 20, seconds, workers, ingressWorker: 0, outputWorker: (i) => i % workers, offeredOutPps: 1_200_000 * workers });
}

/**
 * `npm run bench -- --scaling`: fan-out 20 on 1, 2, 4, … media threads up to the CPUs this
 * process may use, outputs spread evenly, offered load scaled with the threads. Meant for a
 * host with more cores than the 2 CI has (the sender needs a core of its own).
 */
export async function benchScaling(figures: Figures, seconds: number, maxWorkers: number): Promise<void> {
  for (let workers = 1; workers <= maxWorkers; workers *= 2) {
    const r = await fanout20(workers, seconds);
    figures.add(`forward.aead_aes_128_gcm.fanout20.workers${workers}.pps_out`, r.ppsOut, 'packets/s');
    figures.add(`forward.aead_aes_128_gcm.fanout20.workers${workers}.cpu_us_per_packet`, r.cpuUsPerPacket, 'µs/packet');
  }
}
