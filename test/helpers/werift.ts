// werift RTCPeerConnection as a test peer, kept on loopback: no public STUN
// server (werift falls back to one even with iceServers: []), no interface
// scan, host candidates on 127.0.0.1 only. Every test uses this one helper.
import dgram from 'node:dgram';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';

import { Connection, RTCPeerConnection, type RTCPeerConnectionConfig, type RtpPacket } from 'werift';

let patched = false;
/** UDP sockets werift opened; werift 0.25 leaves some bound after close(), which would keep a test process alive. */
const weriftSockets = new Set<dgram.Socket>();

export function keepWeriftOnLoopback(): void {
  if (patched) return;
  patched = true;
  const proto = Connection.prototype as unknown as {
    applyStunTurnServersFromOptions: (this: { options: { stunServer?: unknown }; stunServer?: unknown }) => void;
  };
  const original = proto.applyStunTurnServersFromOptions;
  proto.applyStunTurnServersFromOptions = function patchedApply() {
    original.call(this);
    if (!this.options.stunServer) this.stunServer = undefined;
  };
  (os as unknown as { networkInterfaces: () => object }).networkInterfaces = () => ({});
  const createSocket = dgram.createSocket;
  (dgram as unknown as { createSocket: typeof dgram.createSocket }).createSocket = ((...args: Parameters<typeof dgram.createSocket>) => {
    const socket = createSocket(...args);
    weriftSockets.add(socket);
    // werift decrypts in JavaScript: a larger receive buffer absorbs bursts while it catches up
    // (the kernel caps this at net.core.rmem_max).
    socket.once('listening', () => {
      try {
        socket.setRecvBufferSize(2 * 1024 * 1024);
      } catch {
        /* not permitted: keep the default */
      }
    });
    socket.once('close', () => weriftSockets.delete(socket));
    return socket;
  }) as typeof dgram.createSocket;
  // werift's ESM build imports createSocket by name: make named imports see the wrapper.
  syncBuiltinESMExports();
}

/** Closes a peer and any socket werift left bound. */
export async function closePeer(pc: RTCPeerConnection): Promise<void> {
  await pc.close().catch(() => undefined);
  for (const s of [...weriftSockets]) {
    try {
      s.close();
    } catch {
      /* already closed */
    }
  }
  weriftSockets.clear();
}

export function loopbackPeer(config: Partial<RTCPeerConnectionConfig> = {}): RTCPeerConnection {
  keepWeriftOnLoopback();
  return new RTCPeerConnection({
    iceServers: [],
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceUseIpv6: false,
    iceFilterCandidatePair: (pair) => pair.remoteCandidate.host.startsWith('127.'),
    ...config,
  });
}

/** Resolves when the peer's connection state becomes `state`; rejects after `ms`. */
export function connectionState(pc: RTCPeerConnection, state: string, ms = 10_000): Promise<void> {
  if (pc.connectionState === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection not ${state} within ${ms} ms (is ${pc.connectionState})`)), ms);
    const sub = pc.connectionStateChange.subscribe((s) => {
      if (s === state) {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      }
    });
  });
}

/**
 * Everything each transceiver of `pc` receives, by mid, as `record` makes it. Call it right
 * after setRemoteDescription: werift fires onTrack during that call, so the tracks the
 * receivers already hold are taken as well as those to come.
 */
export function receivedByMid<T>(pc: RTCPeerConnection, record: (rtp: RtpPacket) => T): Map<string, T[]> {
  const received = new Map<string, T[]>();
  const seen = new WeakSet<object>();
  for (const t of pc.getTransceivers()) {
    const packets: T[] = [];
    received.set(t.mid ?? '', packets);
    const follow = (track: { onReceiveRtp: { subscribe(cb: (rtp: RtpPacket) => void): unknown } }) => {
      if (seen.has(track)) return;
      seen.add(track);
      track.onReceiveRtp.subscribe((rtp) => packets.push(record(rtp)));
    };
    for (const track of t.receiver.tracks) follow(track);
    t.onTrack.subscribe((track) => follow(track));
  }
  return received;
}
