// Production secrets (issue 13): NODE_ENV=production refuses SECRET_KEY, any SECRET_KEY_FALLBACKS entry
// and SECURITY_PASSWORD_SALT shorter than 32 characters or equal to a value shipped in the
// repository. The shipped files are grepped for assignments of these keys: every value found must be
// in config.ts's SHIPPED_SECRET_VALUES and refused. The server exits non-zero naming the key.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig, SHIPPED_SECRET_VALUES } from '../src/config.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const KEYS = ['SECRET_KEY', 'SECRET_KEY_FALLBACKS', 'SECURITY_PASSWORD_SALT'] as const;
const good = () => randomBytes(32).toString('hex');

// Everything that ships: sources, docs, compose, examples, scripts, bench. Not test/ (fixtures that
// only run under NODE_ENV=test), not installed or generated trees.
const SKIP_DIRS = new Set(['node_modules', '.git', 'test', 'data', 'dist', 'coverage', 'migrations', 'openapi']);
const TEXT = /\.(ts|js|mjs|cjs|md|ya?ml|json|sh|html|example|env|txt|toml)$|^(Dockerfile|\.env[\w.-]*)$/;

function shippedFiles(dir = ROOT): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    const st = statSync(full);
    if (st.isDirectory()) {
      if (!SKIP_DIRS.has(name)) out.push(...shippedFiles(full));
    } else if (TEXT.test(name) && st.size < 2_000_000) {
      out.push(full);
    }
  }
  return out;
}

/** Literal values assigned to the keys: `KEY=value`, `KEY: value`, `KEY: 'value'`, `${KEY:-value}`. */
function assignedValues(file: string, text: string): { value: string; where: string }[] {
  const code = /\.(ts|js|mjs|cjs)$/.test(file);
  const found: { value: string; where: string }[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const where = `${path.relative(ROOT, file)}:${i + 1}`;
    for (const m of line.matchAll(/\$\{(SECRET_KEY|SECRET_KEY_FALLBACKS|SECURITY_PASSWORD_SALT)(?::?-)([^}]*)\}/g)) {
      if (m[2]) found.push({ value: m[2], where });
    }
    const re = new RegExp(`(?<![A-Za-z0-9_])(${KEYS.join('|')})["']?\\s*[:=]\\s*("([^"]*)"|'([^']*)'|([^\\s#,;}]+))`, 'g');
    for (const m of line.matchAll(re)) {
      const quoted = m[3] ?? m[4];
      const bare = m[5];
      if (quoted !== undefined) {
        if (quoted && !quoted.startsWith('${')) found.push({ value: quoted, where });
      } else if (!code && bare && !/^[$?]/.test(bare)) {
        found.push({ value: bare, where });
      }
    }
  });
  return found;
}

describe('production secrets', () => {
  const prod = (env: Record<string, string>) => () => loadConfig({ NODE_ENV: 'production', SECRET_KEY: good(), SECURITY_PASSWORD_SALT: good(), ...env });

  it('a random 32-character key and salt start', () => {
    expect(prod({})).not.toThrow();
    expect(prod({ SECRET_KEY_FALLBACKS: `${good()},${good()}` })).not.toThrow();
  });

  it('refuses each key shorter than 32 characters, naming it', () => {
    const short = 'x'.repeat(31);
    expect(prod({ SECRET_KEY: short })).toThrow(/^SECRET_KEY: must be at least 32/);
    expect(prod({ SECURITY_PASSWORD_SALT: short })).toThrow(/^SECURITY_PASSWORD_SALT: must be at least 32/);
    expect(prod({ SECRET_KEY_FALLBACKS: `${good()},${short}` })).toThrow(/^SECRET_KEY_FALLBACKS \(entry 2\): must be at least 32/);
    expect(() => loadConfig({ NODE_ENV: 'production', SECURITY_PASSWORD_SALT: good() })).toThrow(/^SECRET_KEY: required/);
  });

  it('refuses every value in SHIPPED_SECRET_VALUES, as key, fallback and salt', () => {
    expect(SHIPPED_SECRET_VALUES.length).toBeGreaterThanOrEqual(8);
    for (const v of SHIPPED_SECRET_VALUES) {
      // shorter values are refused for their length; the longer ones for being published
      expect(prod({ SECRET_KEY: v }), v).toThrow(ConfigError);
      expect(prod({ SECRET_KEY: v }), v).toThrow(/^SECRET_KEY: /);
      expect(prod({ SECURITY_PASSWORD_SALT: v }), v).toThrow(/^SECURITY_PASSWORD_SALT: /);
      expect(prod({ SECRET_KEY_FALLBACKS: v }), v).toThrow(/^SECRET_KEY_FALLBACKS \(entry 1\): /);
    }
    expect(prod({ SECRET_KEY: 'compose-local-only-secret-key-change-me-0123456789' })).toThrow(/published in this repository/);
  });

  it('every value the shipped files assign to these keys is in SHIPPED_SECRET_VALUES (and so refused)', () => {
    const files = shippedFiles();
    expect(files.some((f) => f.endsWith('.env.example'))).toBe(true);
    expect(files.some((f) => f.endsWith('docker-compose.yml'))).toBe(true);
    const found = files.flatMap((f) => assignedValues(f, readFileSync(f, 'utf8')));
    // the grep works: it sees the .env.example placeholders
    expect(found.map((f) => f.value)).toContain('change-me-to-64-random-characters');
    const missing = found.filter((f) => !SHIPPED_SECRET_VALUES.includes(f.value));
    expect(missing, missing.map((m) => `${m.where}: ${m.value}`).join('\n')).toEqual([]);
    for (const f of found) expect(prod({ SECRET_KEY: f.value }), f.where).toThrow(/^SECRET_KEY: /);
  });

  it('the server exits non-zero with a message naming the key (development key in production)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT, encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, NODE_ENV: 'production', SECRET_KEY: 'dev-only-insecure-secret-key-change-me', SECURITY_PASSWORD_SALT: good(), DATABASE_URL: 'postgres://127.0.0.1:1/x' },
    });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/configuration error: SECRET_KEY: /);
  });
});
