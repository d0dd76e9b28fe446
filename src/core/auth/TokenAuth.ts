/**
 * Janus `token_auth` (src/auth.c). Two modes:
 * - stored: tokens managed through the Admin API, each with its allowed plugins;
 * - signed (`token_auth_secret` set): `<expiry>,janus[,<plugin>...]:<base64(HMAC-SHA1(secret, data))>`,
 *   valid until `expiry` (Unix seconds), for the plugins it lists.
 */
import { createHmac } from 'node:crypto';
import { JanusError, JanusErrorCode } from '../JanusError.js';
import { safeEqual } from './safeEqual.js';

const SIGNED_TOKEN_REALM = 'janus';

export interface TokenAuthOptions {
  enabled: boolean;
  /** Non-null switches to signed-token mode. */
  secret: string | null;
  /** Unix time in seconds; injectable so expiry is testable. */
  nowSeconds?: () => number;
}

export class TokenAuth {
  readonly enabled: boolean;
  private readonly secret: string | null;
  private readonly nowSeconds: () => number;
  private readonly stored = new Map<string, Set<string>>();

  constructor(options: TokenAuthOptions) {
    this.enabled = options.enabled;
    this.secret = options.secret && options.secret.length > 0 ? options.secret : null;
    this.nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  get storedMode(): boolean {
    return this.enabled && this.secret === null;
  }

  /** Is this token valid at all (any plugin)? */
  isValid(token: string | undefined): boolean {
    if (!this.enabled || token === undefined || token.length === 0) return false;
    if (this.secret !== null) return this.parseSigned(token) !== null;
    return this.stored.has(token);
  }

  /** May this (valid) token use `plugin`? */
  allowsPlugin(token: string, plugin: string): boolean {
    if (!this.enabled) return true;
    if (this.secret !== null) {
      const signed = this.parseSigned(token);
      return signed !== null && signed.plugins.includes(plugin);
    }
    return this.stored.get(token)?.has(plugin) ?? false;
  }

  /** Signed token check: returns the listed plugins, or null if malformed, forged, expired or of another realm. */
  private parseSigned(token: string): { plugins: string[] } | null {
    if (this.secret === null) return null;
    const colon = token.lastIndexOf(':');
    if (colon <= 0) return null;
    const data = token.slice(0, colon);
    const signature = token.slice(colon + 1);
    const parts = data.split(',');
    const expiryText = parts[0] ?? '';
    if (!/^\d+$/.test(expiryText) || parts[1] !== SIGNED_TOKEN_REALM) return null;
    const expected = createHmac('sha1', this.secret).update(data).digest('base64');
    if (!safeEqual(signature, expected)) return null;
    if (Number(expiryText) < this.nowSeconds()) return null;
    return { plugins: parts.slice(2) };
  }

  // ---- stored-token management (Admin API) ----

  private requireStored(): void {
    if (!this.storedMode) throw new JanusError(JanusErrorCode.UNKNOWN, 'Stored-Token based authentication disabled');
  }

  add(token: string, plugins: string[]): string[] {
    this.requireStored();
    const set = this.stored.get(token) ?? new Set<string>();
    for (const p of plugins) set.add(p);
    this.stored.set(token, set);
    return [...set];
  }

  list(): Array<{ token: string; allowed_plugins: string[] }> {
    this.requireStored();
    return [...this.stored].map(([token, plugins]) => ({ token, allowed_plugins: [...plugins] }));
  }

  allow(token: string, plugins: string[]): string[] {
    this.requireStored();
    const set = this.requireToken(token);
    for (const p of plugins) set.add(p);
    return [...set];
  }

  disallow(token: string, plugins: string[]): string[] {
    this.requireStored();
    const set = this.requireToken(token);
    for (const p of plugins) set.delete(p);
    return [...set];
  }

  remove(token: string): void {
    this.requireStored();
    this.requireToken(token);
    this.stored.delete(token);
  }

  private requireToken(token: string): Set<string> {
    const set = this.stored.get(token);
    if (!set) throw new JanusError(JanusErrorCode.TOKEN_NOT_FOUND, `Token ${token} not found`);
    return set;
  }
}

/** Builds a signed token (for tests and operators' tooling). */
export function signToken(secret: string, expirySeconds: number, plugins: string[]): string {
  const data = [String(expirySeconds), SIGNED_TOKEN_REALM, ...plugins].join(',');
  return `${data}:${createHmac('sha1', secret).update(data).digest('base64')}`;
}
