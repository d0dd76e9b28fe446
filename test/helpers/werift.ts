// werift RTCPeerConnection as a test peer, kept on loopback: no public STUN
// server (werift falls back to one even with iceServers: []), no interface
// scan, host candidates on 127.0.0.1 only. Every test uses this one helper.
import os from 'node:os';

import { Connection, RTCPeerConnection, type RTCPeerConnectionConfig } from 'werift';

let patched = false;

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
