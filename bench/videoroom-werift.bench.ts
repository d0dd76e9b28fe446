// A VideoRoom at a realistic rate, not at saturation: ferry as its own process
// (`node dist/src/main.js`, what `npm start` runs), one werift publisher that
// joins room 1234 over the Janus WebSocket API and sends VP8 RTP at 1000
// packets/s (10 packets every 10 ms, 1000-byte payloads, DTLS-SRTP), and 10
// werift subscribers of its feed. Once every subscriber receives, ferry's CPU
// time over a steady-state window is divided by the packets the subscribers
// really received (decrypted by werift): µs of ferry CPU per delivered packet,
// for the whole process, its media threads (`ferry-media-*`) and everything
// else (Node's main thread, V8's and libuv's threads).
//
// CPU comes from /proc/<pid>/task/*/schedstat (ns of run time per thread) and,
// as a cross-check, utime+stime of /proc/<pid>/stat (which also keeps the time
// of threads that ended). The werift peers run in this process (about a
// quarter of a core at this rate, so they keep up), on loopback only;
// FERRY_BENCH_SUBSCRIBER_PROCESSES=N spreads the subscribers over N child
// processes instead (bench/videoroom-subscribers.ts), which makes ferry's
// sends wake more receiver processes. FERRY_BENCH_DEBUG=1 prints the detail
// (per-thread CPU, scheduling slices, per-subscriber counts, ferry's output).
import { fork } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection, type RTCRtpSender } from 'werift';

import { startFerryProcess, type FerryProcess } from '../test/helpers/ferryProcess.js';
import { connectionState, loopbackPeer } from '../test/helpers/werift.js';
import { VrClient, closeAll, pause, subscribe, type WeriftSubscriber } from '../test/videoroom-e2e/harness.js';
import type { Figures } from './figures.js';
import { DeliveryCounter, type Received } from './videoroom-count.js';

const ROOM = 1234;
const SUBSCRIBERS = 10;
const RATE_PPS = 1000;
/** Packets per send tick: 10 every 10 ms. */
const BURST = 10;
const PAYLOAD_BYTES = 1000;
/** Janus clients (janus.js) send a keepalive every 25 s; the session timeout is 60 s. */
const KEEPALIVE_MS = 25_000;
/** Windows measured at most when each has a major GC in ferry (see the measuring loop). */
const MAX_WINDOWS = 3;
/** A media range no in-process ferry of the other benchmarks uses. */
const MEDIA_PORTS = { rtp_port_min: 47000, rtp_port_max: 47999 };

interface ThreadTimes {
  /** Nanoseconds of CPU per thread name group. */
  media: number;
  other: number;
  /** Times threads were switched in (2nd schedstat field): about the wake-ups. */
  mediaSlices: number;
  otherSlices: number;
  /** utime+stime of the whole process (clock ticks → ns), dead threads included. */
  processNs: number;
}

const CLOCK_TICK_NS = 1e9 / 100; // USER_HZ is 100 on Linux

/** CPU ns per thread (`name/tid`), for FERRY_BENCH_DEBUG. */
function perThread(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(`${comm}/${tid}`, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      /* ended */
    }
  }
  return out;
}

function readThreadTimes(pid: number): ThreadTimes {
  let media = 0;
  let other = 0;
  let mediaSlices = 0;
  let otherSlices = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let comm: string;
    let schedstat: string[];
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      // run time (ns), wait time (ns), time slices run
      schedstat = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ');
    } catch {
      continue; // the thread ended meanwhile
    }
    if (comm.startsWith('ferry-media-')) {
      media += Number(schedstat[0]);
      mediaSlices += Number(schedstat[2]);
    } else {
      other += Number(schedstat[0]);
      otherSlices += Number(schedstat[2]);
    }
  }
  // The comm field may hold spaces: the fields after it start after the last ')'.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const processNs = (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_NS; // utime, stime (fields 14, 15)
  return { media, other, mediaSlices, otherSlices, processNs };
}

/** A VP8 payload (RFC 7741 descriptor with S=1, then a keyframe or interframe header byte). */
function vp8Payload(keyframe: boolean): Buffer {
  const b = Buffer.alloc(PAYLOAD_BYTES, 0x5a);
  b[0] = 0x10; // X=0 R=0 N=0 S=1 PID=0
  b[1] = keyframe ? 0x10 : 0x11; // P bit (0 = keyframe), version 0, show_frame 1
  return b;
}

