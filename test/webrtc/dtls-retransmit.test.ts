// ferry's DTLS server (DtlsSession over werift) against werift's DTLS client, with the client's
// flight 5 delivered twice before the server has answered it: what Chromium does when its
// retransmission timer (as short as the ICE round trip) fires while ferry's event loop is busy;
// and with a stale first ClientHello arriving after the second (a late retransmission).
// The handshake must end with the same keys on both sides, and the client's application data
// (SCTP, RFC 8261) must reach the server: before RepeatedFlightFilter, the repeated
// ClientKeyExchange made werift derive its keys again over the wrong transcript, and a data
// channel on such a PeerConnection never opened.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DtlsClient } from 'werift';

import type { SrtpParameters } from '../../src/media/MediaEngine.js';
import { DtlsCertificate } from '../../src/webrtc/DtlsCertificate.js';
import { DtlsSession } from '../../src/webrtc/DtlsSession.js';
import { RepeatedFlightFilter } from '../../src/webrtc/RepeatedFlightFilter.js';
import { waitFor } from '../helpers/http.js';

const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const CERTIFICATE = 11;

/** The first record's content type, epoch and (for a handshake in the clear) message type and sequence. */
function firstRecord(datagram: Buffer): { type: number; epoch: number; msgType: number | null; messageSeq: number } {
  const type = datagram[0]!;
  const epoch = datagram.readUInt16BE(3);
  const clear = type === HANDSHAKE && epoch === 0;
  return { type, epoch, msgType: clear ? datagram[13]! : null, messageSeq: clear ? datagram.readUInt16BE(17) : -1 };
}

/** How the client's records are disturbed on their way to the server. */
type Disturbance = 'none' | 'repeat-flight5' | 'stale-client-hello';

interface Pair {
  server: DtlsSession;
  client: DtlsClient;
  serverKeys: Promise<SrtpParameters>;
  clientConnected: Promise<void>;
  serverReceived: Buffer[];
  clientReceived: Buffer[];
  failures: string[];
}

