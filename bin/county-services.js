#!/usr/bin/env node
// The installed `county-services` command: runs the TypeScript CLI (src/cli/index.ts) through tsx, so
// there is no build step. Same as `npm run cli -- …`.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/index.ts');
