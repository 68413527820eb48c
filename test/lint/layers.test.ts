// The layering rules of eslint.config.js fire: each forbidden crossing, written into a file of the
// zone, is an error of `npm run lint` (so CI fails), and the allowed imports of the same file pass.
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: ROOT });

async function errorsOf(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result!.messages.filter((m) => m.severity === 2).map((m) => m.ruleId ?? m.message);
}

const CASES: [string, string, string][] = [
  // [file in the zone, forbidden import, allowed import]
  ['src/security/example.ts', "import type { FastifyInstance } from 'fastify';", "import type { Database } from '../db/client.js';"],
  ['src/security/example.ts', "import cookie from '@fastify/cookie';", "import { AppError } from '../errors.js';"],
  ['src/security/example.ts', "import { fresh } from '../routes/guards.js';", "import { ROLE_ADMIN } from './role-names.js';"],
  ['src/security/example.ts', "import authentication from '../plugins/authentication.js';", "import type { Config } from '../config.js';"],
  ['src/security/example.ts', "import { buildApp } from '../app.js';", "import { Email } from '../schemas/common.js';"],
  ['src/routes/example/index.ts', "import { users } from '../../db/schema/index.js';", "import { publicUser } from '../../security/presenters.js';"],
  ['src/routes/example/index.ts', "import { sql } from 'drizzle-orm';", "import { Type } from 'typebox';"],
  ['src/db/example.ts', "import { findUser } from '../security/datastore.js';", "import { users } from './schema/index.js';"],
  ['src/db/example.ts', "import { ROLE_ADMIN } from '../security/role-names.js';", "import type { Config } from '../config.js';"],
  ['src/cli/example.ts', "import { fresh } from '../routes/guards.js';", "import { listRoles } from '../security/roles.js';"],
  ['src/cli/example.ts', "import errors from '../plugins/errors.js';", "import { UsageError } from './io.js';"],
  ['src/cli/example.ts', "import { buildApp } from '../app.js';", "import { securityContext } from '../security/context.js';"],
];

describe('layer zones (eslint no-restricted-imports)', { timeout: 60_000 }, () => {
  it.each(CASES)('%s: rejects `%s`, accepts `%s`', async (file, forbidden, allowed) => {
    expect(await errorsOf(file, `${forbidden}\nexport const used = [${nameOf(forbidden)}];\n`)).toContain('no-restricted-imports');
    expect(await errorsOf(file, `${allowed}\nexport const used = [${nameOf(allowed)}];\n`)).toEqual([]);
  });

  it('routes and the CLI do not build public shapes themselves (no toISOString outside the presenters)', async () => {
    for (const file of ['src/routes/example/index.ts', 'src/cli/example.ts']) {
      expect(await errorsOf(file, 'export const at = (d: Date) => ({ created_at: d.toISOString() });\n')).toContain('no-restricted-syntax');
    }
    expect(await errorsOf('src/security/presenters.ts', 'export const at = (d: Date) => ({ created_at: d.toISOString() });\n')).toEqual([]);
  });

  it('only the keyring (and config.ts) reads SECRET_KEY / SECRET_KEY_FALLBACKS', async () => {
    const code = "import type { Config } from '../config.js';\nexport const k = (c: Config) => [c.SECRET_KEY, ...c.SECRET_KEY_FALLBACKS];\n";
    for (const file of ['src/security/example.ts', 'src/plugins/example.ts']) {
      expect(await errorsOf(file, code)).toEqual(['no-restricted-syntax', 'no-restricted-syntax']);
    }
    expect(await errorsOf('src/routes/example/index.ts', code.replace("'../config.js'", "'../../config.js'"))).toContain('no-restricted-syntax');
    expect(await errorsOf('src/security/keyring.ts', code)).toEqual([]);
  });
});

/** the binding an import line introduces, so the sample uses it (no unused-vars noise) */
function nameOf(line: string): string {
  const m = /import (?:type )?(?:\{ (\w+)(?: as \w+)? \}|(\w+)) from/.exec(line);
  const name = m?.[1] ?? m?.[2];
  if (!name) throw new Error(`cannot read the import in: ${line}`);
  return line.includes('import type') ? `null as unknown as ${name}` : name;
}
