// The CLI checks what it would send over HTTP against the route's own TypeBox schema, so a value the
// API refuses with 400 is refused here too, with the same field names.
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { validationError } from '../errors.js';
import { registerFormats } from '../schemas/formats.js';

interface Issue { keyword: string; instancePath: string; params?: Record<string, unknown>; message?: string }

function message(issue: Issue): string {
  const limit = String(issue.params?.limit ?? '');
  switch (issue.keyword) {
    case 'maxLength': return `Must be at most ${limit} characters`;
    case 'minLength': return `Must be at least ${limit} characters`;
    case 'maxItems': return `At most ${limit} items`;
    case 'format': return `Must be a valid ${String(issue.params?.format)}`;
    default: return issue.message ? issue.message.charAt(0).toUpperCase() + issue.message.slice(1) : 'Is invalid';
  }
}

/** Throws VALIDATION_FAILED with `fields` keyed by the body's top-level field, as the API does. */
export function checkBody(schema: TSchema, body: unknown): void {
  registerFormats();
  if (Value.Check(schema, body)) return;
  const fields: Record<string, string[]> = {};
  for (const issue of Value.Errors(schema, body) as Issue[]) {
    const field = issue.instancePath.split('/')[1] ?? '';
    const list = (fields[field] ??= []);
    const m = message(issue);
    if (!list.includes(m)) list.push(m);
  }
  throw validationError(fields);
}
