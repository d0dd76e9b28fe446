/**
 * janus_request_check_secret: with neither `api_secret` nor `token_auth`,
 * everything passes; otherwise a request passes when its `apisecret` matches
 * or its `token` is valid. Admin requests check `admin_secret` instead.
 */
import { safeEqual } from './safeEqual.js';
import type { TokenAuth } from './TokenAuth.js';

export class RequestAuth {
  constructor(
    private readonly apiSecret: string | null,
    readonly tokens: TokenAuth,
    private readonly adminSecret: string | null,
  ) {}

  get apiSecretEnabled(): boolean {
    return this.apiSecret !== null;
  }

  checkApi(apisecret: unknown, token: unknown): boolean {
    if (this.apiSecret === null && !this.tokens.enabled) return true;
    if (this.apiSecret !== null && typeof apisecret === 'string' && safeEqual(apisecret, this.apiSecret)) return true;
    return typeof token === 'string' && this.tokens.isValid(token);
  }

  checkAdmin(secret: unknown): boolean {
    if (this.adminSecret === null) return true;
    return typeof secret === 'string' && safeEqual(secret, this.adminSecret);
  }
}
