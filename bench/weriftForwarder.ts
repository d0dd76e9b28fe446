/**
 * The pure TypeScript baseline the native forwarding figures are set beside:
 * a dgram socket on 127.0.0.1 that decrypts each packet once with werift-rtp
 * (when the input is SRTP), then rewrites SSRC and sequence number and
 * encrypts it once per output, as a forwarder written on werift would.
 */
import { createSocket } from 'node:dgram';
import { RtpPacket } from 'werift-rtp';

import type { SrtpProfileName } from '../src/media/MediaEngine.js';
import { newKeys, weriftSession, type KeyPair } from '../test/helpers/rtp.js';

export interface WeriftForwarder {
  /** Where to send the input. */
  port: number;
  /** Packets sent to outputs so far. */
  sent(): number;
  close(): void;
}

export async function startWeriftForwarder(options: {
  profile: SrtpProfileName;
  /** The input's SRTP keys, or null for plain RTP in. */
  inputKeys: KeyPair | null;
  outputPorts: number[];
  firstSsrc: number;
}): Promise<WeriftForwarder> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  const input = options.inputKeys ? weriftSession(options.profile, options.inputKeys, options.inputKeys) : null;
  const outputs = options.outputPorts.map((port, i) => {
    const k = newKeys(options.profile);
    return { port, ssrc: options.firstSsrc + i, session: weriftSession(options.profile, k, k), seq: 0 };
  });
  let sent = 0;
  socket.on('message', (msg) => {
    try {
      const packet = RtpPacket.deSerialize(input ? input.decrypt(msg) : msg);
      for (const o of outputs) {
        packet.header.ssrc = o.ssrc;
        packet.header.sequenceNumber = o.seq = (o.seq + 1) & 0xffff;
        socket.send(o.session.encrypt(packet.payload, packet.header), o.port, '127.0.0.1');
        sent++;
      }
    } catch {
      // dropped, as a forwarder would
    }
  });
  return { port: socket.address().port, sent: () => sent, close: () => socket.close() };
}
