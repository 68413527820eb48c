// The server's advertisement of its embedded PostgreSQL: used only while the postmaster it names is
// alive on the advertised port; a file left by a crash is ignored; the owner removes only its own file.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connectionFilePath, findRunningServer, writeConnectionFile } from '../../src/db/connection-file.js';

describe('connection file', () => {
  let dataDir: string;
  let cluster: string;
  const lockFile = (pid: number, port: number) => writeFile(path.join(cluster, 'postmaster.pid'), `${pid}\n${cluster}\n1700000000\n${port}\n/tmp\n`);

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cs-conn-'));
    cluster = path.join(dataDir, 'postgres');
    await mkdir(cluster);
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('is written with mode 600 and found while the postmaster lives on its port', async () => {
    const remove = await writeConnectionFile(dataDir, { url: 'postgres://postgres:pw@127.0.0.1:5999/county_services', port: 5999 });
    expect((await stat(connectionFilePath(dataDir))).mode & 0o777).toBe(0o600);
    expect(await findRunningServer(dataDir, cluster)).toBeNull(); // no postmaster.pid: nothing runs
    await lockFile(process.pid, 5999);
    expect(await findRunningServer(dataDir, cluster)).toMatchObject({ port: 5999, pid: process.pid, url: expect.stringContaining(':5999/') });
    await lockFile(process.pid, 6000);
    expect(await findRunningServer(dataDir, cluster)).toBeNull(); // another postmaster now: the file is stale
    await remove();
    expect(existsSync(connectionFilePath(dataDir))).toBe(false);
  });

  it('a crash leaves the file and a dead postmaster: ignored', async () => {
    await writeConnectionFile(dataDir, { url: 'postgres://x@127.0.0.1:5999/db', port: 5999 });
    await lockFile(2 ** 22 + 12345, 5999); // above the kernel's pid_max: no such process
    expect(await findRunningServer(dataDir, cluster)).toBeNull();
  });

  it('removal leaves a file another server wrote since', async () => {
    const remove = await writeConnectionFile(dataDir, { url: 'postgres://x@127.0.0.1:5999/db', port: 5999 });
    await writeFile(connectionFilePath(dataDir), JSON.stringify({ url: 'postgres://y@127.0.0.1:6001/db', port: 6001, pid: process.pid + 1 }));
    await remove();
    expect(existsSync(connectionFilePath(dataDir))).toBe(true);
  });

  it('an unreadable or malformed file is a clear error, not a silent second PostgreSQL', async () => {
    await writeFile(connectionFilePath(dataDir), 'not json');
    await expect(findRunningServer(dataDir, cluster)).rejects.toThrow(/is not a connection file written by the server/);
  });
});