export interface VideoroomWeriftResult {
  /** Packets the publisher sent per second over the window. */
  publishedPps: number;
  /** Distinct packets all subscribers received per second over the window. */
  deliveredPps: number;
  /** Packets subscribers received again (retransmissions answering their NACKs), per second. */
  duplicatePps: number;
  usPerPacket: number;
  nodeUsPerPacket: number;
  mediaUsPerPacket: number;
  /** Cross-check from utime+stime (10 ms ticks). */
  processStatUsPerPacket: number;
  /** Times the media threads and the other threads were scheduled in, per second. */
  mediaSlicesPerSecond: number;
  nodeSlicesPerSecond: number;
  /** V8 collections in ferry during the window (from its `--trace-gc` lines). */
  majorGcs: number;
  scavenges: number;
  /** Which window this is (1 unless earlier ones had a major GC). */
  window: number;
  windowSeconds: number;
}

/** A werift publisher of one video track only, joined with joinandconfigure. */
async function publishVideo(fp: FerryProcess, peers: RTCPeerConnection[]): Promise<{ client: VrClient; id: number; video: RTCRtpSender }> {
  const client = await VrClient.open(fp);
  const pc = loopbackPeer();
  peers.push(pc);
  const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const joined = await client.call({ request: 'joinandconfigure', ptype: 'publisher', room: ROOM, display: 'bench' }, { type: 'offer', sdp: pc.localDescription!.sdp });
  if (joined.jsep?.['type'] !== 'answer') throw new Error(`no answer: ${JSON.stringify(joined)}`);
  await pc.setRemoteDescription(joined.jsep as never);
  await connectionState(pc, 'connected');
  await client.core('webrtcup');
  return { client, id: joined.data['id'] as number, video: video.sender };
}

/** Subscribers of the feed, in this process or in child processes. */
interface SubscriberGroup {
  /** What each subscriber received so far. */
  received(): Promise<Received[]>;
  keepalive(): void;
  close(): Promise<void>;
}

async function inProcessSubscribers(fp: FerryProcess, feed: number, count: number, peers: RTCPeerConnection[]): Promise<SubscriberGroup> {
  const subs: WeriftSubscriber[] = [];
  const counters: DeliveryCounter[] = [];
  const drain = (): Received[] => counters.map((c) => ({ ...c.drain() }));
  const drainTimer = setInterval(drain, 20);
  try {
    for (let i = 0; i < count; i++) {
      const s = await subscribe(fp, ROOM, [{ feed }], peers);
      subs.push(s);
      counters.push(new DeliveryCounter(s));
    }
  } catch (err) {
    clearInterval(drainTimer);
    for (const s of subs) await s.client.close().catch(() => undefined);
    throw err;
  }
  return {
    received: async () => drain(),
    keepalive: () => {
      for (const s of subs) void s.client.ws.request({ janus: 'keepalive', session_id: s.client.sessionId }).catch(() => undefined);
    },
    close: async () => {
      clearInterval(drainTimer);
      for (const s of subs) await s.client.close().catch(() => undefined);
    },
  };
}

const SUBSCRIBER_SCRIPT = fileURLToPath(new URL('./videoroom-subscribers.ts', import.meta.url));

