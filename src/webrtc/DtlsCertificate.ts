// ferry's DTLS identity: one self-signed ECDSA P-256 certificate per process,
// announced in every SDP as a=fingerprint (RFC 8122 §5).
import { createHash } from 'node:crypto';

import { CipherContext, HashAlgorithm, NamedCurveAlgorithm, SignatureAlgorithm } from 'werift';

import type { Fingerprint } from './Sdp.js';

export interface SignatureHash {
  signature: number;
  hash: number;
}

function pemToDer(pem: string): Buffer {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

/** Fingerprint of a DER certificate in SDP form: upper-case hex pairs joined by colons. */
export function certificateFingerprint(der: Buffer, algorithm = 'sha-256'): string {
  const hash = createHash(algorithm.replace('-', '').toLowerCase()).update(der).digest('hex').toUpperCase();
  return hash.match(/.{2}/g)!.join(':');
}

export class DtlsCertificate {
  private constructor(
    readonly certPem: string,
    readonly keyPem: string,
    readonly signatureHash: SignatureHash,
    readonly fingerprint: Fingerprint,
  ) {}

  static async generate(): Promise<DtlsCertificate> {
    const { certPem, keyPem, signatureHash } = await CipherContext.createSelfSignedCertificateWithKey(
      { signature: SignatureAlgorithm.ecdsa_3, hash: HashAlgorithm.sha256_4 },
      NamedCurveAlgorithm.secp256r1_23,
    );
    const fingerprint = { algorithm: 'sha-256', value: certificateFingerprint(pemToDer(certPem)) };
    return new DtlsCertificate(certPem, keyPem, signatureHash as SignatureHash, fingerprint);
  }
}
