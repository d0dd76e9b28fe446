// The DTLS side of one PeerConnection (RFC 5763, RFC 5764): werift's DTLS
// stack runs the handshake over the engine endpoint's raw send, the peer's
// certificate is checked against its a=fingerprint (werift does not check it),
// and the DTLS-SRTP keys are derived for the engine. Which role to take, the
// records that come before the handshake can start, and the failures that end
// the PeerConnection are decided here; what the keys are used for is not.
import { DtlsClient, DtlsServer, type DtlsSocket } from 'werift';

import type { SrtpParameters, SrtpProfileName } from '../media/MediaEngine.js';
import { certificateFingerprint, type DtlsCertificate } from './DtlsCertificate.js';
import { RepeatedFlightFilter } from './RepeatedFlightFilter.js';
import type { DtlsSetup, Fingerprint } from './Sdp.js';

/** werift's DTLS-SRTP profile ids (RFC 5764 §4.1.2, RFC 7714 §14.2) → ferry's names, in preference order. */
const DTLS_SRTP_PROFILES: { id: number; name: SrtpProfileName; keyLen: number; saltLen: number }[] = [
  { id: 0x0007, name: 'AEAD_AES_128_GCM', keyLen: 16, saltLen: 12 },
  { id: 0x0001, name: 'AES_CM_128_HMAC_SHA1_80', keyLen: 16, saltLen: 14 },
];

/** A fragmented ClientHello (post-quantum key shares make it two records) and a retransmission. */
const MAX_EARLY_DTLS_RECORDS = 8;

export type DtlsRole = 'server' | 'client';

export interface DtlsSessionOptions {
  certificate: DtlsCertificate;
  /** DTLS-SRTP profiles accepted, most preferred first (default: GCM, then AES-CM-80). */
  srtpProfiles?: SrtpProfileName[];
  /** Sends one DTLS record to the peer (the PeerConnection knows where it is, if anywhere yet). */
  send(data: Buffer): void;
  /** The peer's a=fingerprint as the current remote description says, read when the handshake ends. */
  remoteFingerprint(): Fingerprint | null;
  /** The handshake is done and the peer's certificate matched: the SRTP keys for the engine. */
  onConnected(keys: SrtpParameters): void;
  /** The handshake failed, the peer sent an alert or its certificate did not match: the PeerConnection fails. */
  onFailed(reason: string): void;
  /** DTLS application data from the peer (RFC 8261: SCTP packets of the data channels). */
  onApplicationData?(data: Buffer): void;
  log?: { debug(obj: object, msg: string): void };
}

export class DtlsSession {
  private socket: DtlsSocket | null = null;
  private receiver: ((data: Buffer) => void) | null = null;
  /** DTLS records that arrived before the answer let ferry start DTLS (bounded; replayed then). */
  private earlyRecords: Buffer[] = [];
  private currentRole: DtlsRole | null = null;
  /** As the server: the client's stale handshake records are kept from werift (see RepeatedFlightFilter). */
  private repeatedFlight: RepeatedFlightFilter | null = null;
  private closed = false;
  /** The handshake finished and the peer's certificate matched its fingerprint. */
  private connected = false;

  constructor(private readonly options: DtlsSessionOptions) {}

  /** The role taken (null until chosen); it stays for the PeerConnection's life, across renegotiations. */
  get role(): DtlsRole | null {
    return this.currentRole;
  }

  /**
   * ferry answers: its a=setup decides the role (RFC 8842 §5.3: passive → DTLS server).
   * Only the first answer chooses; later ones keep the role.
   */
  chooseRoleForSetup(localSetup: DtlsSetup): void {
    this.currentRole ??= localSetup === 'passive' ? 'server' : 'client';
  }

  /**
   * Starts the handshake once the remote description is known; the peer's a=setup decides
   * the role if ferry's own answer did not (ferry offered actpass). No-op when started.
   */
  start(remoteSetup: DtlsSetup): void {
    if (this.socket || this.closed) return;
    const role = this.currentRole ?? (remoteSetup === 'passive' ? 'client' : 'server');
    this.currentRole = role;
    const transport = {
      type: 'udp',
      address: {} as never,
      closed: false,
      onData: (_data: Buffer) => {},
      send: async (data: Buffer) => this.options.send(data),
      close: async () => {
        transport.closed = true;
      },
    };
    const cert = this.options.certificate;
    const common = {
      transport: transport as never,
      cert: cert.certPem,
      key: cert.keyPem,
      signatureHash: cert.signatureHash as never,
      srtpProfiles: this.profilePreference().map((p) => p.id) as never,
      extendedMasterSecret: true,
    };
    const dtls: DtlsSocket = role === 'server' ? new DtlsServer({ ...common, certificateRequest: true }) : new DtlsClient(common);
    this.socket = dtls;
    this.repeatedFlight = role === 'server' ? new RepeatedFlightFilter() : null;
    this.receiver = (data) => transport.onData(data);
    // Replay the ClientHello that came early instead of waiting for the peer's retransmission (1 s and up).
    const early = this.earlyRecords;
    this.earlyRecords = [];
    queueMicrotask(() => {
      for (const record of early) this.feed(record);
    });
    dtls.onConnect.subscribe(() => this.onConnect(dtls));
    dtls.onData.subscribe((data: Buffer) => {
      if (this.socket === dtls && this.connected) this.options.onApplicationData?.(data);
    });
    dtls.onError.subscribe((err: Error) => {
      if (this.socket === dtls) this.options.onFailed(`DTLS alert: ${err?.message ?? 'error'}`);
    });
    dtls.onClose.subscribe(() => {
      if (this.socket === dtls) this.options.onFailed('DTLS alert');
    });
  }

