// Writes openapi/openapi.json from the route schemas (`npm run openapi`), or with --check fails when
// the committed file is stale (CI).
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { buildApp } from '../src/app.js';
import { testConfig } from '../src/config.js';
import { connect } from '../src/db/client.js';

const OUT = new URL('../openapi/openapi.json', import.meta.url);

export async function generateOpenApi(): Promise<string> {
  // The document depends only on the routes, never on a database: the pool here is never used.
  const db = connect('postgres://unused@127.0.0.1:1/unused', { max: 1 });
  const app = await buildApp(testConfig({ HOST: '127.0.0.1', PORT: '5000' }), { db, logger: false });
  await app.ready();
  const doc = JSON.stringify(app.swagger(), null, 2) + '\n';
  await app.close();
  await db.close();
  return doc;
}

const doc = await generateOpenApi();
if (process.argv.includes('--check')) {
  const current = await readFile(OUT, 'utf8').catch(() => '');
  if (current !== doc) {
    console.error('openapi/openapi.json is stale: run `npm run openapi` and commit the result');
    process.exit(1);
  }
  console.log('openapi/openapi.json is current');
} else {
  await mkdir(new URL('.', OUT), { recursive: true });
  await writeFile(OUT, doc);
  console.log('wrote openapi/openapi.json');
}
