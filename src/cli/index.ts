#!/usr/bin/env node
// The ops CLI. It calls the same security/ functions as the routes.
import { loadConfig } from '../config.js';
import { openRuntime } from '../runtime.js';
import { runMigrations } from '../db/migrate.js';
import { seed } from '../db/seed.js';
import { securityContext } from '../app.js';

const USAGE = `usage: county-services <command>
  db migrate            apply pending migrations
  db seed               create the seeded roles, counties and departments (idempotent)`;

async function main(argv: string[]): Promise<number> {
  const [group, cmd] = argv;
  const config = loadConfig();
  const quiet = { info: () => undefined, warn: (m: string) => console.error(`warning: ${m}`) };
  if (group === 'db' && (cmd === 'migrate' || cmd === 'seed')) {
    const { database } = await openRuntime(config, quiet, { migrate: false, seed: false });
    try {
      await runMigrations(database.db);
      if (cmd === 'seed') {
        const r = await seed(securityContext(config, { db: database }), { devAdmin: config.NODE_ENV === 'development', warn: quiet.warn });
        console.log(`seeded: ${r.roles} roles, ${r.counties} counties, ${r.departments} departments${r.devAdminCreated ? ', dev admin' : ''}`);
      } else {
        console.log('migrations applied');
      }
    } finally {
      await database.close();
    }
    return 0;
  }
  console.error(USAGE);
  return 2;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
