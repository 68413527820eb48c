import { describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import { AppError } from '../../src/errors.js';
import type { UserRow } from '../../src/db/schema/index.js';
import {
  fingerprintMatches, LINK_PURPOSES, linkClaims, linkUrl, signLink, verifyLink, type LinkPurpose,
} from '../../src/security/links.js';

const config = testConfig();
const user = { id: 7, email: 'Jane@Example.com', password: '$cs1$hash-one', fsUniquifier: 'uq-one' } as UserRow;
const issued = new Date('2030-01-01T00:00:00Z');
const at = (seconds: number) => new Date(issued.getTime() + seconds * 1000);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof AppError) return err.code;
    throw err;
  }
}

describe('one-time links', () => {
  it('sign → verify round trip for every purpose; the claims name the user and purpose', () => {
    for (const p of LINK_PURPOSES) {
      const token = signLink(config, linkClaims(config, p, user, issued, p === 'change_email' ? { newEmail: 'new@example.com' } : {}));
      const claims = verifyLink(config, p, token, at(10), 3600);
      expect(claims).toMatchObject({ p, u: 7, t: issued.getTime() / 1000 });
      expect(fingerprintMatches(config, claims, user)).toBe(true);
      expect(token.length).toBeLessThan(1024);
    }
  });

  it('a token of one purpose is invalid for every other purpose', () => {
    for (const p of LINK_PURPOSES) {
      const token = signLink(config, linkClaims(config, p, user, issued, p === 'change_email' ? { newEmail: 'n@example.com' } : {}));
      for (const other of LINK_PURPOSES.filter((o) => o !== p)) {
        expect(codeOf(() => verifyLink(config, other as LinkPurpose, token, at(1), 3600)), `${p} as ${other}`).toBe('LINK_INVALID');
      }
    }
  });

  it('expiry is checked against the given time; a link from the future is invalid', () => {
    const token = signLink(config, linkClaims(config, 'reset', user, issued));
    expect(codeOf(() => verifyLink(config, 'reset', token, at(3600), 3600))).toBeUndefined();
    expect(codeOf(() => verifyLink(config, 'reset', token, at(3601), 3600))).toBe('LINK_EXPIRED');
    expect(codeOf(() => verifyLink(config, 'reset', token, at(-30), 3600))).toBeUndefined();
    expect(codeOf(() => verifyLink(config, 'reset', token, at(-3600), 3600))).toBe('LINK_INVALID');
  });

  it('the fingerprint binds the link to the account state: password and address (all), uniquifier (confirm, change email)', () => {
    const changedPassword = { ...user, password: '$cs1$hash-two' };
    const changedEmail = { ...user, email: 'other@example.com' };
    const changedUq = { ...user, fsUniquifier: 'uq-two' };
    const otherUser = { ...user, id: 8 };
    const check = (p: LinkPurpose, u: UserRow) =>
      fingerprintMatches(config, verifyLink(config, p, signLink(config, linkClaims(config, p, user, issued, p === 'change_email' ? { newEmail: 'n@example.com' } : {})), at(1), 3600), u);
    expect(check('reset', changedPassword)).toBe(false);
    expect(check('reset', changedEmail)).toBe(false);
    expect(check('reset', changedUq)).toBe(true);
    expect(check('change_email', changedPassword)).toBe(false);
    expect(check('change_email', changedEmail)).toBe(false);
    expect(check('change_email', changedUq)).toBe(false);
    expect(check('confirm', changedEmail)).toBe(false);
    expect(check('confirm', changedPassword)).toBe(false);
    expect(check('confirm', changedUq)).toBe(false);
    expect(check('confirm', { ...user, email: 'JANE@example.COM' })).toBe(true);
    for (const p of LINK_PURPOSES) expect(check(p, otherUser)).toBe(false);
  });

  it('keys rotate: a link signed with an old SECRET_KEY verifies while it is in SECRET_KEY_FALLBACKS', () => {
    const old = testConfig({ SECRET_KEY: 'the-old-secret-key-0123456789abcdef' });
    const rotated = testConfig({ SECRET_KEY: 'the-new-secret-key-0123456789abcdef', SECRET_KEY_FALLBACKS: 'the-old-secret-key-0123456789abcdef' });
    const dropped = testConfig({ SECRET_KEY: 'the-new-secret-key-0123456789abcdef' });
    for (const p of ['confirm', 'reset'] as const) {
      const token = signLink(old, linkClaims(old, p, user, issued));
      const claims = verifyLink(rotated, p, token, at(1), 3600);
      expect(claims.u).toBe(7);
      // the fingerprint was keyed with the old key too
      expect(fingerprintMatches(rotated, claims, user)).toBe(true);
      expect(fingerprintMatches(rotated, claims, { ...user, password: 'changed' })).toBe(false);
      expect(codeOf(() => verifyLink(dropped, p, token, at(1), 3600))).toBe('LINK_INVALID');
    }
    // claims fixed under the old key (a queued change-email link) and signed later under the new one
    const queued = linkClaims(old, 'change_email', user, issued, { newEmail: 'n@example.com' });
    const late = verifyLink(rotated, 'change_email', signLink(rotated, queued), at(1), 3600);
    expect(fingerprintMatches(rotated, late, user)).toBe(true);
  });

  it('malformed tokens are LINK_INVALID, never a crash', () => {
    const good = signLink(config, linkClaims(config, 'reset', user, issued));
    const [body, mac] = good.split('.') as [string, string];
    const forge = (claims: unknown) => `${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${mac}`;
    for (const bad of ['', '.', 'a.b', `${body}.`, `.${mac}`, `${body}.${mac}.x`, `${body}!.${mac}`, forge(null), forge([1]), forge({ p: 'reset' }),
      `${Buffer.from('not json at all, really').toString('base64url')}.${mac}`, 'x'.repeat(2000)]) {
      expect(codeOf(() => verifyLink(config, 'reset', bad, at(1), 3600)), bad).toBe('LINK_INVALID');
    }
  });

  it('URLs: SECURITY_LINK_BASE_URL + prefix + path, or the per-link template; the token is URL-encoded', () => {
    expect(linkUrl(config, 'reset', 'abc.def')).toBe('http://127.0.0.1:5000/reset/abc.def');
    const custom = testConfig({
      SECURITY_LINK_BASE_URL: 'https://api.county.example/', SECURITY_URL_PREFIX: '/auth',
      SECURITY_CONFIRM_URL_TEMPLATE: 'myapp://confirm?token={token}&again={token}',
    });
    expect(linkUrl(custom, 'reset', 'abc.def')).toBe('https://api.county.example/auth/reset/abc.def');
    expect(linkUrl(custom, 'change_email', 'a b')).toBe('https://api.county.example/auth/change-email/a%20b');
    expect(linkUrl(custom, 'confirm', 'x.y')).toBe('myapp://confirm?token=x.y&again=x.y');
    expect(() => testConfig({ SECURITY_RESET_URL_TEMPLATE: 'myapp://reset' })).toThrow(/SECURITY_RESET_URL_TEMPLATE/);
    expect(() => testConfig({ SECURITY_LINK_BASE_URL: 'javascript:alert(1)' })).toThrow(/SECURITY_LINK_BASE_URL/);
  });
});
