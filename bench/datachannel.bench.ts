// Data channels: what ferry's SCTP costs, beside werift's SCTP in the same run.
//
// 1. The protocol alone, in one process, no DTLS and no sockets: two SCTP
//    associations joined in memory, one sending, the other receiving (MB/s of
//    64 KiB messages, µs per 1 KiB message). ferry's sans-IO association
//    (src/webrtc/sctp) against werift's SCTP class, the same workload.
// 2. Echo end to end on loopback: a werift client in this process sends over
//    a data channel (DTLS, ICE, UDP) and waits for each message to come back
//    (a window of 64 outstanding). The echoing end is either ferry's EchoTest,
//    ferry as its own process (`node dist/src/main.js`), or a werift peer in a
//    child process. MB/s of 16 KiB messages and µs per 1 KiB message; the CPU
//    of the echoing process (all its threads, /proc schedstat) per message and
//    per MB. The werift client is the same in both, so the echoing end's CPU is
//    the figure to compare; the throughput depends on the client too (its cost
//    per byte grows with what it has in flight, see the README).
import { fork } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { RTCSctpTransport, type RTCDataChannel, type RTCPeerConnection } from 'werift';

import { SctpAssociation } from '../src/webrtc/sctp/SctpAssociation.js';
import { attach, channelOpen, offerAndConnect } from '../test/datachannels/helpers.js';
import type { TestFerry } from '../test/helpers/ferry.js';
import { startFerryProcess, type FerryProcess } from '../test/helpers/ferryProcess.js';
import { closePeer, connectionState, loopbackPeer } from '../test/helpers/werift.js';
import type { Figures } from './figures.js';

const BIG = 64 * 1024;
const SMALL = 1024;
const ECHO_BIG = 16 * 1024;
const WINDOW = 64;
/** A media range no other benchmark's ferry uses. */
const MEDIA_PORTS = { rtp_port_min: 46500, rtp_port_max: 46599 };

/** CPU ns of a process's threads (run time from schedstat): all of them, and ferry's media threads. */
function processCpuNs(pid: number): { all: number; media: number } {
  let all = 0;
  let media = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      all += ns;
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').startsWith('ferry-media-')) media += ns;
    } catch {
      /* ended meanwhile */
    }
  }
  return { all, media };
}

function payload(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 64) b[i] = (seed + i) & 0xff;
  return b;
}

// ---- 1. the protocol alone ----------------------------------------------------------------

interface Measured {
  messages: number;
  bytes: number;
  cpuNs: number;
}

/** ferry's association pair: packets handed over through a queue, timers on a real clock. */
function ferrySctp(size: number, seconds: number): Measured {
  const queue: { to: SctpAssociation; packet: Buffer }[] = [];
  let received = 0;
  let receivedBytes = 0;
  const make = (peer: () => SctpAssociation, onMessage: (data: Buffer) => void) =>
    new SctpAssociation({
      localPort: 5000,
      remotePort: 5000,
      receiveWindow: 1024 * 1024 + 256 * 1024,
      maxMessageSize: 1024 * 1024,
      maxSendBuffer: 8 * 1024 * 1024,
      now: () => performance.now(),
      output: (packet) => queue.push({ to: peer(), packet }),
      onEstablished: () => undefined,
      onMessage: (_s, _p, data) => onMessage(data),
      onIncomingStreamsReset: () => undefined,
      onOutgoingStreamsReset: () => undefined,
      onClosed: () => undefined,
    });
  const client: SctpAssociation = make(() => server, () => undefined);
  const server: SctpAssociation = make(() => client, (data) => {
    received++;
    receivedBytes += data.length;
  });
  const pump = () => {
    for (let item = queue.shift(); item; item = queue.shift()) item.to.receive(item.packet);
  };
  client.connect();
  pump();
  const message = payload(size, 1);
  const start = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  let sent = 0;
  while (performance.now() < end) {
    // Keep about a megabyte queued: the sender's windows decide what goes.
    while (client.bufferedAmount < 1024 * 1024) {
      client.send(1, 53, message, { ordered: true });
      sent++;
    }
    pump();
    if (queue.length === 0) {
      // Nothing in flight: a delayed SACK is due; run the timers.
      client.handleTimeout();
      server.handleTimeout();
      pump();
    }
  }
  const used = process.cpuUsage(start);
  client.close();
  return { messages: received, bytes: receivedBytes, cpuNs: (used.user + used.system) * 1000 };
}

