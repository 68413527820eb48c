// A software WebAuthn authenticator for server tests: real P-256 keys, real ES256 signatures over
// real authenticator data (SHA-256 of the RP id, flags, sign count) and the SHA-256 of the real
// client data (challenge, origin), "none" attestation. Written from the WebAuthn Level 3 spec with its
// own small CBOR encoder, so it shares no code with the library that verifies it.
//
// Every knob an attack needs is a parameter: the origin and RP id the "browser" reports, the sign
// count, the flags, and a hook to tamper with the bytes before they are signed or after.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string): Buffer => createHash('sha256').update(b).digest();

// ---- CBOR (RFC 8949): the subset attestation objects and COSE keys need ----
type Cbor = number | string | Uint8Array | Cbor[] | Map<Cbor, Cbor> | { [k: string]: Cbor };

function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

export function cbor(v: Cbor): Buffer {
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, s.length), s]);
  }
  if (v instanceof Uint8Array) return Buffer.concat([head(2, v.length), Buffer.from(v)]);
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cbor)]);
  const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, x]) => [cbor(k), cbor(x)])]);
}

export const FLAG_UP = 0x01;
export const FLAG_UV = 0x04;
const FLAG_AT = 0x40;

export interface CeremonyOptions {
  /** what the "browser" reports as the page's origin (default: the authenticator's origin) */
  origin?: string;
  /** the RP id hashed into the authenticator data (default: the options' rpId / rp.id) */
  rpId?: string;
  /** the sign count to report (default: the next one) */
  signCount?: number;
  /** user verification performed (default true) */
  uv?: boolean;
  /** change the authenticator data after it is built and before it is signed */
  tamperBeforeSigning?: (authData: Buffer) => Buffer;
  /** change the authenticator data after it is signed (the signature no longer matches) */
  tamperAfterSigning?: (authData: Buffer) => Buffer;
  /** report another challenge than the one in the options */
  challenge?: string;
}

interface Options {
  challenge: string;
  rp?: { id?: string; name?: string };
  rpId?: string;
  user?: { id: string; name: string };
  allowCredentials?: Array<{ id: string }>;
}

export class SoftwareAuthenticator {
  readonly credentialId = randomBytes(32);
  private readonly privateKey: KeyObject;
  private readonly publicJwk: { x: string; y: string };
  signCount = 0;
  userHandle: string | null = null;

  constructor(readonly origin: string, readonly defaultRpId: string) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
    this.publicJwk = { x: jwk.x, y: jwk.y };
  }

  get id(): string {
    return b64url(this.credentialId);
  }

  private coseKey(): Buffer {
    return cbor(new Map<Cbor, Cbor>([
      [1, 2], // kty: EC2
      [3, -7], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, Buffer.from(this.publicJwk.x, 'base64url')],
      [-3, Buffer.from(this.publicJwk.y, 'base64url')],
    ]));
  }

  private authData(rpId: string, flags: number, count: number, attested: boolean): Buffer {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(count >>> 0);
    const parts: Buffer[] = [sha256(rpId), Buffer.from([flags]), counter];
    if (attested) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.credentialId.length);
      parts.push(Buffer.alloc(16), len, this.credentialId, this.coseKey());
    }
    return Buffer.concat(parts);
  }

  private clientData(type: 'webauthn.create' | 'webauthn.get', challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }), 'utf8');
  }

  /** navigator.credentials.create(): a RegistrationResponseJSON for these creation options. */
  create(options: Options, o: CeremonyOptions = {}) {
    const rpId = o.rpId ?? options.rp?.id ?? this.defaultRpId;
    this.userHandle = options.user?.id ?? null;
    const flags = FLAG_UP | (o.uv === false ? 0 : FLAG_UV) | FLAG_AT;
    let authData = this.authData(rpId, flags, o.signCount ?? this.signCount, true);
    if (o.tamperBeforeSigning) authData = o.tamperBeforeSigning(authData);
    if (o.tamperAfterSigning) authData = o.tamperAfterSigning(authData);
    const clientDataJSON = this.clientData('webauthn.create', o.challenge ?? options.challenge, o.origin ?? this.origin);
    const attestationObject = cbor({ fmt: 'none', attStmt: {}, authData });
    return {
      id: this.id, rawId: this.id, type: 'public-key' as const,
      response: { clientDataJSON: b64url(clientDataJSON), attestationObject: b64url(attestationObject), transports: ['internal'] },
      authenticatorAttachment: 'platform' as const,
      clientExtensionResults: {},
    };
  }

  /** navigator.credentials.get(): an AuthenticationResponseJSON, signed with this key. */
  get(options: Options, o: CeremonyOptions = {}) {
    const rpId = o.rpId ?? options.rpId ?? this.defaultRpId;
    const count = o.signCount ?? this.signCount + 1;
    if (o.signCount === undefined) this.signCount = count;
    const flags = FLAG_UP | (o.uv === false ? 0 : FLAG_UV);
    let authData = this.authData(rpId, flags, count, false);
    if (o.tamperBeforeSigning) authData = o.tamperBeforeSigning(authData);
    const clientDataJSON = this.clientData('webauthn.get', o.challenge ?? options.challenge, o.origin ?? this.origin);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), this.privateKey);
    if (o.tamperAfterSigning) authData = o.tamperAfterSigning(authData);
    return {
      id: this.id, rawId: this.id, type: 'public-key' as const,
      response: {
        clientDataJSON: b64url(clientDataJSON), authenticatorData: b64url(authData), signature: b64url(signature),
        ...(this.userHandle ? { userHandle: this.userHandle } : {}),
      },
      authenticatorAttachment: 'platform' as const,
      clientExtensionResults: {},
    };
  }
}
