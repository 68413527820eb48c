// Starts one real PostgreSQL for the whole run (embedded, or TEST_DATABASE_URL's server), builds a
// migrated and seeded template database, and hands its coordinates to the test files, each of which
// clones its own database from the template.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { connect } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import { seed } from '../../src/security/seed.js';
import { securityContext } from '../../src/security/context.js';
import { testConfig } from '../../src/config.js';

export const TEMPLATE_DB = 'cs_test_template';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

let embedded: EmbeddedDatabase | undefined;
let workDir: string | undefined;

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function setup(project: TestProject) {
  // TEST_DATABASE_URL points at a server you run yourself; the default is an embedded throw-away one.
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    workDir = await mkdtemp(path.join(tmpdir(), 'county-services-test-'));
    // As root, PostgreSQL runs as the `postgres` user, which must be able to enter the directory.
    await chmod(workDir, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: path.join(workDir, 'pg'), ephemeral: true });
    adminUrl = embedded.url('postgres');
  }
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`drop database if exists ${TEMPLATE_DB} with (force)`);
  await admin.unsafe(`create database ${TEMPLATE_DB}`);
  await admin.end();

  const handle = connect(withDatabase(adminUrl, TEMPLATE_DB), { max: 2 });
  await runMigrations(handle.db);
  await seed(securityContext(testConfig(), { db: handle }), { devAdmin: false });
  await handle.close();

  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', TEMPLATE_DB);
}

export async function teardown() {
  await embedded?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
}