/** werift's SCTP class (not exported by name: taken from an RTCSctpTransport). */
function weriftSctpClass(): any {
  const probe = new RTCSctpTransport();
  const noEvent = { subscribe: () => ({ unSubscribe: () => undefined }) };
  probe.setDtlsTransport({ id: 'bench', onStateChange: noEvent, dataReceiver: () => undefined, sendData: async () => undefined } as never);
  return (probe as any).sctp.constructor;
}

async function weriftSctp(size: number, seconds: number): Promise<Measured> {
  const Sctp = weriftSctpClass();
  const pending: (() => void)[] = [];
  const link = (deliver: () => any) => ({
    send: async (buf: Buffer) => {
      pending.push(() => deliver().handleData(buf).catch(() => undefined));
    },
    close: () => undefined,
  });
  let client: any;
  let server: any;
  client = Sctp.client(link(() => server), 5000);
  server = Sctp.server(link(() => client), 5000);
  let received = 0;
  let receivedBytes = 0;
  server.onReceive.subscribe((_s: number, _p: number, data: Buffer) => {
    received++;
    receivedBytes += data.length;
  });
  let pumping = true;
  const pump = () => {
    for (let f = pending.shift(); f; f = pending.shift()) f();
    if (pumping) setImmediate(pump);
  };
  pump();
  client.setRemotePort(5000);
  server.setRemotePort(5000);
  await server.start(5000);
  await client.start(5000);
  for (let i = 0; i < 200 && client.associationState !== 4; i++) await new Promise((r) => setTimeout(r, 5));
  const message = payload(size, 2);
  const start = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  // werift's send waits until its queue drains; a window of sends keeps it busy.
  const inFlight = new Set<Promise<void>>();
  while (performance.now() < end) {
    while (inFlight.size < 16) {
      const p: Promise<void> = client.send(1, 53, message, { ordered: true }).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.race(inFlight);
  }
  const used = process.cpuUsage(start);
  pumping = false;
  await client.stop().catch(() => undefined);
  await server.stop().catch(() => undefined);
  return { messages: received, bytes: receivedBytes, cpuNs: (used.user + used.system) * 1000 };
}

// ---- 2. echo on loopback ------------------------------------------------------------------

interface EchoRun {
  /** Messages echoed and the echoing process's CPU over the measured window. */
  messages: number;
  bytes: number;
  seconds: number;
  echoCpuNs: number;
  /** Of which ferry's media threads (0 for werift). */
  mediaCpuNs: number;
}

/** Sends `size`-byte messages with WINDOW outstanding for `seconds`; the echoing process is `pid`. */
async function echoWindow(dc: RTCDataChannel, size: number, seconds: number, pid: number): Promise<EchoRun> {
  const message = payload(size, 3);
  let echoed = 0;
  let echoedBytes = 0;
  let sent = 0;
  let wake: (() => void) | null = null;
  const sub = dc.onMessage.subscribe((m) => {
    echoed++;
    echoedBytes += typeof m === 'string' ? m.length : m.length;
    wake?.();
  });
  const fill = () => {
    while (sent - echoed < WINDOW) {
      dc.send(message);
      sent++;
    }
  };
  // Warm-up, then the measured window.
  const warm = performance.now() + 300;
  while (performance.now() < warm) {
    fill();
    await new Promise<void>((r) => (wake = r));
  }
  const m0 = echoed;
  const b0 = echoedBytes;
  const cpu0 = processCpuNs(pid);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    fill();
    await Promise.race([new Promise<void>((r) => (wake = r)), new Promise((r) => setTimeout(r, 1000))]);
  }
  const t1 = performance.now();
  const cpu1 = processCpuNs(pid);
  const run = { messages: echoed - m0, bytes: echoedBytes - b0, seconds: (t1 - t0) / 1000, echoCpuNs: cpu1.all - cpu0.all, mediaCpuNs: cpu1.media - cpu0.media };
  // Let what is outstanding come back before the next run on the same channel.
  const drainEnd = performance.now() + 5000;
  while (echoed < sent && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 10));
  sub.unSubscribe();
  return run;
}