async function childSubscribers(fp: FerryProcess, feed: number, count: number): Promise<SubscriberGroup> {
  const child = fork(SUBSCRIBER_SCRIPT, [fp.wsUrl, String(ROOM), String(feed), String(count)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  type Reply = { type: string; received?: Received[]; message?: string };
  const next = (type: string, ms = 30_000) =>
    new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber process: no ${type} within ${ms} ms`)), ms);
      const onMessage = (msg: Reply) => {
        if (msg.type === 'error') reject(new Error(`subscriber process: ${msg.message}`));
        else if (msg.type !== type) return;
        else resolve(msg);
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        reject(new Error(`subscriber process exited (${code}) before ${type}`));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  try {
    await next('ready');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    received: async () => {
      const reply = next('received');
      child.send({ type: 'count' });
      return (await reply).received ?? [];
    },
    keepalive: () => child.send({ type: 'keepalive' }),
    close: async () => {
      const stopped = next('stopped', 10_000).catch(() => undefined);
      child.send({ type: 'stop' });
      await stopped;
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export interface VideoroomWeriftOptions {
  /** Node options for the ferry process (e.g. `--trace-gc`). */
  nodeArgs?: string[];
  /** Processes the subscribers are spread over; 0 keeps them in this process. */
  subscriberProcesses?: number;
  /** Runs during the measured window (diagnostics: an inspector session, perf); awaited with it. */
  duringWindow?: (fp: FerryProcess, ms: number) => Promise<void>;
}

export async function videoroomWerift(windowSeconds: number, options: VideoroomWeriftOptions = {}): Promise<VideoroomWeriftResult> {
  const gcs = { major: 0, scavenge: 0 };
  const fp = await startFerryProcess(
    { media: { ...MEDIA_PORTS, workers: 1 }, log: { level: 'info' } },
    {
      // One line per collection on stdout, nothing else: how windows with a GC are told apart.
      nodeArgs: ['--trace-gc', ...(options.nodeArgs ?? [])],
      onStdoutLine: (line) => {
        if (/ ms: (Mark-Compact|Mark-Sweep)/.test(line)) gcs.major++;
        else if (/ ms: (Scavenge|Minor Mark)/.test(line)) gcs.scavenge++;
      },
    },
  );
  const peers: RTCPeerConnection[] = [];
  const groups: SubscriberGroup[] = [];
  let pubClient: VrClient | undefined;
  let sending = false;
  let keepalive: NodeJS.Timeout | undefined;
  try {
    const pub = await publishVideo(fp, peers);
    pubClient = pub.client;
    const processes = Math.min(SUBSCRIBERS, options.subscriberProcesses ?? 0);
    if (processes === 0) groups.push(await inProcessSubscribers(fp, pub.id, SUBSCRIBERS, peers));
    else {
      for (let i = 0; i < processes; i++) {
        const n = Math.floor(SUBSCRIBERS / processes) + (i < SUBSCRIBERS % processes ? 1 : 0);
        groups.push(await childSubscribers(fp, pub.id, n));
      }
    }
    keepalive = setInterval(() => {
      void pub.client.ws.request({ janus: 'keepalive', session_id: pub.client.sessionId }).catch(() => undefined);
      for (const g of groups) g.keepalive();
    }, KEEPALIVE_MS);
    const receivedAll = async () => (await Promise.all(groups.map((g) => g.received()))).flat();

    // The publisher: BURST packets per tick. A late tick sends what was due, but after a stall
    // (this process starting subscribers) the schedule moves on instead of sending a flood.
    const interframe = vp8Payload(false);
    const keyframe = vp8Payload(true);
    const payloadType = pub.video.codec!.payloadType;
    let sent = 0;
    let scheduled = 0;
    sending = true;
    const t0 = performance.now();
    const sendLoop = (async () => {
      while (sending) {
        const due = Math.floor(((performance.now() - t0) / 1000) * RATE_PPS);
        if (due - scheduled > 5 * BURST) scheduled = due - BURST;
        for (; scheduled < due; scheduled++) {
          const seq = 1 + sent;
          // A keyframe every 3 s (the engine only looks at a frame's first packet).
          const header = new RtpHeader({ payloadType, sequenceNumber: seq & 0xffff, timestamp: (Math.floor(sent / BURST) * 3000) >>> 0, marker: sent % BURST === BURST - 1 });
          void pub.video.sendRtp(new RtpPacket(header, sent % 3000 === 0 ? keyframe : interframe)).catch(() => undefined);
          sent++;
        }
        await pause(BURST);
      }
    })();

    // Steady state: every subscriber receives, then one more second.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const received = await receivedAll();
      if (received.length === SUBSCRIBERS && received.every((r) => r.packets > 0)) break;
      if (Date.now() > deadline) throw new Error(`subscribers did not all receive within 15 s: ${received.map((r) => r.packets).join(' ')}`);
      await pause(50);
    }
    await pause(1000);

    const sum = (a: Received[]) => a.reduce((x, r) => ({ packets: x.packets + r.packets, duplicates: x.duplicates + r.duplicates }), { packets: 0, duplicates: 0 });
    if (process.env.FERRY_BENCH_DEBUG === '1') console.error(`steady state: ferry pid ${fp.pid}`);
    // V8's memory reducer runs up to three full GCs once, some 8 s after start-up when it finds
    // the process idle: that is not a steady-state cost. A window with a major GC is measured
    // once more, and at most MAX_WINDOWS are measured, so a GC that comes back in every window
    // (real steady-state garbage) stays in the figure.
    let result: VideoroomWeriftResult | undefined;
    for (let window = 1; window <= MAX_WINDOWS && (result === undefined || result.majorGcs > 0); window++) {
      const gcsBefore = { ...gcs };
      const threadsBefore = perThread(fp.pid);
      const peersCpuBefore = process.cpuUsage();
      const before = { cpu: readThreadTimes(fp.pid), sent, received: sum(await receivedAll()), t: performance.now() };
      await Promise.all([pause(windowSeconds * 1000), options.duringWindow?.(fp, windowSeconds * 1000)]);
      const perSubscriber = await receivedAll();
      const after = { cpu: readThreadTimes(fp.pid), sent, received: sum(perSubscriber), t: performance.now() };

      const seconds = (after.t - before.t) / 1000;
      const delivered = Math.max(1, after.received.packets - before.received.packets);
      const media = after.cpu.media - before.cpu.media;
      const other = after.cpu.other - before.cpu.other;
      result = {
        publishedPps: (after.sent - before.sent) / seconds,
        deliveredPps: delivered / seconds,
        duplicatePps: (after.received.duplicates - before.received.duplicates) / seconds,
        usPerPacket: (media + other) / 1000 / delivered,
        nodeUsPerPacket: other / 1000 / delivered,
        mediaUsPerPacket: media / 1000 / delivered,
        processStatUsPerPacket: (after.cpu.processNs - before.cpu.processNs) / 1000 / delivered,
        mediaSlicesPerSecond: (after.cpu.mediaSlices - before.cpu.mediaSlices) / seconds,
        nodeSlicesPerSecond: (after.cpu.otherSlices - before.cpu.otherSlices) / seconds,
        majorGcs: gcs.major - gcsBefore.major,
        scavenges: gcs.scavenge - gcsBefore.scavenge,
        window,
        windowSeconds: seconds,
      };
      if (process.env.FERRY_BENCH_DEBUG === '1') {
        const threads = [...perThread(fp.pid)].map(([name, ns]) => `${name}=${((ns - (threadsBefore.get(name) ?? 0)) / 1e6).toFixed(1)}ms`);
        const peersCpu = process.cpuUsage(peersCpuBefore);
        const peersCpuPercent = ((peersCpu.user + peersCpu.system) / 1e6 / seconds) * 100;
        console.error(JSON.stringify({ ...result, perSubscriber, threads, peersCpuPercent }));
      }
    }
    sending = false;
    await sendLoop;
    return result!;
  } finally {
    sending = false;
    if (keepalive) clearInterval(keepalive);
    for (const g of groups) await g.close().catch(() => undefined);
    await pubClient?.close().catch(() => undefined);
    await closeAll(peers);
    await fp.stop();
    if (process.env.FERRY_BENCH_DEBUG === '1') console.error(fp.output());
  }
}

export async function benchVideoroomWerift(figures: Figures, short: boolean): Promise<void> {
  const r = await videoroomWerift(short ? 3 : 10, { subscriberProcesses: Number(process.env.FERRY_BENCH_SUBSCRIBER_PROCESSES ?? 0) });
  const name = `room.werift.pub${RATE_PPS}_subs${SUBSCRIBERS}`;
  figures.add(`${name}.us_per_packet`, r.usPerPacket, 'µs/packet');
  figures.add(`${name}.node_us_per_packet`, r.nodeUsPerPacket, 'µs/packet');
  figures.add(`${name}.media_us_per_packet`, r.mediaUsPerPacket, 'µs/packet');
  figures.add(`${name}.published_pps`, r.publishedPps, 'packets/s');
  figures.add(`${name}.delivered_pps`, r.deliveredPps, 'packets/s');
  figures.add(`${name}.duplicate_pps`, r.duplicatePps, 'packets/s');
}
