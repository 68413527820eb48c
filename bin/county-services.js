#!/usr/bin/env node
// The installed `county-services` command. In a checkout it runs the TypeScript source through tsx (a
// development dependency), so a fresh clone needs no build step; where there is no source (the
// production image copies only dist/), it runs the built CLI, dist/cli/index.js (`npm run build`).
// Same as `npm run cli -- …`.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/index.ts', import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(source.href);
} else {
  cli = await import(new URL('../dist/cli/index.js', import.meta.url).href);
}
await cli.runCliProcess();
