import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDuration } from '../src/config.js';

describe('loadConfig', () => {
  it('applies development defaults from the contract', () => {
    const c = loadConfig({ NODE_ENV: 'development' });
    expect(c.PORT).toBe(5000);
    expect(c.HOST).toBe('127.0.0.1');
    expect(c.BCRYPT_LOG_ROUNDS).toBe(12);
    expect(c.SECURITY_TOKEN_MAX_AGE).toBe(900);
    expect(c.SECURITY_REFRESH_TOKEN_MAX_AGE).toBe(30 * 86400);
    expect(c.SECURITY_RESET_PASSWORD_WITHIN).toBe(3600);
    expect(c.SECURITY_CONFIRM_EMAIL_WITHIN).toBe(48 * 3600);
    expect(c.SECURITY_CONFIRMABLE).toBe(false);
    expect(c.SECURITY_TWO_FACTOR_REQUIRED_ROLES).toEqual([]);
    expect(c.RATE_LIMIT_AUTH).toEqual({ max: 30, windowSeconds: 300 });
    expect(c.SEED_ON_START).toBe(true);
    expect(c.usingDevSecrets).toBe(true);
  });

  it('production refuses to start without SECRET_KEY and SECURITY_PASSWORD_SALT', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/SECRET_KEY/);
    expect(() => loadConfig({ NODE_ENV: 'production', SECRET_KEY: 'x'.repeat(40) })).toThrow(/SECURITY_PASSWORD_SALT/);
  });

  it('production turns on confirmable, generic responses, secure cookies, complexity and 2FA roles', () => {
    const c = loadConfig({ NODE_ENV: 'production', SECRET_KEY: 'k'.repeat(40), SECURITY_PASSWORD_SALT: 's'.repeat(32) });
    expect(c.SECURITY_CONFIRMABLE).toBe(true);
    expect(c.SECURITY_SEND_REGISTER_EMAIL).toBe(true);
    expect(c.SECURITY_RETURN_GENERIC_RESPONSES).toBe(true);
    expect(c.SESSION_COOKIE_SECURE).toBe(true);
    expect(c.SECURITY_PASSWORD_COMPLEXITY_CHECKER).toBe('classic');
    expect(c.SECURITY_TWO_FACTOR_REQUIRED_ROLES).toEqual(['County Admin', 'Department Officer']);
    expect(c.usingDevSecrets).toBe(false);
  });

  it('a value set explicitly always wins over the profile default', () => {
    const c = loadConfig({
      NODE_ENV: 'production', SECRET_KEY: 'k'.repeat(40), SECURITY_PASSWORD_SALT: 's'.repeat(32),
      SECURITY_CONFIRMABLE: 'false', SESSION_COOKIE_SECURE: '0', SECURITY_TWO_FACTOR_REQUIRED_ROLES: '',
    });
    expect(c.SECURITY_CONFIRMABLE).toBe(false);
    expect(c.SESSION_COOKIE_SECURE).toBe(false);
    expect(c.SECURITY_TWO_FACTOR_REQUIRED_ROLES).toEqual([]);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['BCRYPT_LOG_ROUNDS', '3'],
    ['SECURITY_TOKEN_MAX_AGE', '15 minutes'],
    ['RATE_LIMIT_AUTH', 'thirty'],
    ['SECURITY_PASSWORD_COMPLEXITY_CHECKER', 'strong'],
    ['SECURITY_CONFIRMABLE', 'maybe'],
    ['SESSION_COOKIE_SAMESITE', 'lax-ish'],
  ])('fails fast naming the bad key %s=%s', (key, value) => {
    expect(() => loadConfig({ NODE_ENV: 'development', [key]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'development', [key]: value })).toThrow(new RegExp(`^${key}:`));
  });

  it('rejects an unknown NODE_ENV, a wildcard CORS origin and SameSite=None without Secure', () => {
    expect(() => loadConfig({ NODE_ENV: 'staging' })).toThrow(/NODE_ENV/);
    expect(() => loadConfig({ NODE_ENV: 'development', CORS_ORIGINS: '*' })).toThrow(/CORS_ORIGINS/);
    expect(() => loadConfig({ NODE_ENV: 'development', SESSION_COOKIE_SAMESITE: 'None' })).toThrow(/SESSION_COOKIE_SAMESITE/);
  });

  it('parses durations, rates, lists and TRUST_PROXY', () => {
    expect(parseDuration('15m')).toBe(900);
    expect(parseDuration('48h')).toBe(172800);
    expect(parseDuration('2d')).toBe(172800);
    expect(parseDuration('10')).toBe(10);
    const c = loadConfig({
      NODE_ENV: 'development', RATE_LIMIT_TOTP: '5/30s', CORS_ORIGINS: 'http://a.test, http://b.test',
      TRUST_PROXY: '1', SECRET_KEY_FALLBACKS: 'old-key-aaaaaaaaaaaaaa,older-key-bbbbbbbbbbbb',
    });
    expect(c.RATE_LIMIT_TOTP).toEqual({ max: 5, windowSeconds: 30 });
    expect(c.CORS_ORIGINS).toEqual(['http://a.test', 'http://b.test']);
    expect(c.TRUST_PROXY).toBe(1);
    expect(c.SECRET_KEY_FALLBACKS).toHaveLength(2);
    expect(loadConfig({ NODE_ENV: 'development', TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(true);
    expect(loadConfig({ NODE_ENV: 'development' }).TRUST_PROXY).toBe(false);
  });

  it('ignores variables it does not declare', () => {
    const c = loadConfig({ NODE_ENV: 'test', SOMETHING_ELSE: 'x', PATH: '/bin' });
    expect((c as unknown as Record<string, unknown>).SOMETHING_ELSE).toBeUndefined();
  });
});
