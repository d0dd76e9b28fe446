/**
 * janus_sip.c error codes (440–455, 499). They travel inside plugindata
 * (`{"sip":"event","error_code":N,"error":"..."}`), never as core errors.
 */
import { PluginError } from '../../core/PluginError.js';
export const SipErrorCode = {
  UNKNOWN_ERROR: 499,
  NO_MESSAGE: 440,
  INVALID_JSON: 441,
  INVALID_REQUEST: 442,
  MISSING_ELEMENT: 443,
  INVALID_ELEMENT: 444,
  ALREADY_REGISTERED: 445,
  INVALID_ADDRESS: 446,
  WRONG_STATE: 447,
  MISSING_SDP: 448,
  LIBSOFIA_ERROR: 449,
  IO_ERROR: 450,
  RECORDING_ERROR: 451,
  TOO_STRICT: 452,
  HELPER_ERROR: 453,
  NO_SUCH_CALLID: 454,
  NO_SUCH_STREAM: 455,
} as const;

export type SipErrorCodeValue = (typeof SipErrorCode)[keyof typeof SipErrorCode];

/** A request the plugin refuses; becomes `{sip:"event", error_code, error}` for the client. */
export class SipPluginError extends PluginError<SipErrorCodeValue> {}

export const missing = (name: string) => new SipPluginError(SipErrorCode.MISSING_ELEMENT, `Missing element (${name})`);
export const invalid = (name: string, should: string) => new SipPluginError(SipErrorCode.INVALID_ELEMENT, `Invalid element type (${name} should be ${should})`);
export const wrongState = (why: string) => new SipPluginError(SipErrorCode.WRONG_STATE, `Wrong state (${why})`);
