// One table of advisory-lock numbers (src/db/locks.ts): every lock has its own number, and no other
// source file takes an advisory lock by itself (which is how one number once served two locks).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADVISORY_LOCKS } from '../../src/db/locks.js';

const SRC = path.resolve(import.meta.dirname, '../../src');
const sources = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);

describe('advisory locks', () => {
  it('gives every lock a distinct number', () => {
    const numbers = Object.values(ADVISORY_LOCKS);
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it('are taken only through src/db/locks.ts', () => {
    const offenders = sources(SRC)
      .filter((f) => path.relative(SRC, f) !== path.join('db', 'locks.ts'))
      .filter((f) => /pg_(try_)?advisory/.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(SRC, f));
    expect(offenders).toEqual([]);
  });
});
