import { defineConfig } from 'drizzle-kit';

// drizzle-kit only generates SQL from the schema here; it never needs a live database.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema/index.ts',
  out: './migrations',
  casing: 'snake_case',
});
