// Builds the app against a fresh database cloned from the migrated template, with a cheap bcrypt
// cost and an injectable clock. One database per test file.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, inject } from 'vitest';
import postgres from 'postgres';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.js';
import { securityContext } from '../../src/security/context.js';
import { testConfig, type Config } from '../../src/config.js';
import { connect, type DbHandle } from '../../src/db/client.js';
import type { Clock, SecurityContext } from '../../src/security/context.js';
import { createUser, type CreateUserInput, type UserRecord } from '../../src/security/datastore.js';
import { lateBound } from './late-bound.js';

export class TestClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(seconds: number): void {
    this.offsetMs += seconds * 1000;
  }
}

export function dbUrl(database: string): string {
  const u = new URL(inject('pgAdminUrl'));
  u.pathname = `/${database}`;
  return u.toString();
}

export interface TestDatabase { name: string; url: string; drop: () => Promise<void> }

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `cs_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database ${name} template ${inject('pgTemplate')}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: dbUrl(name),
    drop: async () => {
      const a = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

export interface TestApp {
  app: FastifyInstance;
  ctx: SecurityContext;
  config: Config;
  db: DbHandle;
  clock: TestClock;
  close: () => Promise<void>;
}

/** An app on its own connection pool over `database`; config overrides use the env names. */
export async function buildTestApp(database: TestDatabase, overrides: Record<string, string> = {}, clock = new TestClock()): Promise<TestApp> {
  const config = testConfig({ DATABASE_URL: database.url, ...overrides });
  const db = connect(database.url, { max: 5, strictTransactions: true });
  const app = await buildApp(config, { db, clock });
  await app.ready();
  const ctx = securityContext(config, { db, clock });
  return {
    app, ctx, config, db, clock,
    close: async () => {
      await app.close();
      await db.close();
    },
  };
}

/**
 * Like buildTestApp, but `register` may add test-only routes or scopes before the app is made ready
 * (routes can no longer be added after ready()).
 */
export async function buildTestAppWith(
  database: TestDatabase,
  overrides: Record<string, string>,
  clock: TestClock,
  register: (app: FastifyInstance, config: Config) => void | Promise<void>,
): Promise<TestApp> {
  const config = testConfig({ DATABASE_URL: database.url, ...overrides });
  const db = connect(database.url, { max: 5, strictTransactions: true });
  const app = await buildApp(config, { db, clock });
  await register(app, config);
  await app.ready();
  const ctx = securityContext(config, { db, clock });
  return {
    app, ctx, config, db, clock,
    close: async () => {
      await app.close();
      await db.close();
    },
  };
}

let counter = 0;
/** A password that passes every policy (length, classic, common list). */
export const GOOD_PASSWORD = 'Quiet-Harbor-93-Lantern';

export async function makeUser(ctx: SecurityContext, input: Partial<CreateUserInput> = {}): Promise<UserRecord> {
  counter += 1;
  return createUser(ctx, {
    email: input.email ?? `user${counter}-${randomBytes(3).toString('hex')}@example.com`,
    password: input.password ?? GOOD_PASSWORD,
    roles: input.roles ?? ['Citizen'],
    confirmedAt: input.confirmedAt === undefined ? new Date() : input.confirmedAt,
    ...input,
  });
}

export interface LoginResult {
  access_token: string;
  refresh_token: string;
  csrf_token: string;
  cookie: string;
  body: Record<string, unknown>;
}

/** Logs in through the API; `cookie` is the Cookie header value for cookie-authenticated calls. */
export async function login(app: FastifyInstance, email: string, password = GOOD_PASSWORD): Promise<LoginResult> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { email, password } });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  const body = res.json();
  return { access_token: body.access_token, refresh_token: body.refresh_token, csrf_token: body.csrf_token, cookie: sessionCookie(res), body };
}

export function sessionCookie(res: LightMyRequestResponse, name = 'session'): string {
  const c = res.cookies.find((k) => k.name === name);
  if (!c) throw new Error('no session cookie');
  return `${name}=${c.value}`;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The session id (`sid` claim) an access token names. */
export const sidOf = (accessToken: string): string =>
  JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')).sid;

/** Asserts the contract's error envelope and returns it. */
export function envelopeOf(res: LightMyRequestResponse): { statusCode: number; error: string; code: string; message: string; fields?: Record<string, string[]>; reason?: string } {
  const body = res.json();
  if (typeof body.code !== 'string' || body.statusCode !== res.statusCode || typeof body.message !== 'string' || typeof body.error !== 'string') {
    throw new Error(`not an error envelope: ${res.statusCode} ${res.body}`);
  }
  return body;
}

/** Listens on a free loopback port (real HTTP: cookies, CORS, rate limits); returns the base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/**
 * The set-up of most describe blocks: their own database and an app on it (overrides as for
 * buildTestApp), built in beforeAll and closed in afterAll. The returned `t` stands for the app.
 */
export function useTestApp(overrides: Record<string, string> = {}): TestApp {
  const database = lateBound<TestDatabase>('the database');
  const app = lateBound<TestApp>('the app');
  beforeAll(async () => {
    database.set(await createTestDatabase());
    app.set(await buildTestApp(database.proxy, overrides));
  });
  afterAll(async () => {
    await app.value?.close();
    await database.value?.drop();
  });
  return app.proxy;
}