async function echoThroughFerry(seconds: number): Promise<{ small: EchoRun; big: EchoRun }> {
  const fp: FerryProcess = await startFerryProcess({ media: { ...MEDIA_PORTS } });
  // The helpers take a TestFerry; only its WebSocket URL is used.
  const peer = await attach({ wsUrl: fp.wsUrl } as TestFerry, 'janus.plugin.echotest');
  try {
    const dc = peer.pc.createDataChannel('JanusDataChannel');
    await offerAndConnect(peer, { audio: false, video: false });
    await channelOpen(dc);
    const small = await echoWindow(dc, SMALL, seconds, fp.pid);
    const big = await echoWindow(dc, ECHO_BIG, seconds, fp.pid);
    return { small, big };
  } finally {
    await peer.close();
    await closePeer(peer.pc);
    await fp.stop();
  }
}

async function echoThroughWerift(seconds: number): Promise<{ small: EchoRun; big: EchoRun }> {
  const child = fork(fileURLToPath(new URL('./datachannel-echo-peer.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const next = (type: string) => new Promise<{ type: string; sdp?: string }>((resolve) => {
    const on = (msg: { type: string; sdp?: string }) => {
      if (msg.type !== type) return;
      child.off('message', on);
      resolve(msg);
    };
    child.on('message', on);
  });
  let pc: RTCPeerConnection | null = null;
  try {
    await next('ready');
    pc = loopbackPeer({ maxMessageSize: 1024 * 1024 });
    const dc = pc.createDataChannel('JanusDataChannel');
    await pc.setLocalDescription(await pc.createOffer());
    const answered = next('answer');
    child.send({ type: 'offer', sdp: pc.localDescription!.sdp });
    await pc.setRemoteDescription({ type: 'answer', sdp: (await answered).sdp! });
    await connectionState(pc, 'connected');
    await channelOpen(dc);
    const small = await echoWindow(dc, SMALL, seconds, child.pid!);
    const big = await echoWindow(dc, ECHO_BIG, seconds, child.pid!);
    return { small, big };
  } finally {
    child.send({ type: 'stop' });
    await new Promise((r) => child.once('exit', r));
    if (pc) await closePeer(pc);
  }
}

export async function benchDataChannels(figures: Figures, short: boolean): Promise<void> {
  const seconds = short ? 0.5 : 2;
  for (const [name, run] of [
    ['ferry', (size: number) => Promise.resolve(ferrySctp(size, seconds))],
    ['werift', (size: number) => weriftSctp(size, seconds)],
  ] as const) {
    const big = await run(BIG);
    figures.add(`datachannel.sctp.${name}.mb_per_s`, big.bytes / 1e6 / (big.cpuNs / 1e9), 'MB/s of CPU');
    const small = await run(SMALL);
    figures.add(`datachannel.sctp.${name}.us_per_message`, small.cpuNs / 1000 / small.messages, 'µs/message (1 KiB)');
  }
  for (const [name, run] of [
    ['ferry', echoThroughFerry],
    ['werift', echoThroughWerift],
  ] as const) {
    const { small, big } = await run(seconds);
    const prefix = name === 'ferry' ? 'datachannel.echo' : 'datachannel.echo.werift';
    figures.add(`${prefix}.mb_per_s`, big.bytes / 1e6 / big.seconds, 'MB/s (16 KiB messages)');
    figures.add(`${prefix}.cpu_ms_per_mb`, big.echoCpuNs / 1e6 / (big.bytes / 1e6), `ms CPU of the echoing ${name} per MB`);
    figures.add(`${prefix}.us_per_message`, small.echoCpuNs / 1000 / small.messages, `µs CPU of the echoing ${name} per 1 KiB message`);
    if (name === 'ferry') figures.add(`${prefix}.media_us_per_message`, small.mediaCpuNs / 1000 / small.messages, 'µs of it on the media threads');
    figures.add(`${prefix}.messages_per_s`, small.messages / small.seconds, 'messages/s (1 KiB)');
  }
}
