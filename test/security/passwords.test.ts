// createPasswordHasher: pepper + bcrypt hashing, verification and rehash signals, and the password
// policy (length in code points, classic, common-password list, email, zxcvbn). Framework-free, so
// no app and no database are needed here.
import { describe, expect, it } from 'vitest';
import bcrypt from 'bcrypt';
import { createPasswordHasher, PASSWORD_MAX_LENGTH, type PasswordSettings } from '../../src/security/passwords.js';
import { GOOD_PASSWORD } from '../support/helper.js';

const PEPPER = 'unit-test-pepper-one';
const OTHER_PEPPER = 'unit-test-pepper-two';

const hasher = (over: Partial<PasswordSettings> = {}) => createPasswordHasher({
  pepper: PEPPER, rounds: 4, minLength: 8, checker: 'none', checkBreached: false, ...over,
});

/** The bcrypt part of a stored `$cs1$<pepper id>$<bcrypt>` hash. */
const bcryptPart = (stored: string) => stored.slice('$cs1$'.length + 9);

describe('createPasswordHasher: hashing and verification', () => {
  it('hash → verify roundtrip; a wrong password fails; the plaintext is not in the stored form', async () => {
    const h = hasher();
    const stored = await h.hash(GOOD_PASSWORD);
    expect(stored).toMatch(/^\$cs1\$[0-9a-f]{8}\$\$2[aby]\$04\$/);
    expect(stored).not.toContain(GOOD_PASSWORD);
    expect(await h.verify(GOOD_PASSWORD, stored)).toEqual({ ok: true, needsRehash: false });
    expect(await h.verify(GOOD_PASSWORD + 'x', stored)).toEqual({ ok: false, needsRehash: false });
    expect(await h.verify(GOOD_PASSWORD.toLowerCase(), stored)).toEqual({ ok: false, needsRehash: false });
  });

  it('two hashes of the same password differ (random salt) and both verify', async () => {
    const h = hasher();
    const a = await h.hash(GOOD_PASSWORD);
    const b = await h.hash(GOOD_PASSWORD);
    expect(a).not.toBe(b);
    expect((await h.verify(GOOD_PASSWORD, a)).ok).toBe(true);
    expect((await h.verify(GOOD_PASSWORD, b)).ok).toBe(true);
  });

  it('a missing or foreign stored hash never verifies', async () => {
    const h = hasher();
    expect(await h.verify(GOOD_PASSWORD, null)).toEqual({ ok: false, needsRehash: false });
    expect(await h.verify(GOOD_PASSWORD, '')).toEqual({ ok: false, needsRehash: false });
    // a bare bcrypt hash of the plaintext (no pepper, no prefix) is not accepted
    const bare = await bcrypt.hash(GOOD_PASSWORD, 4);
    expect(await h.verify(GOOD_PASSWORD, bare)).toEqual({ ok: false, needsRehash: false });
  });

  it('normalises with NFKC: the "ﬁ" ligature and "fi" are the same password', async () => {
    const h = hasher();
    const ligature = 'Of\uFB01ce-Harbor-93';
    const plain = 'Office-Harbor-93';
    expect(ligature).not.toBe(plain);
    const stored = await h.hash(ligature);
    expect((await h.verify(plain, stored)).ok).toBe(true);
    const stored2 = await h.hash(plain);
    expect((await h.verify(ligature, stored2)).ok).toBe(true);
    // a genuinely different letter still fails
    expect((await h.verify('Offlce-Harbor-93', stored)).ok).toBe(false);
  });

  it('passwords longer than 72 bytes that differ only after byte 72 do not verify (the pepper lifts the bcrypt limit)', async () => {
    const h = hasher();
    const head = 'Long-Passphrase-'.repeat(6); // 96 bytes
    const a = `${head}ending-alpha`;
    const b = `${head}ending-omega`;
    expect(Buffer.byteLength(a)).toBeGreaterThan(72);
    // control: plain bcrypt cannot tell them apart, so this test would catch a hasher that feeds the raw password to bcrypt
    const raw = await bcrypt.hash(a, 4);
    expect(await bcrypt.compare(b, raw)).toBe(true);

    const stored = await h.hash(a);
    expect((await h.verify(a, stored)).ok).toBe(true);
    expect((await h.verify(b, stored)).ok).toBe(false);
  });

  it('a hasher with a different pepper (and no fallback) cannot verify', async () => {
    const stored = await hasher().hash(GOOD_PASSWORD);
    expect(await hasher({ pepper: OTHER_PEPPER }).verify(GOOD_PASSWORD, stored)).toEqual({ ok: false, needsRehash: false });
  });

  it('dummyVerify resolves without throwing (used for unknown users)', async () => {
    await expect(hasher().dummyVerify(GOOD_PASSWORD)).resolves.toBeUndefined();
  });
});

