// Terminal plumbing for the ops CLI: one-line error messages and passwords that never appear on the
// command line (a no-echo prompt, or the first line of stdin with --password-stdin).
import { AppError } from '../errors.js';

/** The terminal a CLI run talks to: the process's own (processIo) for the binary, or a test's. */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** the environment to read the configuration from; the process environment when absent */
  env?: Record<string, string | undefined>;
}

export const processIo = (): CliIo => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });

/** A mistake in the command line itself: exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

// What a terminal would act on instead of showing: C0 controls (ESC starts ANSI sequences, CR
// rewrites the line), DEL, C1 controls (U+009B is a one-character CSI), line/paragraph separators,
// bidirectional overrides and isolates (text that reads differently from what it is), and lone
// surrogates. `g` + `u`: a paired surrogate is one code point and never matches.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const TERMINAL_UNSAFE = /[\u0000-\u0009\u000B-\u001F\u007F-\u009F\u2028\u2029\u200E\u200F\u202A-\u202E\u2066-\u2069\uD800-\uDFFF]/gu;
// eslint-disable-next-line no-control-regex -- as above
const TERMINAL_UNSAFE_OR_NEWLINE = /[\u0000-\u001F\u007F-\u009F\u2028\u2029\u200E\u200F\u202A-\u202E\u2066-\u2069\uD800-\uDFFF]/gu;
const uEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;

/** One user-controlled value for text output: every control (newline included) shown as \uXXXX. */
export function shown(value: string): string {
  return value.replace(TERMINAL_UNSAFE_OR_NEWLINE, uEscape);
}

/** Human (non --json) output as a whole: the lines stay, anything else a terminal would act on is shown as \uXXXX. */
export function terminalSafe(text: string): string {
  return text.replace(TERMINAL_UNSAFE, uEscape);
}

/** The single line printed after "error: ". Validation failures name their fields. */
export function errorLine(err: unknown): string {
  if (err instanceof AppError) {
    if (err.fields && Object.keys(err.fields).length) {
      return oneLine(Object.entries(err.fields).map(([field, msgs]) => `${field || 'input'}: ${msgs.join(', ')}`).join('; '));
    }
    return oneLine(err.message);
  }
  if (err instanceof Error) {
    // Drizzle wraps driver errors with the whole query in the message; the cause says what went wrong.
    const cause = (err as { cause?: unknown }).cause;
    const message = cause instanceof Error && err.message.startsWith('Failed query') ? cause.message : err.message;
    return oneLine(message.split('\n')[0] ?? message) || err.name;
  }
  return oneLine(String(err));
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let data = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) data += chunk as string;
  return data;
}

/** Reads a line without echoing it (raw mode). Ctrl-C aborts. */
function promptHidden(io: CliIo, question: string): Promise<string> {
  const { stdin, stderr: out } = io;
  if (!stdin.setRawMode) return Promise.reject(new UsageError('cannot prompt without a terminal'));
  const setRawMode = stdin.setRawMode.bind(stdin);
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      stdin.off('data', onData);
      setRawMode(false);
      stdin.pause();
      out.write('\n');
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          finish();
          reject(new UsageError('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = Array.from(value).slice(0, -1).join('');
        else value += ch;
      }
    };
    out.write(question);
    stdin.setEncoding('utf8');
    setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

/**
 * The new password for `who`: the first line of stdin with --password-stdin, else a prompt (twice)
 * when stdin is a terminal. Never an argument: argv is visible to every user of the machine.
 */
export async function readNewPassword(io: CliIo, who: string, fromStdin: boolean): Promise<string> {
  if (fromStdin) {
    const line = (await readAll(io.stdin)).split('\n')[0]!.replace(/\r$/, '');
    if (!line) throw new UsageError('no password on stdin');
    return line;
  }
  if (!io.stdin.isTTY) throw new UsageError('a password is needed: pipe it with --password-stdin or run in a terminal');
  const first = await promptHidden(io, `New password for ${who}: `);
  const second = await promptHidden(io, 'Repeat it: ');
  if (first !== second) throw new UsageError('the passwords do not match');
  if (!first) throw new UsageError('empty password');
  return first;
}
