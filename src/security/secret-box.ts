// Authenticated encryption for secrets kept at rest (the TOTP secret) or handed to a client to bring
// back (the two-factor setup token): AES-256-GCM with a key derived from SECRET_KEY for each purpose.
// The sealed form names the key (`kid`), so values sealed under a key now in SECRET_KEY_FALLBACKS
// still open after a rotation. Associated data binds a value to its place (e.g. the user's row), so
// a sealed value copied elsewhere does not open.
//
//   v1.<kid>.<iv>.<ciphertext>.<tag>     (base64url parts)
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import { purposeKeys, type PurposeKey, type SealPurpose } from './keyring.js';

const keysFor = (config: Config, purpose: SealPurpose): readonly PurposeKey[] => purposeKeys(config, `secret-box/${purpose}`);

export function seal(config: Config, purpose: SealPurpose, plaintext: string, aad = ''): string {
  const { kid, key } = keysFor(config, purpose)[0]!;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(`${purpose}|${aad}`, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', kid, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

/** The plaintext, or null when the value is malformed, tampered with, sealed elsewhere or under an unknown key. */
export function open(config: Config, purpose: SealPurpose, sealed: string, aad = ''): string | null {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== 'v1') return null;
  const [, kid, iv, ct, tag] = parts as [string, string, string, string, string];
  const entry = keysFor(config, purpose).find((k) => k.kid === kid);
  if (!entry) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', entry.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(`${purpose}|${aad}`, 'utf8'));
    const tagBuf = Buffer.from(tag, 'base64url');
    if (tagBuf.length !== 16) return null;
    decipher.setAuthTag(tagBuf);
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}