describe('createPasswordHasher: needsRehash', () => {
  it('is false when rounds and pepper are unchanged', async () => {
    const h = hasher({ rounds: 4 });
    expect(await h.verify(GOOD_PASSWORD, await h.hash(GOOD_PASSWORD))).toEqual({ ok: true, needsRehash: false });
  });

  it('is true when the configured rounds changed, and the new hash carries the new cost', async () => {
    const old = hasher({ rounds: 4 });
    const stored = await old.hash(GOOD_PASSWORD);
    expect(bcrypt.getRounds(bcryptPart(stored))).toBe(4);
    const current = hasher({ rounds: 5 });
    expect(await current.verify(GOOD_PASSWORD, stored)).toEqual({ ok: true, needsRehash: true });
    const upgraded = await current.hash(GOOD_PASSWORD);
    expect(bcrypt.getRounds(bcryptPart(upgraded))).toBe(5);
    expect(await current.verify(GOOD_PASSWORD, upgraded)).toEqual({ ok: true, needsRehash: false });
  });

  it('is true when the pepper was rotated (old pepper in pepperFallbacks); false for hashes under the new pepper', async () => {
    const stored = await hasher({ pepper: PEPPER }).hash(GOOD_PASSWORD);
    const rotated = hasher({ pepper: OTHER_PEPPER, pepperFallbacks: [PEPPER] });
    expect(await rotated.verify(GOOD_PASSWORD, stored)).toEqual({ ok: true, needsRehash: true });
    expect(await rotated.verify('Wrong-Harbor-93-Lantern', stored)).toEqual({ ok: false, needsRehash: false });
    const fresh = await rotated.hash(GOOD_PASSWORD);
    expect(fresh.slice(0, 14)).not.toBe(stored.slice(0, 14)); // different pepper id
    expect(await rotated.verify(GOOD_PASSWORD, fresh)).toEqual({ ok: true, needsRehash: false });
    // once the fallback is dropped, hashes under the old pepper no longer verify
    expect((await hasher({ pepper: OTHER_PEPPER }).verify(GOOD_PASSWORD, stored)).ok).toBe(false);
  });

  it('is never true for a wrong password', async () => {
    const stored = await hasher({ rounds: 4 }).hash(GOOD_PASSWORD);
    expect(await hasher({ rounds: 5 }).verify('Another-Harbor-94-Lantern', stored)).toEqual({ ok: false, needsRehash: false });
  });
});

describe('createPasswordHasher: policy', () => {
  it('accepts a good password under every checker', () => {
    expect(hasher().validate(GOOD_PASSWORD)).toEqual([]);
    expect(hasher({ checker: 'classic', checkBreached: true }).validate(GOOD_PASSWORD)).toEqual([]);
    expect(hasher({ checker: 'zxcvbn', checkBreached: true }).validate(GOOD_PASSWORD)).toEqual([]);
  });

  it('enforces the minimum length (configurable)', () => {
    expect(hasher().validate('Ab3-xyz')).toEqual(['Password must be at least 8 characters']);
    expect(hasher().validate('Ab3-wxyz')).toEqual([]);
    expect(hasher({ minLength: 12 }).validate('Ab3-wxyz')).toEqual(['Password must be at least 12 characters']);
  });

  it(`enforces the maximum length of ${PASSWORD_MAX_LENGTH}`, () => {
    expect(hasher().validate('a'.repeat(PASSWORD_MAX_LENGTH))).toEqual([]);
    expect(hasher().validate('a'.repeat(PASSWORD_MAX_LENGTH + 1))).toEqual([`Password must be at most ${PASSWORD_MAX_LENGTH} characters`]);
  });

  it('counts length in code points, not UTF-16 units', () => {
    const emoji = '\u{1F600}'; // 2 UTF-16 units, 1 code point
    expect(emoji.repeat(4).length).toBe(8);
    expect(hasher().validate(emoji.repeat(4))).toEqual(['Password must be at least 8 characters']);
    expect(hasher().validate(emoji.repeat(8))).toEqual([]);
    // 128 emoji = 256 UTF-16 units, still within the limit
    expect(hasher().validate(emoji.repeat(PASSWORD_MAX_LENGTH))).toEqual([]);
    expect(hasher().validate(emoji.repeat(PASSWORD_MAX_LENGTH + 1))).toEqual([`Password must be at most ${PASSWORD_MAX_LENGTH} characters`]);
  });

  it('classic checker wants an uppercase letter, a lowercase letter and a digit', () => {
    const classic = hasher({ checker: 'classic' });
    expect(classic.validate('quiet-harbor-93')).toEqual(['Password must contain an uppercase letter']);
    expect(classic.validate('QUIET-HARBOR-93')).toEqual(['Password must contain a lowercase letter']);
    expect(classic.validate('Quiet-Harbor-xx')).toEqual(['Password must contain a digit']);
    expect(classic.validate('--------')).toEqual([
      'Password must contain an uppercase letter', 'Password must contain a lowercase letter', 'Password must contain a digit',
    ]);
    expect(classic.validate('Quiet-Harbor-93')).toEqual([]);
    // the same passwords are fine with no checker
    expect(hasher().validate('quiet-harbor-93')).toEqual([]);
  });

  it('rejects passwords from the common-password list when checkBreached is on (case-insensitively)', () => {
    const breached = hasher({ checkBreached: true });
    expect(breached.validate('password123')).toEqual(['Password is too common; choose another']);
    expect(breached.validate('PASSWORD123')).toEqual(['Password is too common; choose another']);
    expect(hasher({ checkBreached: false }).validate('password123')).toEqual([]);
  });

  it('rejects a password that contains the email address or its local part', () => {
    const h = hasher();
    expect(h.validate('harborlantern99', { email: 'harbor@example.com' })).toEqual(['Password must not contain your email address']);
    expect(h.validate('x-Harbor@Example.com-1', { email: 'harbor@example.com' })).toEqual(['Password must not contain your email address']);
    expect(h.validate('harborlantern99', { email: 'someone@example.com' })).toEqual([]);
    expect(h.validate('harborlantern99')).toEqual([]);
  });

  it('zxcvbn checker rejects guessable passwords that pass the other rules', () => {
    const z = hasher({ checker: 'zxcvbn' });
    const weak = 'aaaaaaaa1';
    expect(hasher().validate(weak)).toEqual([]);
    expect(z.validate(weak)).toEqual(['Password is too easy to guess; use a longer phrase or add unusual words']);
    expect(z.validate('abcdefgh')).toEqual(['Password is too easy to guess; use a longer phrase or add unusual words']);
    expect(z.validate('correct horse battery staple')).toEqual([]);
  });
});
