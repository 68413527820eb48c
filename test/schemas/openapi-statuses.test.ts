// The document tells the truth about bodies and statuses (issue 14): body-less operations declare no
// requestBody, POST /logout's body is optional, and every operation lists the statuses it can answer
// whatever its handler does.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';

type Op = { requestBody?: { required?: boolean; content?: Record<string, { schema?: { required?: string[]; minProperties?: number } }> }; parameters?: Array<{ in: string }>; responses: Record<string, unknown> };
const doc = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, Op>> };
const ops = Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, method, op })));

describe('OpenAPI bodies and statuses', () => {
  it('POST /logout: requestBody.required is false; body-less operations have no requestBody', () => {
    expect(doc.paths['/logout']!.post!.requestBody!.required).toBe(false);
    for (const key of ['POST /auth/logout-all', 'POST /tf-disable', 'POST /users/{id}/roles/{role}', 'DELETE /users/{id}/roles/{role}', 'POST /mf-recovery-codes']) {
      const op = ops.find((o) => o.key === key);
      expect(op, key).toBeDefined();
      expect(op!.op.requestBody, key).toBeUndefined();
    }
    // a body with a required member (or minProperties) is required; one without (POST /logout, POST /wan-signin, …) is optional
    for (const { key, op } of ops) {
      if (!op.requestBody) continue;
      const schema = op.requestBody.content?.['application/json']?.schema;
      expect(op.requestBody.required, key).toBe((schema?.required ?? []).length > 0 || (schema?.minProperties ?? 0) > 0);
    }
  });

  it('every operation lists 429, 500, 503; 400/413/414/415 as its inputs make them possible', () => {
    for (const { key, method, op } of ops) {
      const has = (s: number) => String(s) in op.responses;
      for (const s of [429, 500, 503]) expect(has(s), `${key} ${s}`).toBe(true);
      const unsafe = ['post', 'put', 'patch', 'delete'].includes(method);
      if (unsafe || op.requestBody || op.parameters?.length) expect(has(400), `${key} 400`).toBe(true);
      if (unsafe) expect(has(413), `${key} 413`).toBe(true);
      if (op.requestBody) expect(has(415), `${key} 415`).toBe(true);
      if (op.parameters?.some((p) => p.in === 'path')) expect(has(414), `${key} 414`).toBe(true);
    }
  });
});
