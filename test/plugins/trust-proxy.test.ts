// TRUST_PROXY as documented (issue 13), over real HTTP (app.listen + fetch) with a real X-Forwarded-For
// chain: a hop count N takes the Nth address from the right (1 and 2 tested; Fastify 5 alone would
// ignore a numeric trustProxy), `true` the leftmost, an address list the first untrusted from the
// right, unset ignores the header; per-IP limits key on that client, and IPv4-mapped, NAT64 and 6to4
// forms of one IPv4 client share its bucket; anything else refuses to start naming TRUST_PROXY.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { clientAddress, clientKey, embeddedIPv4 } from '../../src/security/client-address.js';
import {
  buildTestApp, createTestDatabase, GOOD_PASSWORD, listen, makeUser, TestClock, type TestApp, type TestDatabase,
} from '../support/helper.js';

// a client, then two proxies: the first proxy appends the client, the second appends the first proxy
const CHAIN = '198.51.100.23, 203.0.113.10';

async function loginIp(base: string, email: string, xff?: string): Promise<string | null> {
  const res = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(xff ? { 'x-forwarded-for': xff } : {}) },
    body: JSON.stringify({ email, password: GOOD_PASSWORD }),
  });
  const body = await res.json() as { user?: { current_login_ip: string | null } };
  if (res.status !== 200) throw new Error(`login ${res.status}: ${JSON.stringify(body)}`);
  return body.user!.current_login_ip;
}

describe('TRUST_PROXY over HTTP', () => {
  let database: TestDatabase;
  const apps: TestApp[] = [];
  const bases: Record<string, string> = {};
  const clock = new TestClock();

  beforeAll(async () => {
    database = await createTestDatabase();
    for (const [name, value] of [['none', ''], ['hop1', '1'], ['hop2', '2'], ['true', 'true'], ['list', '127.0.0.1,203.0.113.0/24']] as const) {
      const t = await buildTestApp(database, {
        TRUST_PROXY: value, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_STORE: 'memory', RATE_LIMIT_AUTH: '3/5m', RATE_LIMIT_GLOBAL: '1000/1m',
      }, clock);
      apps.push(t);
      bases[name] = await listen(t.app);
    }
  });
  afterAll(async () => {
    await Promise.all(apps.map((t) => t.close()));
    await database.drop();
  });

  it('tracking records the client each setting names', async () => {
    const user = await makeUser(apps[0]!.ctx);
    expect(await loginIp(bases.none!, user.email, CHAIN)).toBe('127.0.0.1');
    // one proxy: the rightmost address is the client (what that proxy saw)
    expect(await loginIp(bases.hop1!, user.email, CHAIN)).toBe('203.0.113.10');
    // two proxies: the second address from the right
    expect(await loginIp(bases.hop2!, user.email, CHAIN)).toBe('198.51.100.23');
    // a client cannot push itself further left: with two hops an extra spoofed entry is ignored
    expect(await loginIp(bases.hop2!, user.email, `6.6.6.6, ${CHAIN}`)).toBe('198.51.100.23');
    expect(await loginIp(bases.true!, user.email, CHAIN)).toBe('198.51.100.23');
    // the list trusts the socket (127.0.0.1) and 203.0.113.0/24: the client is 198.51.100.23
    expect(await loginIp(bases.list!, user.email, CHAIN)).toBe('198.51.100.23');
    // an IPv4-mapped client is recorded as its IPv4 address
    expect(await loginIp(bases.hop1!, user.email, '::ffff:192.0.2.44')).toBe('192.0.2.44');
  });

  it('per-IP limits key on the client behind one and two proxies: one client cannot exhaust another\'s budget', async () => {
    let n = 0;
    const wrong = (base: string, xff: string) => fetch(`${base}/login`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': xff },
      body: JSON.stringify({ email: `somebody-${n++}@example.com`, password: 'Wrong-Harbor-94-Lantern' }),
    }).then((r) => r.status);
    for (const [base, a, b] of [
      [bases.hop1!, '10.0.0.1, 192.0.2.1', '10.0.0.1, 192.0.2.2'],
      [bases.hop2!, '192.0.2.11, 10.9.9.9', '192.0.2.12, 10.9.9.9'],
    ] as const) {
      const first = [];
      for (let i = 0; i < 4; i++) first.push(await wrong(base, a));
      expect(first).toEqual([401, 401, 401, 429]);
      expect(await wrong(base, b)).toBe(401);
    }
  });

  it('IPv4-mapped, NAT64 and 6to4 forms of one IPv4 client share its bucket', async () => {
    const forms = ['192.0.2.77', '::ffff:192.0.2.77', '64:ff9b::c000:24d', '2002:c000:24d::1'];
    // a different address per attempt: the account lockout stays out of the way
    let n = 0;
    const statuses = [];
    for (const xff of forms) {
      statuses.push(await fetch(`${bases.hop1!}/login`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': xff },
        body: JSON.stringify({ email: `nobody-${n++}@example.com`, password: 'Wrong-Harbor-94-Lantern' }),
      }).then((r) => r.status));
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe('client addresses and TRUST_PROXY parsing', () => {
  it('embedded IPv4 addresses', () => {
    expect(embeddedIPv4('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(embeddedIPv4('::FFFF:0102:0304')).toBe('1.2.3.4');
    expect(embeddedIPv4('64:ff9b::1.2.3.4')).toBe('1.2.3.4');
    expect(embeddedIPv4('64:ff9b::102:304')).toBe('1.2.3.4');
    expect(embeddedIPv4('2002:0102:0304:1::5')).toBe('1.2.3.4');
    expect(embeddedIPv4('2001:db8::1')).toBeNull();
    expect(embeddedIPv4('1.2.3.4')).toBeNull();
    expect(embeddedIPv4('not an address')).toBeNull();
    expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2:ffff::1')).toBe(clientKey('2001:db8:1:2::9'));
    expect(clientKey('2002:0102:0304::1')).toBe('1.2.3.4');
    expect(clientAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(clientAddress(null)).toBeNull();
  });

  it('accepts true, a hop count and address / CIDR lists; refuses anything else naming TRUST_PROXY', () => {
    const parse = (v: string) => loadConfig({ NODE_ENV: 'development', TRUST_PROXY: v }).TRUST_PROXY;
    expect(parse('true')).toBe(true);
    expect(parse('false')).toBe(false);
    expect(parse('')).toBe(false);
    expect(parse('0')).toBe(false);
    expect(parse('2')).toBe(2);
    expect(parse('10.0.0.1, 10.1.0.0/16,::1,fd00::/8,loopback')).toEqual(['10.0.0.1', '10.1.0.0/16', '::1', 'fd00::/8', 'loopback']);
    for (const bad of ['yes', 'TRUE', '-1', '1.5', '33', '10.0.0.0/33', 'proxy.example.com', '10.0.0.1,', '10.0.0.0/255.0.0.0', '::1/129']) {
      expect(() => parse(bad), bad).toThrow(/^TRUST_PROXY: /);
    }
  });
});
