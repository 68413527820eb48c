// Opaque tokens and their comparisons. The keys they are made with come from the keyring (keyring.ts).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');
export const randomToken = (bytes = 32) => randomBytes(bytes).toString('base64url');

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/**
 * Refresh tokens are `<session id>.<generation>.<mac>` with mac = HMAC(refresh key, id.gen.seed).
 * Only their SHA-256 is stored. Because the token of a generation can be recomputed from the key and
 * the session's secret seed, an identical replay inside the grace window can be answered with the
 * same new token, and an old generation can be recognised as reuse rather than as garbage.
 */
export interface ParsedRefreshToken { sessionId: string; generation: number; mac: string }

const REFRESH_RE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([0-9]{1,9})\.([A-Za-z0-9_-]{43})$/;

export function parseRefreshToken(token: string): ParsedRefreshToken | null {
  const m = REFRESH_RE.exec(token);
  return m ? { sessionId: m[1]!, generation: Number(m[2]), mac: m[3]! } : null;
}

export function refreshMac(key: Buffer, sessionId: string, generation: number, seed: string): string {
  return createHmac('sha256', key).update(`${sessionId}.${generation}.${seed}`).digest('base64url');
}

export function makeRefreshToken(key: Buffer, sessionId: string, generation: number, seed: string): string {
  return `${sessionId}.${generation}.${refreshMac(key, sessionId, generation, seed)}`;
}
