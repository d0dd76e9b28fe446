// What one PeerConnection tells the event handlers of its transport (Janus `webrtc` events):
// ICE states, ferry's and the peer's candidates, the pair in use and DTLS states, each once
// per change. Without a handler that wants them (`report` absent) every call returns at once.
import type { TrickleCandidate } from '../core/Media.js';
import type { WebRtcTransportEvent } from '../events/JanusEvents.js';
import type { RemoteAddress } from '../media/MediaEngine.js';

type ReportedIce = 'none' | 'connecting' | 'connected' | 'ready' | 'failed';

export class TransportReporter {
  private ice: ReportedIce = 'none';
  private dtlsTrying = false;
  private pair: string | null = null;
  private announcedUfrag: string | null = null;

  constructor(
    private readonly report: ((event: WebRtcTransportEvent) => void) | undefined,
    private readonly candidateAddresses: readonly string[],
  ) {}

  /** New ICE credentials (RFC 8445 §9 restart): the states start over. */
  iceRestarted(): void {
    this.ice = 'none';
  }

  /** ferry's host candidates, once per set of ICE credentials, as Sdp.ts writes them in the SDP (foundation, component, udp, priority). */
  localDescription(ufrag: string, port: number): void {
    if (!this.report || this.announcedUfrag === ufrag) return;
    this.announcedUfrag = ufrag;
    this.candidateAddresses.forEach((ip, i) => this.report!({ kind: 'local-candidate', candidate: `${i + 1} 1 udp ${2130706431 - i} ${ip} ${port} typ host` }));
  }

  remoteCandidates(candidates: readonly TrickleCandidate[]): void {
    if (!this.report) return;
    for (const c of candidates) if (typeof c['candidate'] === 'string') this.report({ kind: 'remote-candidate', candidate: c['candidate'] });
  }

  /** A negotiation completed: ICE waits for the peer's checks. */
  negotiated(): void {
    if (this.ice !== 'none') return;
    this.ice = 'connecting';
    this.report?.({ kind: 'ice', state: 'connecting' });
  }

  /** The pair in use changed (first validated check, or the peer moved). */
  selected(address: RemoteAddress, localPort: number): void {
    if (!this.report) return;
    const pair = `${address.address}:${address.port}`;
    if (pair === this.pair) return;
    this.pair = pair;
    // When ferry offers, the peer's checks may come before its answer: still connecting first.
    this.negotiated();
    if (this.ice === 'connecting') {
      this.ice = 'connected';
      this.report({ kind: 'ice', state: 'connected' });
    }
    const local = { address: this.candidateAddresses[0] ?? '0.0.0.0', port: localPort };
    this.report({ kind: 'selected-pair', local, remote: { address: address.address, port: address.port } });
  }

  dtlsStarted(): void {
    if (this.dtlsTrying) return;
    this.dtlsTrying = true;
    this.report?.({ kind: 'dtls', state: 'trying' });
  }

  /** DTLS is done: the transport is complete, so ICE is `ready` too. */
  dtlsConnected(): void {
    this.report?.({ kind: 'dtls', state: 'connected' });
    if (this.ice === 'ready') return;
    // DTLS can finish before the nomination is reported (PeerConnection's state table): ICE got there first.
    if (this.ice === 'connecting') this.report?.({ kind: 'ice', state: 'connected' });
    this.ice = 'ready';
    this.report?.({ kind: 'ice', state: 'ready' });
  }

  dtlsFailed(): void {
    this.report?.({ kind: 'dtls', state: 'failed' });
  }

  iceFailed(): void {
    if (this.ice === 'failed') return;
    this.ice = 'failed';
    this.report?.({ kind: 'ice', state: 'failed' });
  }
}