/** A server DtlsSession and a werift client, the client's records disturbed as asked. */
async function handshake(disturbance: Disturbance): Promise<Pair> {
  const [serverCert, clientCert] = await Promise.all([DtlsCertificate.generate(), DtlsCertificate.generate()]);
  const serverReceived: Buffer[] = [];
  const clientReceived: Buffer[] = [];
  const failures: string[] = [];
  let toClient: (d: Buffer) => void = () => undefined;
  let resolveKeys!: (k: SrtpParameters) => void;
  const serverKeys = new Promise<SrtpParameters>((r) => (resolveKeys = r));
  const server = new DtlsSession({
    certificate: serverCert,
    send: (d) => setImmediate(() => toClient(d)),
    remoteFingerprint: () => clientCert.fingerprint,
    onConnected: (keys) => resolveKeys(keys),
    onFailed: (reason) => failures.push(reason),
    onApplicationData: (d) => serverReceived.push(Buffer.from(d)),
  });
  server.chooseRoleForSetup('passive');
  server.start('active');

  // The client's flight 5 (Certificate … Finished) is held until its last record, then fed whole,
  // once or twice, in one synchronous run.
  // The first ClientHello is kept, to come again right after the second one.
  let flight5: Buffer[] | null = null;
  let firstHello: Buffer | null = null;
  const deliver = (d: Buffer) => {
    const first = firstRecord(d);
    if (disturbance === 'stale-client-hello' && first.msgType === CLIENT_HELLO) {
      if (first.messageSeq === 0) firstHello ??= Buffer.from(d);
      else if (firstHello) {
        const stale = firstHello;
        firstHello = null;
        return setImmediate(() => {
          server.receive(d);
          server.receive(stale);
        });
      }
    }
    if (first.msgType === CERTIFICATE) flight5 = [];
    if (!flight5) return setImmediate(() => server.receive(d));
    flight5.push(Buffer.from(d));
    if (first.epoch !== 1) return;
    const held = flight5;
    flight5 = null;
    setImmediate(() => {
      for (const copy of disturbance === 'repeat-flight5' ? [held, held] : [held]) for (const record of copy) server.receive(record);
    });
  };
  const transport = {
    type: 'udp',
    address: {} as never,
    closed: false,
    onData: (_d: Buffer) => undefined,
    send: async (d: Buffer) => deliver(d),
    close: async () => undefined,
  };
  const client = new DtlsClient({
    transport: transport as never,
    cert: clientCert.certPem,
    key: clientCert.keyPem,
    signatureHash: clientCert.signatureHash as never,
    srtpProfiles: [0x0007] as never,
    extendedMasterSecret: true,
  });
  toClient = (d) => transport.onData(d);
  client.onData.subscribe((d: Buffer) => clientReceived.push(Buffer.from(d)));
  const clientConnected = new Promise<void>((r) => client.onConnect.subscribe(() => r()));
  void client.connect().catch((err: unknown) => failures.push(`client: ${String(err)}`));
  return { server, client, serverKeys, clientConnected, serverReceived, clientReceived, failures };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function exchange(pair: Pair): Promise<void> {
  const keys = await within(pair.serverKeys, 10_000, 'the server connected');
  await within(pair.clientConnected, 10_000, 'the client connected');
  // RFC 5764 §4.2: the client's write key is the server's read key, and the other way round.
  const client = pair.client.extractSessionKeys(16, 12);
  assert.ok(client.localKey.equals(keys.remoteKey), 'the server reads with the key the client writes with');
  assert.ok(client.remoteKey.equals(keys.localKey), 'the client reads with the key the server writes with');
  assert.ok(pair.server.sendApplicationData(Buffer.from('to the client')));
  await pair.client.send(Buffer.from('to the server'));
  // Bounded; the assertions below say what did not arrive.
  await waitFor(() => pair.serverReceived.length > 0 && pair.clientReceived.length > 0).catch(() => undefined);
  assert.equal(pair.serverReceived.map(String), ['to the server'], 'the client\'s application data reached the server');
  assert.equal(pair.clientReceived.map(String), ['to the client']);
  assert.equal(pair.failures, []);
  pair.server.close();
  pair.client.close();
}

test('a handshake whose flight 5 comes once: the same keys on both sides, application data both ways', async () => {
  await exchange(await handshake('none'));
});

test('flight 5 repeated before the server answered: still the same keys, and the client\'s data still arrives', async () => {
  await exchange(await handshake('repeat-flight5'));
});

test('the first ClientHello again after the second: the server keeps the random and key it sent in flight 4', async () => {
  await exchange(await handshake('stale-client-hello'));
});

test('RepeatedFlightFilter passes a first flight 5 and a Finished whole, and leaves out only the repeated clear records', () => {
  const record = (type: number, epoch: number, body: Buffer) => {
    const header = Buffer.alloc(13);
    header[0] = type;
    header.writeUInt16BE(0xfefd, 1);
    header.writeUInt16BE(epoch, 3);
    header.writeUInt16BE(body.length, 11);
    return Buffer.concat([header, body]);
  };
  const handshakeBody = (msgType: number, messageSeq: number) => {
    const b = Buffer.alloc(16);
    b[0] = msgType;
    b.writeUInt16BE(messageSeq, 4);
    return b;
  };
  const flight = Buffer.concat([record(22, 0, handshakeBody(11, 2)), record(22, 0, handshakeBody(16, 3)), record(22, 0, handshakeBody(15, 4)), record(20, 0, Buffer.from([1])), record(22, 1, Buffer.alloc(40))]);
  const filter = new RepeatedFlightFilter();
  assert.ok(filter.filter(flight)!.equals(flight), 'the first copy passes whole');
  const again = filter.filter(flight)!;
  assert.is(again.length, flight.length - 3 * (13 + 16), 'the second copy loses its three clear flight-5 records');
  assert.is(again[0], 20, 'ChangeCipherSpec and the encrypted Finished still pass');
  assert.is(filter.dropped, 3);
  const hello = record(22, 0, handshakeBody(1, 0));
  assert.ok(filter.filter(hello)!.equals(hello) && filter.filter(hello)!.equals(hello), 'a repeated first ClientHello passes (its HelloVerifyRequest may have been lost)');
  const helloWithCookie = record(22, 0, handshakeBody(1, 1));
  assert.ok(filter.filter(helloWithCookie)!.equals(helloWithCookie) && filter.filter(helloWithCookie)!.equals(helloWithCookie), 'so does the second, repeated');
  assert.is(filter.filter(hello), null, 'the first ClientHello after the second is stale');
  assert.is(filter.filter(record(22, 0, handshakeBody(16, 3))), null, 'a datagram of nothing but repeats is left out');
  assert.is(filter.filter(Buffer.from([22, 0xfe]))!.length, 2, 'a truncated datagram passes to werift, which rejects it');
});

test.run();
