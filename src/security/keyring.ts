// The keyring: the one place that turns SECRET_KEY (and SECRET_KEY_FALLBACKS) into keys.
//
// SECRET_KEY signs access JWTs as given (HS256, `kid` = keyId(secret)); every other purpose gets its
// own key, HMAC-SHA256(secret, "county-services/<purpose>"), so a token of one kind can never pass as
// another. The derivation is part of the wire format: refresh tokens, links, sealed TOTP secrets and
// cookie signatures issued before a release must keep verifying after it, so it never changes
// (test/security/keyring.test.ts pins it with fixed vectors).
//
// Every list is ordered: the key of SECRET_KEY first (it signs), then those of the fallbacks
// (verification only, for a rotation). Lists are memoised per Config object and purpose.
import { createHash, createHmac } from 'node:crypto';
import type { Config } from '../config.js';
import type { LinkPurpose } from './links.js';

/** What secret-box.ts seals: the TOTP secret at rest, the two-factor setup token in flight. */
export type SealPurpose = 'totp-secret' | 'tf-setup';

/** Every purpose a key is derived for. Adding one here is the only way to get a new key. */
export type KeyPurpose =
  | 'refresh-token'
  | 'session-cookie'
  | 'tf-token'
  | 'recovery-code'
  | 'idempotency-request'
  | 'us-code' | 'us-code-hash' | 'us-link'
  | 'tf-email-code' | 'tf-email-code-hash'
  | 'wan-user-handle' | 'wan-state'
  | `link/${LinkPurpose}`
  | `secret-box/${SealPurpose}`;

export interface PurposeKey { kid: string; key: Buffer }

type Secrets = Pick<Config, 'SECRET_KEY' | 'SECRET_KEY_FALLBACKS'>;

/** Stable short identifier of a secret, used as the JWT `kid` and in sealed values. Reveals nothing about it. */
export function keyId(secret: string): string {
  return createHash('sha256').update(`kid/${secret}`).digest('base64url').slice(0, 12);
}

function derive(secret: string, purpose: KeyPurpose): Buffer {
  return createHmac('sha256', secret).update(`county-services/${purpose}`).digest();
}

const memo = new WeakMap<object, Map<KeyPurpose, readonly PurposeKey[]>>();

/** The keys of a purpose: the signing key first, then the fallbacks' (verify only). */
export function purposeKeys(config: Secrets, purpose: KeyPurpose): readonly PurposeKey[] {
  let byPurpose = memo.get(config);
  if (!byPurpose) memo.set(config, (byPurpose = new Map()));
  let keys = byPurpose.get(purpose);
  if (!keys) {
    keys = Object.freeze(secretsOf(config).map((s) => Object.freeze({ kid: keyId(s), key: derive(s, purpose) })));
    byPurpose.set(purpose, keys);
  }
  return keys;
}

/** Just the key bytes of purposeKeys, same order. */
export function purposeKeyBytes(config: Secrets, purpose: KeyPurpose): Buffer[] {
  return purposeKeys(config, purpose).map((k) => k.key);
}

/** The key that signs (or seals) for a purpose now. */
export function signingKey(config: Secrets, purpose: KeyPurpose): PurposeKey {
  return purposeKeys(config, purpose)[0]!;
}

/** The raw secrets that sign access JWTs (HS256), with their kid; the first signs. */
export function jwtSecrets(config: Secrets): { kid: string; secret: string }[] {
  return secretsOf(config).map((secret) => ({ kid: keyId(secret), secret }));
}

function secretsOf(config: Secrets): string[] {
  return [config.SECRET_KEY, ...config.SECRET_KEY_FALLBACKS];
}
