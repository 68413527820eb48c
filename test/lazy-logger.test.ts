// A request's logger is made when the request first logs (src/logging.ts lazyChildLogger): no pino
// child for a request that writes nothing, and a line that is written carries the request's bindings.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { lazyChildLogger } from '../src/logging.js';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const root = pino({ level }, { write: (l: string) => { lines.push(JSON.parse(l)); } });
  let children = 0;
  const child = root.child.bind(root);
  (root as unknown as { child: typeof child }).child = ((b: object, o?: object) => { children++; return child(b, o); }) as typeof child;
  return { root, lines, children: () => children };
}

describe('lazy request logger', () => {
  it('at warn, info and debug make no child and write nothing; warn writes one line with the reqId', () => {
    const c = capture('warn');
    const log = lazyChildLogger(c.root, { reqId: 'r-1' }, {}) as unknown as pino.Logger;
    log.info('incoming request');
    log.debug('detail');
    expect(c.children()).toBe(0);
    expect(c.lines).toHaveLength(0);
    log.warn({ a: 1 }, 'slow');
    expect(c.children()).toBe(1);
    expect(c.lines).toHaveLength(1);
    expect(c.lines[0]).toMatchObject({ reqId: 'r-1', a: 1, msg: 'slow', level: 40 });
    log.error('again');
    expect(c.children()).toBe(1);
    expect(c.lines[1]).toMatchObject({ reqId: 'r-1', msg: 'again' });
  });

  it('at info the request lines are written with their bindings; route log options get pino\'s own child', () => {
    const c = capture('info');
    const log = lazyChildLogger(c.root, { reqId: 'r-2' }, {}) as unknown as pino.Logger;
    log.info('request completed');
    expect(c.lines[0]).toMatchObject({ reqId: 'r-2', msg: 'request completed' });
    expect(log.level).toBe('info');
    const own = lazyChildLogger(c.root, { reqId: 'r-3' }, { level: 'error' }) as unknown as pino.Logger;
    own.warn('hidden');
    expect(own.level).toBe('error');
    expect(c.lines).toHaveLength(1);
  });
});
