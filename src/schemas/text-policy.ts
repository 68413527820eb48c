// The text-input policy, applied once to every request schema (body, query, path, headers) when a
// route is registered: every string refuses the C0 controls (NUL, CR, LF, ESC, …), DEL, the C1
// controls, lone UTF-16 surrogates and U+FFFD (what invalid UTF-8 decodes to), so nothing reaches
// PostgreSQL that it would refuse (NUL in text) and nothing reaches a log, an email or a terminal
// that could forge a line or an escape sequence. No field of this API needs a control character.
//
// Route authors write plain `Type.String(...)`: the policy is added to the schema by applyTextPolicy
// (called from the root onRoute hook, plugins/errors.ts), so a new route cannot forget it. It shows
// in the OpenAPI document as the string's `pattern`; test/schemas/text-policy.test.ts walks the
// generated document and fails if any request string lacks it.

/** Characters no request string may contain. Compiled with the `u` flag (TypeBox does so). */
export const FORBIDDEN_CHARS = '\\u0000-\\u001F\\u007F-\\u009F\\uD800-\\uDFFF\\uFFFD';
/** The pattern of a string that had none. */
export const SAFE_TEXT_PATTERN = `^[^${FORBIDDEN_CHARS}]*$`;
/** Prefix of a pattern that already had one: a lookahead over the whole value, then the original. */
export const SAFE_TEXT_LOOKAHEAD = `^(?=[^${FORBIDDEN_CHARS}]*$)`;

const FORBIDDEN_RE = new RegExp(`[${FORBIDDEN_CHARS}]`, 'u');

/** True when the value contains nothing the policy forbids (used by formats and outside schemas). */
export function isSafeText(value: string): boolean {
  return !FORBIDDEN_RE.test(value);
}

/** True when a string schema's pattern carries the policy. */
export function hasTextPolicy(pattern: unknown): boolean {
  return typeof pattern === 'string' && (pattern === SAFE_TEXT_PATTERN || pattern.startsWith(SAFE_TEXT_LOOKAHEAD));
}

function withPolicy(pattern: string | undefined): string {
  if (pattern === undefined) return SAFE_TEXT_PATTERN;
  if (hasTextPolicy(pattern)) return pattern;
  // An anchored pattern keeps its meaning after the lookahead; an unanchored one is searched for.
  return pattern.startsWith('^') ? `${SAFE_TEXT_LOOKAHEAD}(?:${pattern})` : `${SAFE_TEXT_LOOKAHEAD}[\\s\\S]*?(?:${pattern})`;
}

type Node = Record<string, unknown>;
const isString = (s: Node) => s.type === 'string' || (Array.isArray(s.type) && s.type.includes('string'));

/**
 * Adds the policy to every string schema reachable from `schema` (in place: TypeBox schemas shared by
 * several routes get it once; idempotent). A string that is a constant or an enum is left alone: its
 * values are fixed by the schema.
 */
export function applyTextPolicy(schema: unknown, seen = new Set<unknown>()): void {
  if (!schema || typeof schema !== 'object' || seen.has(schema)) return;
  seen.add(schema);
  if (Array.isArray(schema)) {
    for (const s of schema) applyTextPolicy(s, seen);
    return;
  }
  const s = schema as Node;
  if (isString(s) && s.const === undefined && s.enum === undefined) s.pattern = withPolicy(s.pattern as string | undefined);
  for (const key of ['properties', 'patternProperties', '$defs', 'definitions'] as const) {
    const map = s[key];
    if (map && typeof map === 'object') for (const v of Object.values(map)) applyTextPolicy(v, seen);
  }
  for (const key of ['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'not', 'prefixItems', 'propertyNames'] as const) {
    applyTextPolicy(s[key], seen);
  }
}

/** Every string schema reachable from `schema` lacking the policy, as JSON-pointer-ish paths. */
export function stringsWithoutPolicy(schema: unknown, path = '', out: string[] = [], seen = new Set<unknown>()): string[] {
  if (!schema || typeof schema !== 'object' || seen.has(schema)) return out;
  seen.add(schema);
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => stringsWithoutPolicy(s, `${path}/${i}`, out, seen));
    return out;
  }
  const s = schema as Node;
  if (isString(s) && s.const === undefined && s.enum === undefined && !hasTextPolicy(s.pattern)) out.push(path || '/');
  for (const key of ['properties', 'patternProperties', '$defs', 'definitions'] as const) {
    const map = s[key];
    if (map && typeof map === 'object') for (const [k, v] of Object.entries(map)) stringsWithoutPolicy(v, `${path}/${k}`, out, seen);
  }
  for (const key of ['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'not', 'prefixItems', 'propertyNames'] as const) {
    stringsWithoutPolicy(s[key], `${path}/${key}`, out, seen);
  }
  return out;
}
