// Log format: in development (LOG_FORMAT=pretty) one readable line per request, still without secrets;
// JSON lines otherwise (production and test profiles).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig, testConfig } from '../src/config.js';
import { connect, type DbHandle } from '../src/db/client.js';
import { createTestDatabase, GOOD_PASSWORD, makeUser, type TestDatabase } from './support/helper.js';
import { securityContext } from '../src/security/context.js';

describe('log format', () => {
  let database: TestDatabase;
  let db: DbHandle;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = connect(database.url, { max: 3 });
  });
  afterAll(async () => {
    await db.close();
    await database.drop();
  });

  it('the profiles: pretty in development, JSON in production and tests', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).LOG_FORMAT).toBe('pretty');
    expect(testConfig().LOG_FORMAT).toBe('json');
    const prod = { NODE_ENV: 'production', SECRET_KEY: 'k'.repeat(40) + 'production-key-a1', SECURITY_PASSWORD_SALT: 's'.repeat(40) + 'production-salt-b2' };
    expect(loadConfig(prod).LOG_FORMAT).toBe('json');
    expect(loadConfig({ ...prod, LOG_FORMAT: 'pretty' }).LOG_FORMAT).toBe('pretty');
  });

  it('pretty: one line per request ("METHOD URL STATUS ms"), no JSON, no secrets', async () => {
    const lines: string[] = [];
    const config = testConfig({ DATABASE_URL: database.url, LOG_LEVEL: 'info', LOG_FORMAT: 'pretty' });
    const app = await buildApp(config, { db, logger: { write: (l) => lines.push(l) } });
    try {
      await app.ready();
      const user = await makeUser(securityContext(config, { db }));
      lines.length = 0;
      await app.inject('/health');
      await app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD } });
      await app.inject('/reset/secret-link-token-value-123');
      const requestLines = lines.filter((l) => / (GET|POST) \//.test(l));
      expect(requestLines, lines.join('')).toHaveLength(3);
      expect(requestLines[0]).toMatch(/INFO.*GET \/health 200 \d+\.\d ms\n$/);
      expect(requestLines[1]).toMatch(/POST \/login 200 /);
      expect(requestLines[2]).toMatch(/GET \/reset\/\[redacted\] 400 /);
      for (const l of lines) {
        expect(l.trimEnd()).not.toContain('\n');
        expect(l).not.toMatch(/^\{/);
      }
      expect(lines.join('')).not.toMatch(/incoming request|secret-link-token-value-123/);
      expect(lines.join('')).not.toContain(GOOD_PASSWORD);
    } finally {
      await app.close();
    }
  });

  it('json: JSON lines, Fastify\'s request pair', async () => {
    const lines: string[] = [];
    const app = await buildApp(testConfig({ DATABASE_URL: database.url, LOG_LEVEL: 'info' }), { db, logger: { write: (l) => lines.push(l) } });
    try {
      await app.inject('/health');
      const parsed = lines.map((l) => JSON.parse(l) as { msg: string });
      expect(parsed.map((p) => p.msg)).toEqual(expect.arrayContaining(['incoming request', 'request completed']));
    } finally {
      await app.close();
    }
  });
});
