// Password hashing and policy. Framework-free: used by routes, the CLI and the seed alike.
//
// Hash = bcrypt(base64(HMAC-SHA256(pepper, NFKC(password)))). The HMAC step keys the hash with a
// secret that never sits in the database, and turns any password into 44 bytes, which lifts bcrypt's
// 72-byte truncation. The stored form records which pepper was used so the pepper can rotate.
import bcrypt from 'bcrypt';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import { adjacencyGraphs, dictionary } from '@zxcvbn-ts/language-common';

export const PASSWORD_MAX_LENGTH = 128;
const PREFIX = '$cs1$';

export interface PasswordSettings {
  pepper: string;
  /** older peppers still accepted for verification (the hash is upgraded on the next login) */
  pepperFallbacks?: readonly string[];
  rounds: number;
  minLength: number;
  checker: 'none' | 'classic' | 'zxcvbn';
  checkBreached: boolean;
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** verify and say whether the stored hash should be replaced (cost or pepper changed) */
  verify(password: string, stored: string | null): Promise<{ ok: boolean; needsRehash: boolean }>;
  /** burns the same time as a real verification; used when the account does not exist */
  dummyVerify(password: string): Promise<void>;
  /** policy messages; empty when acceptable */
  validate(password: string, context?: { email?: string }): string[];
}

const pepperId = (pepper: string) => createHash('sha256').update(pepper).digest('hex').slice(0, 8);

export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

export function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

let common: Set<string> | undefined;
function isCommonPassword(password: string): boolean {
  common ??= new Set((dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));
  return common.has(password.toLowerCase());
}

let zxcvbn: ZxcvbnFactory | undefined;
function zxcvbnScore(password: string, userInputs: string[]): number {
  zxcvbn ??= new ZxcvbnFactory({ dictionary: { ...dictionary }, graphs: adjacencyGraphs });
  return zxcvbn.check(password, userInputs).score;
}

export function createPasswordHasher(settings: PasswordSettings): PasswordHasher {
  const peppers = new Map<string, string>();
  peppers.set(pepperId(settings.pepper), settings.pepper);
  for (const p of settings.pepperFallbacks ?? []) peppers.set(pepperId(p), p);
  const currentId = pepperId(settings.pepper);

  const peppered = (password: string, pepper: string) =>
    createHmac('sha256', pepper).update(normalizePassword(password), 'utf8').digest('base64');

  // Computed once, lazily: a real bcrypt hash at the configured cost for unknown-user logins.
  let dummy: Promise<string> | undefined;

  return {
    async hash(password) {
      const h = await bcrypt.hash(peppered(password, settings.pepper), settings.rounds);
      return `${PREFIX}${currentId}$${h}`;
    },

    async verify(password, stored) {
      if (!stored || !stored.startsWith(PREFIX)) {
        await this.dummyVerify(password);
        return { ok: false, needsRehash: false };
      }
      const rest = stored.slice(PREFIX.length);
      const id = rest.slice(0, 8);
      const bcryptHash = rest.slice(9);
      const pepper = peppers.get(id);
      if (!pepper) {
        await this.dummyVerify(password);
        return { ok: false, needsRehash: false };
      }
      const ok = await bcrypt.compare(peppered(password, pepper), bcryptHash);
      const needsRehash = ok && (id !== currentId || bcrypt.getRounds(bcryptHash) !== settings.rounds);
      return { ok, needsRehash };
    },

    async dummyVerify(password) {
      dummy ??= bcrypt.hash(randomBytes(16).toString('hex'), settings.rounds);
      await bcrypt.compare(peppered(password, settings.pepper), await dummy);
    },

    validate(password, context = {}) {
      const errors: string[] = [];
      const normalized = normalizePassword(password);
      const length = codePointLength(normalized);
      if (length < settings.minLength) errors.push(`Password must be at least ${settings.minLength} characters`);
      if (length > PASSWORD_MAX_LENGTH) errors.push(`Password must be at most ${PASSWORD_MAX_LENGTH} characters`);
      if (errors.length) return errors;
      if (settings.checker === 'classic') {
        if (!/\p{Lu}/u.test(normalized)) errors.push('Password must contain an uppercase letter');
        if (!/\p{Ll}/u.test(normalized)) errors.push('Password must contain a lowercase letter');
        if (!/\p{Nd}/u.test(normalized)) errors.push('Password must contain a digit');
      }
      const email = context.email?.toLowerCase();
      const local = email?.split('@')[0];
      const lowered = normalized.toLowerCase();
      if (email && (lowered.includes(email) || (local && local.length >= 4 && lowered.includes(local)))) {
        errors.push('Password must not contain your email address');
      }
      if (settings.checkBreached && isCommonPassword(normalized)) {
        errors.push('Password is too common; choose another');
      }
      if (settings.checker === 'zxcvbn' && !errors.length && zxcvbnScore(normalized, email ? [email, local ?? ''] : []) < 3) {
        errors.push('Password is too easy to guess; use a longer phrase or add unusual words');
      }
      return errors;
    },
  };
}
