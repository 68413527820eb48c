// The ops CLI's commands run in-process on a test context: the command line is parsed as
// src/cli/index.ts parses it (strict options, --json, positional count), then the real command runs
// with the CLI actor. Errors are thrown (the CLI would print errorLine(err) and exit 1, or 2 for a
// UsageError). A child process costs ~1.5 s; test/cli/cli.test.ts keeps the process-level checks.
import { parseArgs } from 'node:util';
import { cliActor, COMMANDS } from '../../src/cli/commands.js';
import { UsageError } from '../../src/cli/io.js';
import type { SecurityContext } from '../../src/security/context.js';

export async function runCli(ctx: SecurityContext, argv: string[], prepared: Record<string, string> = {}): Promise<string> {
  const [group, cmd, ...rest] = argv;
  const command = COMMANDS[`${group} ${cmd}`];
  if (!command) throw new UsageError(`unknown command "${group} ${cmd}"`);
  const { values, positionals } = parseArgs({
    args: rest, options: { ...command.options, json: { type: 'boolean' } }, allowPositionals: true, strict: true,
  });
  const [min, max] = command.args;
  if (positionals.length < min || positionals.length > max) throw new UsageError(`usage: county-services ${command.usage}`);
  let out = '';
  await command.run({
    ctx, actor: cliActor(), args: positionals, opts: values,
    print: (data, human) => (out += (values.json === true ? JSON.stringify(data) : human) + '\n'),
    write: (line) => (out += line + '\n'),
  }, prepared);
  return out;
}

/** runCli with --json, parsed. */
export async function runCliJson<T = Record<string, unknown>>(ctx: SecurityContext, argv: string[]): Promise<T> {
  return JSON.parse(await runCli(ctx, [...argv, '--json'])) as T;
}
