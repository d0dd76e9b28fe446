/**
 * Route sets (RFC 3261 §8.1.2, §12.2.1.1, §16.12; RFC 3608 §6.1).
 *
 * Lesson §2 (PJSIP #4066): the configured outbound proxy and the
 * Service-Route learned from REGISTER are SEPARATE values. Nothing here ever
 * stores them merged; each request kind gets its route set built on demand:
 *   - REGISTER: the configured outbound proxy only (never the Service-Route:
 *     it is learned *from* REGISTER and says nothing about reaching the registrar);
 *   - initial out-of-dialog requests: the proxy first, then the Service-Route
 *     URIs in the order received (RFC 3608 §6.1 "preloaded Route");
 *   - in-dialog requests: the dialog's own route set (see Dialog.ts).
 */
import { formatNameAddr, parseNameAddr, type SipResponse } from './SipMessage.js';
import { formatSipUri, isLooseRouter, parseSipUri } from './SipUri.js';

export type ServiceRouteClearReason = 'no-service-route-in-2xx' | 'register-failed' | 'expired' | 'unregistered' | 'transport-lost';

export class AccountRoutes {
  private proxy: string | undefined;
  private learned: readonly string[] = [];
  /** Why the Service-Route was last cleared (tests and logs). */
  lastClearReason: ServiceRouteClearReason | undefined;

  /** `outboundProxy` is a SIP URI (`sip:host:port`); it is made a loose router (§8.1.2 "pre-existing route set with a single URI"). */
  constructor(outboundProxy?: string) {
    this.setOutboundProxy(outboundProxy);
  }

  setOutboundProxy(uri: string | undefined): void {
    if (uri === undefined || uri === '') {
      this.proxy = undefined;
      return;
    }
    const parsed = parseSipUri(uri.replace(/^<|>$/g, ''));
    if (!parsed) throw new Error(`invalid outbound proxy URI: ${uri}`);
    if (!parsed.params.has('lr')) parsed.params.set('lr', null);
    this.proxy = formatSipUri(parsed);
  }

  get outboundProxy(): string | undefined {
    return this.proxy;
  }

  get serviceRoute(): readonly string[] {
    return this.learned;
  }

  /**
   * RFC 3608 §6.1: every 2xx to REGISTER replaces the stored Service-Route;
   * a 2xx without one clears it. Values are kept as received, in order.
   */
  updateFromRegisterOk(res: SipResponse): void {
    const uris: string[] = [];
    for (const v of res.headers.getAll('Service-Route')) {
      const na = parseNameAddr(v);
      if (na && na.uri !== '*') uris.push(na.uri);
    }
    if (uris.length === 0) this.clearServiceRoute('no-service-route-in-2xx');
    else this.learned = Object.freeze(uris);
  }

  clearServiceRoute(reason: ServiceRouteClearReason): void {
    this.learned = Object.freeze([]);
    this.lastClearReason = reason;
  }

  /** Route URIs for a REGISTER: the configured proxy only. */
  forRegister(): string[] {
    return this.proxy === undefined ? [] : [this.proxy];
  }

  /** Route URIs for an initial out-of-dialog request: proxy, then the Service-Route in received order. */
  forInitialRequest(): string[] {
    return [...this.forRegister(), ...this.learned];
  }
}

export interface RoutedRequest {
  requestUri: string;
  /** Route header values, in order (name-addr form). */
  routeHeaders: string[];
  /** The URI whose host/port/transport the request is sent to (§8.1.2). */
  nextHop: string;
}

/**
 * Places a route set on a request (§12.2.1.1 for dialogs, §8.1.2 for a
 * preloaded set): with a loose-routing first hop the Request-URI stays the
 * target; with a strict router (no `lr`) the first hop becomes the
 * Request-URI and the target is appended as the last Route.
 */
export function applyRoutes(target: string, routes: readonly string[]): RoutedRequest {
  const first = routes[0];
  if (first === undefined) return { requestUri: target, routeHeaders: [], nextHop: target };
  const firstUri = parseSipUri(first);
  const asHeader = (u: string) => formatNameAddr({ uri: u, params: new Map() });
  if (!firstUri || isLooseRouter(firstUri)) {
    return { requestUri: target, routeHeaders: routes.map(asHeader), nextHop: first };
  }
  // Strict routing: strip parameters not allowed in a Request-URI (§19.1.1 table: method, headers).
  firstUri.headers.clear();
  firstUri.params.delete('method');
  const requestUri = formatSipUri(firstUri);
  return { requestUri, routeHeaders: [...routes.slice(1), target].map(asHeader), nextHop: requestUri };
}
