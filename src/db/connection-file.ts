// The running server's embedded PostgreSQL, advertised to the ops CLI. The server writes
// DATA_DIR/postgres-connection.json (mode 600: it holds the database password) once its embedded
// PostgreSQL is up, and removes it on shutdown. The CLI reads it and connects to that PostgreSQL while
// its postmaster is alive (PostgreSQL's own lock file, postmaster.pid, names the pid and the port), so an
// operator can deactivate an account without stopping the service; it starts its own embedded
// PostgreSQL only when no server runs.
import { existsSync, unlinkSync } from 'node:fs';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const CONNECTION_FILE = 'postgres-connection.json';

export interface ServerConnection {
  /** the application database's URL (with its password) */
  url: string;
  port: number;
  /** the server process that wrote the file */
  pid: number;
  started_at: string;
}

export const connectionFilePath = (dataDir: string) => path.join(path.resolve(dataDir), CONNECTION_FILE);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid and port of the live postmaster owning `clusterDir`, or null (no lock file, or its process is gone). */
export async function livePostmaster(clusterDir: string): Promise<{ pid: number; port: number } | null> {
  let text: string;
  try {
    text = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  // line 1: pid, line 4: port (PostgreSQL's documented lock-file layout)
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return null;
  return { pid, port };
}

const written = new Set<string>();
// A server that ends without its shutdown (process.exit on a fatal error) still takes its file along.
process.on('exit', () => {
  for (const file of written) {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
  }
});

/** Written atomically (temporary file + rename), readable by the owner only. */
export async function writeConnectionFile(dataDir: string, info: Omit<ServerConnection, 'pid' | 'started_at'>): Promise<() => Promise<void>> {
  const file = connectionFilePath(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  const body: ServerConnection = { ...info, pid: process.pid, started_at: new Date().toISOString() };
  await writeFile(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  written.add(file);
  return async () => {
    written.delete(file);
    // only our own: a newer server may have replaced it
    const current = await readConnectionFile(file).catch(() => null);
    if (current?.pid === process.pid) await rm(file, { force: true });
  };
}

async function readConnectionFile(file: string): Promise<ServerConnection | null> {
  if (!existsSync(file)) return null;
  const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<ServerConnection>;
  if (typeof parsed.url !== 'string' || typeof parsed.port !== 'number' || typeof parsed.pid !== 'number') {
    throw new Error('malformed');
  }
  return parsed as ServerConnection;
}

/**
 * The running server's connection, or null when none runs: no file, or a file left by a server whose
 * PostgreSQL is gone (a crash), or one naming another port than the live postmaster's.
 */
export async function findRunningServer(dataDir: string, clusterDir: string): Promise<ServerConnection | null> {
  const file = connectionFilePath(dataDir);
  let info: ServerConnection | null;
  try {
    info = await readConnectionFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new Error(`cannot read ${file} (the running server's connection details, mode 600): run as the user who started the server, or set DATABASE_URL`);
    }
    throw new Error(`${file} is not a connection file written by the server; remove it if no server runs`);
  }
  if (!info) return null;
  const postmaster = await livePostmaster(clusterDir);
  if (!postmaster || postmaster.port !== info.port) return null;
  return info;
}
