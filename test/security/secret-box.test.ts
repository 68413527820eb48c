// The sealed-secret format (AES-256-GCM, key derived from SECRET_KEY per purpose) and the new
// hardening config keys.
import { describe, expect, it } from 'vitest';
import { ConfigError, testConfig } from '../../src/config.js';
import { open, seal } from '../../src/security/secret-box.js';

describe('secret box', () => {
  const config = testConfig();

  it('round-trips, never shows the plaintext, and differs every time (random IV)', () => {
    const a = seal(config, 'totp-secret', 'JBSWY3DPEHPK3PXP', 'user:1');
    const b = seal(config, 'totp-secret', 'JBSWY3DPEHPK3PXP', 'user:1');
    expect(a).not.toBe(b);
    expect(a).not.toContain('JBSWY3DPEHPK3PXP');
    expect(open(config, 'totp-secret', a, 'user:1')).toBe('JBSWY3DPEHPK3PXP');
  });

  it('does not open under another purpose, another place (AAD), after tampering, or under an unknown key', () => {
    const sealed = seal(config, 'totp-secret', 'secret', 'user:1');
    expect(open(config, 'tf-setup', sealed, 'user:1')).toBeNull();
    expect(open(config, 'totp-secret', sealed, 'user:2')).toBeNull();
    const parts = sealed.split('.');
    parts[3] = parts[3]!.slice(0, -1) + (parts[3]!.endsWith('A') ? 'B' : 'A');
    expect(open(config, 'totp-secret', parts.join('.'), 'user:1')).toBeNull();
    expect(open(config, 'totp-secret', 'garbage', 'user:1')).toBeNull();
    const other = testConfig({ SECRET_KEY: 'another-secret-key-of-reasonable-length' });
    expect(open(other, 'totp-secret', sealed, 'user:1')).toBeNull();
  });

  it('still opens after a key rotation (old key in SECRET_KEY_FALLBACKS)', () => {
    const sealed = seal(config, 'totp-secret', 'secret', 'user:1');
    const rotated = testConfig({ SECRET_KEY: 'the-new-secret-key-of-reasonable-length', SECRET_KEY_FALLBACKS: config.SECRET_KEY });
    expect(open(rotated, 'totp-secret', sealed, 'user:1')).toBe('secret');
  });
});

describe('hardening configuration', () => {
  it('defaults: lockout 10 / 15m / 15m capped at 24h, 2FA token 5m, PostgreSQL rate-limit store, limits of the contract', () => {
    const c = testConfig();
    expect(c.SECURITY_LOCKOUT_ENABLED).toBe(true);
    expect([c.SECURITY_LOCKOUT_THRESHOLD, c.SECURITY_LOCKOUT_WINDOW, c.SECURITY_LOCKOUT_DURATION, c.SECURITY_LOCKOUT_MAX_DURATION])
      .toEqual([10, 900, 900, 86400]);
    expect(c.SECURITY_TWO_FACTOR_TOKEN_WITHIN).toBe(300);
    expect(c.SECURITY_TOTP_ISSUER).toBe('County Services');
    expect(c.RATE_LIMIT_STORE).toBe('postgres');
    expect(c.RATE_LIMIT_AUTH).toEqual({ max: 30, windowSeconds: 300 });
    expect(c.RATE_LIMIT_REFRESH).toEqual({ max: 150, windowSeconds: 300 });
    expect(c.RATE_LIMIT_TOTP).toEqual({ max: 15, windowSeconds: 60 });
    expect(c.RATE_LIMIT_GLOBAL).toEqual({ max: 1000, windowSeconds: 60 });
    // the test profile switches rate limits off; tests turn them on explicitly
    expect(c.RATE_LIMIT_ENABLED).toBe(false);
  });

  it('rejects a cap below the base duration, an odd 2FA token lifetime, a zero rate and an unknown store', () => {
    expect(() => testConfig({ SECURITY_LOCKOUT_MAX_DURATION: '1m' })).toThrow(/SECURITY_LOCKOUT_MAX_DURATION/);
    expect(() => testConfig({ SECURITY_TWO_FACTOR_TOKEN_WITHIN: '2h' })).toThrow(/SECURITY_TWO_FACTOR_TOKEN_WITHIN/);
    expect(() => testConfig({ RATE_LIMIT_AUTH: '0/5m' })).toThrow(/RATE_LIMIT_AUTH/);
    expect(() => testConfig({ RATE_LIMIT_STORE: 'redis' })).toThrow(ConfigError);
    expect(() => testConfig({ SECURITY_TOTP_ISSUER: 'a:b' })).toThrow(/SECURITY_TOTP_ISSUER/);
  });
});
