// Where the app's log lines go. JSON lines (production, tests, and whenever LOG_FORMAT=json), or in
// development one readable line per event through pino-pretty: a devDependency, loaded only when it is
// installed (a production image without devDependencies logs JSON whatever LOG_FORMAT says).
import { createRequire } from 'node:module';

export interface LogSink { write: (line: string) => void }

type Prettify = (line: string) => string;
interface PrettyLog { req?: { method?: string; url?: string }; res?: { statusCode?: number }; responseTime?: number; [key: string]: unknown }

/** pino-pretty's synchronous formatter, or null when the package is not installed. */
function loadPrettifier(colorize: boolean): Prettify | null {
  let factory: ((opts: Record<string, unknown>) => Prettify) | undefined;
  try {
    factory = (createRequire(import.meta.url)('pino-pretty') as { prettyFactory: typeof factory }).prettyFactory;
  } catch {
    return null;
  }
  if (!factory) return null;
  return factory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    singleLine: true,
    // a request line says it all in its message: "GET /users?page=2 200 3.1 ms"
    ignore: 'pid,hostname,reqId,req,res,responseTime',
    messageFormat: (log: PrettyLog, messageKey: string) => {
      const msg = String(log[messageKey] ?? '');
      if (log.req && log.res) {
        const ms = typeof log.responseTime === 'number' ? ` ${log.responseTime.toFixed(1)} ms` : '';
        return `${log.req.method} ${log.req.url} ${log.res.statusCode}${ms}`;
      }
      return msg;
    },
  });
}

/**
 * The logger's stream: `sink` (stdout by default) receiving JSON lines, or pretty lines when the
 * format is pretty and pino-pretty is available. `pretty` says which one it is.
 */
export function logDestination(format: 'json' | 'pretty', sink?: LogSink): { stream?: LogSink; pretty: boolean } {
  if (format === 'pretty') {
    const prettify = loadPrettifier(!sink && process.stdout.isTTY === true);
    if (prettify) {
      const out = sink ?? process.stdout;
      return { stream: { write: (line) => void out.write(prettify(line)) }, pretty: true };
    }
  }
  return { stream: sink, pretty: false };
}

type LogFn = (...args: unknown[]) => void;
interface ChildCapable {
  level: string;
  isLevelEnabled?: (level: string) => boolean;
  child: (bindings: Record<string, unknown>, opts?: Record<string, unknown>) => ChildCapable;
  [method: string]: unknown;
}

/**
 * A request's logger, made when the request first logs something. Fastify gives every request a
 * pino child (its bindings serialised, and run past the redaction rules, per request); at the
 * production levels most requests never log, so the child is made only when a line is written.
 */
class LazyRequestLogger {
  private made: ChildCapable | undefined;
  constructor(private readonly parent: ChildCapable, private readonly bindings: Record<string, unknown>, private readonly opts: Record<string, unknown>) {}
  private real(): ChildCapable {
    return (this.made ??= this.parent.child(this.bindings, this.opts));
  }
  private write(level: string, args: unknown[]) {
    if (this.made || this.parent.isLevelEnabled?.(level) !== false) (this.real()[level] as LogFn)(...args);
  }
  get level(): string { return this.made?.level ?? this.parent.level; }
  set level(value: string) { this.real().level = value; }
  isLevelEnabled(level: string): boolean { return (this.made ?? this.parent).isLevelEnabled?.(level) ?? true; }
  fatal(...args: unknown[]) { this.write('fatal', args); }
  error(...args: unknown[]) { this.write('error', args); }
  warn(...args: unknown[]) { this.write('warn', args); }
  info(...args: unknown[]) { this.write('info', args); }
  debug(...args: unknown[]) { this.write('debug', args); }
  trace(...args: unknown[]) { this.write('trace', args); }
  silent() {}
  child(bindings: Record<string, unknown>, opts?: Record<string, unknown>) { return this.real().child(bindings, opts); }
}

/** Fastify's childLoggerFactory: a lazy child, unless the route sets its own log options (then pino's own). */
export function lazyChildLogger(logger: unknown, bindings: Record<string, unknown>, opts: Record<string, unknown>): LazyRequestLogger | ChildCapable {
  const parent = logger as ChildCapable;
  return Object.keys(opts).length ? parent.child(bindings, opts) : new LazyRequestLogger(parent, bindings, opts);
}