  /** A DTLS record from the peer: into the handshake, or kept (bounded) until it starts. */
  receive(data: Buffer): void {
    if (this.closed) return;
    if (this.receiver) this.feed(data);
    else if (this.earlyRecords.length < MAX_EARLY_DTLS_RECORDS) this.earlyRecords.push(data);
  }

  /**
   * Sends one DTLS application-data record (an SCTP packet, RFC 8261 §5) once the handshake is
   * done and the peer's certificate matched; false otherwise.
   */
  sendApplicationData(data: Buffer): boolean {
    const dtls = this.socket;
    if (!dtls || !this.connected) return false;
    // werift encrypts synchronously and hands the record to `send` at once; the promise only
    // reports a failure of that send, which the transport never has.
    dtls.send(data).catch(() => undefined);
    return true;
  }

  /** ICE selected the peer's address for the first time: as the client, ferry sends its ClientHello now. */
  peerReachable(): void {
    if (this.currentRole === 'client' && this.socket instanceof DtlsClient) {
      this.socket.connect().catch((err: unknown) => this.options.onFailed(`DTLS handshake failed: ${String(err)}`));
    }
  }

  /** Ends the DTLS association. Idempotent; nothing is reported after it. */
  close(): void {
    this.closed = true;
    this.connected = false;
    const dtls = this.socket;
    this.socket = null;
    this.receiver = null;
    this.earlyRecords = [];
    if (dtls) {
      try {
        dtls.close();
      } catch {
        /* a half-open handshake may refuse to close cleanly; the socket goes anyway */
      }
    }
  }

  private feed(data: Buffer): void {
    if (this.closed) return;
    const records = this.repeatedFlight && !this.connected ? this.repeatedFlight.filter(data) : data;
    if (records !== data) this.options.log?.debug({ left: this.repeatedFlight?.dropped }, 'stale DTLS handshake records left out');
    if (!records) return;
    try {
      this.receiver?.(records);
    } catch (err) {
      // Garbage or truncated records: werift rejects them; ferry counts on and keeps the handshake.
      this.options.log?.debug({ err }, 'DTLS record rejected');
    }
  }

  private profilePreference(): typeof DTLS_SRTP_PROFILES {
    const wanted = this.options.srtpProfiles;
    if (!wanted?.length) return DTLS_SRTP_PROFILES;
    return wanted.map((name) => DTLS_SRTP_PROFILES.find((p) => p.name === name)).filter((p) => p !== undefined);
  }

  /** RFC 5763 §5: the peer's certificate must match its a=fingerprint; then RFC 5764 §4.2 keys. */
  private onConnect(dtls: DtlsSocket): void {
    const expected = this.options.remoteFingerprint();
    if (this.socket !== dtls || !expected) return;
    const fail = this.options.onFailed;
    const cert = dtls.remoteCertificate;
    if (!cert) return fail('DTLS fingerprint mismatch: no peer certificate');
    let actual: string;
    try {
      actual = certificateFingerprint(cert, expected.algorithm);
    } catch {
      return fail(`DTLS fingerprint mismatch: unsupported hash ${expected.algorithm}`);
    }
    if (actual !== expected.value) return fail('DTLS fingerprint mismatch');
    const negotiated = DTLS_SRTP_PROFILES.find((p) => p.id === dtls.srtp.srtpProfile);
    if (!negotiated) return fail('DTLS-SRTP: no SRTP profile negotiated');
    const keys = dtls.extractSessionKeys(negotiated.keyLen, negotiated.saltLen);
    this.connected = true;
    this.options.onConnected({
      profile: negotiated.name,
      localKey: keys.localKey,
      localSalt: keys.localSalt,
      remoteKey: keys.remoteKey,
      remoteSalt: keys.remoteSalt,
    });
  }
}
