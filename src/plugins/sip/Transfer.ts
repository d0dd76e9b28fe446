/**
 * Call transfer for the SIP plugin (RFC 3515 REFER, RFC 3891 Replaces, RFC
 * 3892 Referred-By), the way Janus's SIP plugin exposes it:
 *
 * - transferee: a REFER in a call is answered 202 and a first NOTIFY says
 *   "100 Trying"; the client gets `transfer{refer_id, refer_to, referred_by?,
 *   replaces?}` and follows it (or not) with `call{refer_id}` (usually on a
 *   helper), whose outcome goes back to the transferor as a final NOTIFY
 *   (message/sipfrag); `decline{refer_id}` refuses it the same way.
 * - transferor: `transfer{uri, replace?}` sends the REFER (Refer-To carries a
 *   Replaces built from the replaced call's dialog for an attended transfer);
 *   the transferee's NOTIFYs come back as `notify` events.
 *
 * A referral lives until its final NOTIFY, or until the call it came in ends
 * (nothing can be notified then); at most MAX_REFERRALS are kept.
 */
import type { Call } from '../../sip/Call.js';
import type { Dialog } from '../../sip/Dialog.js';
import { parseNameAddr, reasonPhrase, type SipRequest } from '../../sip/SipMessage.js';
import { parseSipUri } from '../../sip/SipUri.js';
import type { UserAgent } from '../../sip/UserAgent.js';

/** Referrals kept at once across the plugin (older ones are dropped). */
const MAX_REFERRALS = 1000;
/** RFC 3515 §2.4.4: the implicit subscription's lifetime ferry announces, in seconds. */
const REFER_SUBSCRIPTION_SECONDS = 60;

export interface Referral {
  readonly id: number;
  /** Where the REFER came from: its dialog carries the NOTIFYs. */
  readonly ua: UserAgent;
  readonly call: Call;
  /** `Event: refer;id=<CSeq of the REFER>` (RFC 3515 §2.4.6). */
  readonly event: string;
  /** The Refer-To URI without its embedded headers. */
  readonly referTo: string;
  /** The Replaces header value the transferee's INVITE must carry (attended transfer). */
  readonly replaces: string | undefined;
  readonly referredBy: string | undefined;
  done: boolean;
}

/** What a REFER's Refer-To (RFC 3515 §2.1) names: the target, and a Replaces to send it (RFC 3891 §5). */
export function parseReferTo(value: string | undefined): { uri: string; replaces: string | undefined } | null {
  if (!value) return null;
  const na = parseNameAddr(value);
  if (!na) return null;
  const parsed = parseSipUri(na.uri);
  if (!parsed) return null;
  const question = na.uri.indexOf('?');
  const base = question < 0 ? na.uri : na.uri.slice(0, question);
  let replaces: string | undefined;
  for (const [name, raw] of parsed.headers) {
    if (name.toLowerCase() !== 'replaces') continue;
    try {
      replaces = decodeURIComponent(raw);
    } catch {
      return null;
    }
  }
  // A Replaces value is a Call-ID and two tags on one line (RFC 3891 §6.1).
  if (replaces !== undefined && (/[\r\n]/.test(replaces) || !/;\s*to-tag=/i.test(replaces) || !/;\s*from-tag=/i.test(replaces))) return null;
  return { uri: base, replaces };
}

/** The Call-ID part of a Replaces value (what Janus reports as `replaces`). */
export function replacesCallId(replaces: string): string {
  return replaces.split(';')[0]!.trim();
}

/**
 * The Refer-To of an attended transfer (RFC 3891 §3, RFC 5589 §7): the target,
 * with a Replaces naming our dialog with it as the target sees it: its tag is
 * the to-tag, ours the from-tag.
 */
export function referToReplacing(uri: string, dialog: Dialog): string {
  const replaces = `${dialog.id.callId};to-tag=${dialog.id.remoteTag};from-tag=${dialog.id.localTag}`;
  return `<${uri}?Replaces=${encodeURIComponent(replaces)}>`;
}

/** The plugin's referrals by `refer_id`. */
export class Referrals {
  private readonly byId = new Map<number, Referral>();
  private nextId = 0;

  get size(): number {
    return this.byId.size;
  }

  /**
   * Takes a REFER on `call`: answers 202, sends the first NOTIFY ("100 Trying",
   * RFC 3515 §2.4.5) and keeps the referral until its final NOTIFY.
   */
  accept(ua: UserAgent, call: Call, refer: SipRequest, target: { uri: string; replaces: string | undefined }, respond: (code: number) => void): Referral {
    const cseq = refer.headers.get('CSeq')?.split(/\s+/)[0] ?? '1';
    const referredBy = refer.headers.get('Referred-By');
    const referral: Referral = {
      id: ++this.nextId,
      ua,
      call,
      event: `refer;id=${cseq}`,
      referTo: target.uri,
      replaces: target.replaces,
      referredBy: referredBy ? parseNameAddr(referredBy)?.uri ?? referredBy : undefined,
      done: false,
    };
    if (this.byId.size >= MAX_REFERRALS) {
      const oldest = this.byId.keys().next().value;
      if (oldest !== undefined) this.byId.delete(oldest);
    }
    this.byId.set(referral.id, referral);
    call.once('terminated', () => this.forget(referral));
    respond(202);
    this.notify(referral, 100);
    return referral;
  }

  get(id: number): Referral | undefined {
    const r = this.byId.get(id);
    return r && !r.done ? r : undefined;
  }

  /**
   * NOTIFYs the transferor of the referred call's progress (RFC 3515 §2.4.5): a
   * status line as message/sipfrag; a final one (>= 200) ends the subscription.
   */
  notify(referral: Referral, code: number, reason = reasonPhrase(code)): void {
    if (referral.done || referral.call.terminated) return;
    const final = code >= 200;
    if (final) this.forget(referral);
    const state = final ? 'terminated;reason=noresource' : `active;expires=${REFER_SUBSCRIPTION_SECONDS}`;
    void referral.ua.notify(referral.call, referral.event, state, 'message/sipfrag;version=2.0', `SIP/2.0 ${code} ${reason}\r\n`);
  }

  private forget(referral: Referral): void {
    referral.done = true;
    if (this.byId.get(referral.id) === referral) this.byId.delete(referral.id);
  }
}
