// The text policy can't be forgotten: every string a client sends (body member, query or path
// parameter) of every operation in the generated OpenAPI document carries it, and the pattern
// refuses what it must and accepts real-world text.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { applyTextPolicy, hasTextPolicy, isSafeText, SAFE_TEXT_LOOKAHEAD, SAFE_TEXT_PATTERN, stringsWithoutPolicy } from '../../src/schemas/text-policy.js';
import { isDateTime } from '../../src/schemas/formats.js';

const doc = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string; schema: unknown }>; requestBody?: { content: Record<string, { schema: unknown }> } }>>;
};

describe('the text policy', () => {
  it('every request string of every operation in openapi.json carries it', () => {
    const missing: string[] = [];
    let strings = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const p of op.parameters ?? []) {
          missing.push(...stringsWithoutPolicy(p.schema).map((s) => `${method.toUpperCase()} ${path} ${p.in} ${p.name}${s === '/' ? '' : s}`));
          strings += JSON.stringify(p.schema).split('"type":"string"').length - 1;
        }
        const body = op.requestBody?.content['application/json']?.schema;
        if (body) missing.push(...stringsWithoutPolicy(body).map((s) => `${method.toUpperCase()} ${path} body${s}`));
      }
    }
    expect(strings).toBeGreaterThan(10);
    expect(missing).toEqual([]);
  });

  it('refuses C0/C1 controls, DEL, lone surrogates and U+FFFD; accepts every script, emoji, combining marks', () => {
    const re = new RegExp(SAFE_TEXT_PATTERN, 'u');
    for (const bad of ['\u0000', 'a\tb', 'a\nb', '\r', '\u001b[0m', '\u007f', '\u0085', '\u009b', '\ud800', 'x\udfff', '\ufffd']) {
      expect(re.test(bad), JSON.stringify(bad)).toBe(false);
      expect(isSafeText(bad)).toBe(false);
    }
    for (const ok of ['', 'Jane', 'مريم', 'עברית', '中文', '👩🏽‍💻🇰🇪', 'e\u0301', "O'Brien & <Co>", 'ß İ ǅ']) {
      expect(re.test(ok), ok).toBe(true);
      expect(isSafeText(ok)).toBe(true);
    }
  });

  it('applyTextPolicy keeps an existing pattern\'s meaning and is idempotent', () => {
    const schema = { type: 'object', properties: { a: { type: 'string', pattern: '^[a-z]+$' }, b: { type: 'string' }, c: { type: 'string', const: 'x' }, d: { type: ['string', 'null'] }, e: { type: 'array', items: { type: 'string' } } } };
    applyTextPolicy(schema);
    applyTextPolicy(schema);
    const p = schema.properties;
    expect(p.a.pattern).toBe(`${SAFE_TEXT_LOOKAHEAD}(?:^[a-z]+$)`);
    expect(new RegExp(p.a.pattern, 'u').test('abc')).toBe(true);
    expect(new RegExp(p.a.pattern, 'u').test('ABC')).toBe(false);
    expect(new RegExp(p.a.pattern, 'u').test('ab\u0000')).toBe(false);
    expect((p.b as { pattern?: string }).pattern).toBe(SAFE_TEXT_PATTERN);
    expect((p.c as { pattern?: string }).pattern).toBeUndefined();
    expect(hasTextPolicy((p.d as { pattern?: string }).pattern)).toBe(true);
    expect(hasTextPolicy((p.e.items as { pattern?: string }).pattern)).toBe(true);
    expect(stringsWithoutPolicy(schema)).toEqual([]);
  });

  it('date-time: RFC 3339 with an offset, years 1900–9999 (in UTC too), real calendar dates', () => {
    for (const ok of ['1900-01-01T00:00:00Z', '2024-02-29T12:00:00.123Z', '9999-12-31T23:59:59Z', '2026-12-01T10:00:00+03:00']) expect(isDateTime(ok), ok).toBe(true);
    for (const bad of ['0000-01-01T00:00:00Z', '1899-12-31T23:59:59Z', '10000-01-01T00:00:00Z', '2023-02-29T00:00:00Z', '2024-13-01T00:00:00Z',
      '2024-01-01', '2024-01-01T25:00:00Z', '9999-12-31T23:59:59-01:00', '1900-01-01T00:30:00+01:00', '2024-01-01T00:00:00', 'now']) {
      expect(isDateTime(bad), bad).toBe(false);
    }
  });
});
