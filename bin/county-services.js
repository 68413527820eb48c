#!/usr/bin/env node
// The installed `county-services` command. In a checkout it runs the TypeScript source through tsx (a
// development dependency), so a fresh clone needs no build step; where there is no source or no tsx
// (the production image copies only dist/ and installs no development dependencies), it runs the
// built CLI, dist/cli/index.js (`npm run build`). Same as `npm run cli -- …`.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/index.ts', import.meta.url);
const built = new URL('../dist/cli/index.js', import.meta.url);

async function tsx() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return null;
  }
}

const loader = existsSync(source) ? await tsx() : null;
let cli;
if (loader) {
  loader.register();
  cli = await import(source.href);
} else if (existsSync(built)) {
  cli = await import(built.href);
} else {
  console.error('error: county-services is not built (run `npm run build`) and tsx is not installed to run the sources');
  process.exit(1);
}
await cli.runCliProcess();
