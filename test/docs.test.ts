// The documentation names what the code has: every configuration key in docs/configuration.md, every
// error code in docs/errors.md; the README keeps the two commands and links every docs/ file.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EnvSchema } from '../src/config.js';
import { ERROR_CODES } from '../src/errors.js';
import { performanceDoc, README_MARKERS, readmePerformance, withReadmePerformance } from '../bench/performance-doc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

describe('documentation', () => {
  it('docs/configuration.md names every configuration key', () => {
    const doc = read('docs/configuration.md');
    const missing = Object.keys(EnvSchema.properties).filter((k) => !new RegExp(`\\b${k}\\b`).test(doc));
    expect(missing).toEqual([]);
  });

  it('docs/errors.md names every error code', () => {
    const doc = read('docs/errors.md');
    expect(ERROR_CODES.filter((c) => !new RegExp(`\\b${c}\\b`).test(doc))).toEqual([]);
  });

  it('the README: the two commands with a time for npm test, a tour, and a link to every docs/ file', () => {
    const readme = read('README.md');
    expect(readme).toMatch(/npm install && npm start/);
    expect(readme).toMatch(/npm test .*about \d+ minutes/);
    expect(readme).toMatch(/## A five-minute tour/);
    const wanted = ['api', 'errors', 'configuration', 'security', 'clients', 'operations', 'credentials', 'authorization',
      'input-handling', 'performance', 'consistency', 'scaling', 'architecture', 'passwordless'].map((n) => `docs/${n}.md`);
    const present = readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
    for (const file of new Set([...wanted, ...present])) expect(readme, file).toContain(`](${file})`);
    // links between the docs this branch wrote resolve
    for (const file of present) {
      for (const [, target] of read(file).matchAll(/\]\(([a-z-]+\.md)(#[^)]*)?\)/g)) {
        if (wanted.includes(`docs/${target}`) && !present.includes(`docs/${target}`)) continue; // written by another area
        expect(existsSync(path.join(ROOT, 'docs', target!)), `${file} → ${target}`).toBe(true);
      }
    }
    expect(readme.split('\n').length).toBeLessThan(200);
  });

  it('the README\'s Performance section and docs/performance.md are what `npm run bench` generated from bench/results/latest.json', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain(README_MARKERS.start);
    const latest = JSON.parse(readFileSync(path.join(ROOT, 'bench/results/latest.json'), 'utf8'));
    expect(withReadmePerformance(readme, readmePerformance(latest))).toBe(readme);
    expect(readFileSync(path.join(ROOT, 'docs/performance.md'), 'utf8')).toBe(performanceDoc(latest));
  });
});
