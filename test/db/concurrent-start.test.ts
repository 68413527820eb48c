// Instances started together on an EMPTY database all come up: migrations and the seed run under a
// PostgreSQL advisory lock (db/migrate.ts). Real server processes (src/server.ts), development
// profile (so the seed also creates the dev admin, a second race). And a migration that fails says
// what PostgreSQL said, not "Failed query: CREATE TABLE …".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { dbUrl } from '../support/helper.js';
import { connect } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';

async function emptyDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `cs_empty_${randomBytes(5).toString('hex')}`;
  const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  return {
    url: dbUrl(name),
    drop: async () => {
      const a = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

describe('concurrent start on an empty database', () => {
  const children: ChildProcess[] = [];
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cs-start-'));
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('three server processes started at once: all migrate-or-wait, seed once, and answer /ready 200', async () => {
    const db = await emptyDatabase();
    try {
      const outputs: string[] = [];
      const exits: Array<Promise<number | null>> = [];
      for (let i = 0; i < 3; i++) {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
          env: {
            ...process.env, NODE_ENV: 'development', DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info',
            DATA_DIR: path.join(dataDir, String(i)), SEED_ON_START: 'true', OUTBOX_WORKER_ENABLED: 'false', BCRYPT_LOG_ROUNDS: '4',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        outputs[i] = '';
        child.stdout!.on('data', (d: Buffer) => { outputs[i] += d.toString(); });
        child.stderr!.on('data', (d: Buffer) => { outputs[i] += d.toString(); });
        exits.push(new Promise((resolve) => child.on('exit', (code) => resolve(code))));
      }
      const bases: string[] = [];
      for (let i = 0; i < 3; i++) {
        let base: string | undefined;
        for (let n = 0; n < 600 && !base && children[i]!.exitCode === null; n++) {
          base = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(outputs[i]!)?.[1];
          if (!base) await new Promise((r) => setTimeout(r, 100));
        }
        expect(base, `instance ${i}:\n${outputs[i]}`).toBeDefined();
        bases.push(base!);
      }
      for (const [i, base] of bases.entries()) {
        const res = await fetch(`${base}/ready`);
        expect(res.status, `instance ${i}`).toBe(200);
      }
      for (const out of outputs) expect(out).not.toMatch(/start-up failed|23505|unhandled/i);
      const check = postgres(db.url, { max: 1, onnotice: () => undefined });
      try {
        const [counts] = await check<{ roles: number; admins: number; migrations: number }[]>`select (select count(*)::int from roles) as roles,
          (select count(*)::int from users where email = 'admin@test.com') as admins,
          (select count(*)::int from drizzle.__drizzle_migrations) as migrations`;
        expect(counts).toMatchObject({ roles: 3, admins: 1 });
        expect(counts!.migrations).toBeGreaterThan(5);
      } finally {
        await check.end();
      }
      for (const c of children) c.kill('SIGTERM');
      expect(await Promise.all(exits)).toEqual([0, 0, 0]);
    } finally {
      await db.drop();
    }
  }, 120_000);

  it('ten concurrent runMigrations on one empty database: all succeed, each migration applied once', async () => {
    const db = await emptyDatabase();
    const handles = Array.from({ length: 10 }, () => connect(db.url, { max: 2 }));
    try {
      await Promise.all(handles.map((h, i) => runMigrations(i % 2 ? h : h.db)));
      const rows = await handles[0]!.sql`select hash, count(*)::int as n from drizzle.__drizzle_migrations group by hash`;
      expect(rows.every((r) => r.n === 1)).toBe(true);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
      await db.drop();
    }
  }, 60_000);

  it('a failing migration names the driver\'s cause and code, not the SQL', async () => {
    const db = await emptyDatabase();
    const h = connect(db.url, { max: 2 });
    try {
      await h.sql`create table counties (id int)`;
      const err = await runMigrations(h).then(() => null, (e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err!.message).toMatch(/^database migrations failed: relation "counties" already exists \(42P07\)$/);
      expect(err!.message).not.toMatch(/Failed query|CREATE TABLE|params/);
    } finally {
      await h.close();
      await db.drop();
    }
  }, 60_000);
});
