/**
 * Dialog state (RFC 3261 §12): created by a 1xx-with-tag or 2xx to INVITE on
 * the UAC side (§12.1.2) or by sending one on the UAS side (§12.1.1); builds
 * in-dialog requests (§12.2.1.1) and the ACK for a 2xx (§13.2.2.4).
 */
import {
  SipHeaders, cseqOf, formatNameAddr, headerNameAddr, parseNameAddr, tagOf,
  type NameAddr, type SipRequest, type SipResponse,
} from './SipMessage.js';
import { applyRoutes, type RoutedRequest } from './RouteSet.js';

export type DialogState = 'early' | 'confirmed' | 'terminated';

export interface DialogId {
  callId: string;
  localTag: string;
  remoteTag: string;
}

export const dialogKey = (id: DialogId) => `${id.callId}|${id.localTag}|${id.remoteTag}`;

export interface InDialogOptions {
  body?: Buffer | string;
  contentType?: string;
  headers?: ReadonlyArray<readonly [string, string]>;
}

export class Dialog {
  state: DialogState;
  /** Route URIs in the order the next request must carry them. */
  routeSet: string[];
  remoteTarget: string;
  localSeq: number;
  remoteSeq: number | undefined;

  private constructor(
    readonly id: DialogId,
    readonly local: NameAddr,
    readonly remote: NameAddr,
    state: DialogState,
    routeSet: string[],
    remoteTarget: string,
    localSeq: number,
    remoteSeq: number | undefined,
    /** Our Contact (name-addr), sent in target-refresh requests. */
    readonly localContact: string,
  ) {
    this.state = state;
    this.routeSet = routeSet;
    this.remoteTarget = remoteTarget;
    this.localSeq = localSeq;
    this.remoteSeq = remoteSeq;
  }

  get key(): string {
    return dialogKey(this.id);
  }

  /**
   * §12.1.2: UAC side, from the INVITE we sent and a 1xx (with To tag) or 2xx.
   * The route set is the Record-Route list REVERSED; the remote target is the
   * response's Contact. Returns null when the response cannot form a dialog.
   */
  static asUac(invite: SipRequest, res: SipResponse, localContact: string): Dialog | null {
    const from = headerNameAddr(invite, 'From');
    const to = headerNameAddr(res, 'To');
    const localTag = tagOf(from);
    const remoteTag = tagOf(to);
    const callId = invite.headers.get('Call-ID');
    const cseq = cseqOf(invite);
    if (!from || !to || !localTag || !remoteTag || !callId || !cseq) return null;
    const contact = headerNameAddr(res, 'Contact');
    const routeSet = res.headers.getAll('Record-Route').map((v) => parseNameAddr(v)?.uri).filter((u): u is string => !!u).reverse();
    return new Dialog(
      { callId, localTag, remoteTag }, from, to, res.status < 200 ? 'early' : 'confirmed',
      routeSet, contact?.uri ?? invite.uri, cseq.seq, undefined, localContact,
    );
  }

  /** §12.1.1: UAS side; the route set is the Record-Route list in order. */
  static asUas(invite: SipRequest, localTag: string, localContact: string, state: DialogState): Dialog | null {
    const from = headerNameAddr(invite, 'From');
    const toOrig = headerNameAddr(invite, 'To');
    const remoteTag = tagOf(from) ?? '';
    const callId = invite.headers.get('Call-ID');
    const cseq = cseqOf(invite);
    const contact = headerNameAddr(invite, 'Contact');
    if (!from || !toOrig || !callId || !cseq || !contact) return null;
    const to: NameAddr = { ...toOrig, params: new Map(toOrig.params) };
    to.params.set('tag', localTag);
    const routeSet = invite.headers.getAll('Record-Route').map((v) => parseNameAddr(v)?.uri).filter((u): u is string => !!u);
    // §12.1.1: the local sequence number starts empty; we start from a random-free 1 on first use.
    return new Dialog({ callId, localTag, remoteTag }, to, from, state, routeSet, contact.uri, 0, cseq.seq, localContact);
  }

  /**
   * §12.2.2: a request with a lower CSeq than the last one is out of order
   * (answer 500). Returns false in that case; otherwise records the number.
   * ACK and CANCEL carry the INVITE's number and are not checked.
   */
  acceptRemoteCseq(req: SipRequest): boolean {
    const cseq = cseqOf(req);
    if (!cseq) return false;
    if (req.method === 'ACK' || req.method === 'CANCEL') return true;
    if (this.remoteSeq !== undefined && cseq.seq <= this.remoteSeq) return false;
    this.remoteSeq = cseq.seq;
    return true;
  }

  /** §12.2.1.2/§12.2.2: a target refresh (re-INVITE, UPDATE, or its 2xx) replaces the remote target. */
  refreshTarget(msg: SipRequest | SipResponse): void {
    const contact = headerNameAddr(msg, 'Contact');
    if (contact && contact.uri !== '*') this.remoteTarget = contact.uri;
  }

  private route(): RoutedRequest {
    return applyRoutes(this.remoteTarget, this.routeSet);
  }

  /** §12.2.1.1: an in-dialog request with the next local CSeq. Via is added by the transport user. */
  createRequest(method: string, opts: InDialogOptions = {}): { request: SipRequest; nextHop: string } {
    this.localSeq += 1;
    return this.build(method, this.localSeq, opts);
  }

  /** §13.2.2.4: the ACK for a 2xx carries the INVITE's CSeq number and the dialog's route set. */
  createAck(inviteSeq: number, opts: InDialogOptions = {}): { request: SipRequest; nextHop: string } {
    return this.build('ACK', inviteSeq, opts);
  }

  private build(method: string, seq: number, opts: InDialogOptions): { request: SipRequest; nextHop: string } {
    const routed = this.route();
    const headers = new SipHeaders();
    for (const r of routed.routeHeaders) headers.add('Route', r);
    headers.add('Max-Forwards', '70');
    headers.add('From', formatNameAddr(this.local));
    headers.add('To', formatNameAddr(this.remote));
    headers.add('Call-ID', this.id.callId);
    headers.add('CSeq', `${seq} ${method}`);
    if (method === 'INVITE' || method === 'UPDATE' || method === 'ACK') headers.add('Contact', this.localContact);
    for (const [n, v] of opts.headers ?? []) headers.add(n, v);
    const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'utf8') : opts.body ?? Buffer.alloc(0);
    if (body.length > 0) headers.set('Content-Type', opts.contentType ?? 'application/sdp');
    return { request: { kind: 'request', method, uri: routed.requestUri, headers, body }, nextHop: routed.nextHop };
  }
}
