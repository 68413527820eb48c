// What /ready asks of the core: does the database answer? (The query itself lives in db/health.ts.)
import { pingDatabase } from '../db/health.js';
import type { SecurityContext } from './context.js';

export const databaseAnswers = (ctx: SecurityContext): Promise<void> => pingDatabase(ctx.db);
