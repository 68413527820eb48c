import { describe, expect, it } from 'vitest';
import { envelopeOf, useTestApp } from '../support/helper.js';

describe('the error envelope for every error class', () => {
  const t = useTestApp();

  const post = (payload: string | object, contentType = 'application/json') =>
    t.app.inject({ method: 'POST', url: '/login', payload, headers: { 'content-type': contentType } });

  it('unknown route → 404 NOT_FOUND', async () => {
    const res = await t.app.inject('/no/such/route?x=1');
    expect(res.statusCode).toBe(404);
    expect(envelopeOf(res)).toMatchObject({ error: 'Not Found', code: 'NOT_FOUND' });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  it('schema violation → 400 VALIDATION_FAILED with fields', async () => {
    const res = await post({ email: 'not-an-email', password: '' });
    expect(res.statusCode).toBe(400);
    const body = envelopeOf(res);
    expect(body.code).toBe('VALIDATION_FAILED');
    expect(Object.keys(body.fields!)).toEqual(expect.arrayContaining(['email', 'password']));
  });

  it('missing and unknown fields are named', async () => {
    const body = envelopeOf(await post({ password: 'x', admin: true }));
    expect(body.fields).toMatchObject({ email: ['This field is required'], admin: ['Unknown field'] });
  });

  it('no type coercion for bodies: ["a@b.co"] is not an email, "true" is not a boolean', async () => {
    const body = envelopeOf(await post({ email: ['a@b.co'], password: 'long-enough-1', remember: 'true' }));
    expect(body.code).toBe('VALIDATION_FAILED');
    expect(Object.keys(body.fields!)).toEqual(expect.arrayContaining(['email', 'remember']));
  });

  it('a JSON body that is not an object → 400 VALIDATION_FAILED', async () => {
    for (const payload of ['[]', '"str"', '42', 'null']) {
      const res = await post(payload);
      expect(res.statusCode, payload).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
    }
  });

  it('malformed JSON → 400 INVALID_JSON; empty JSON body → 400 INVALID_JSON', async () => {
    const res = await post('{"email": ');
    expect(res.statusCode).toBe(400);
    expect(envelopeOf(res).code).toBe('INVALID_JSON');
    const empty = await post('');
    expect(empty.statusCode).toBe(400);
    expect(envelopeOf(empty).code).toBe('INVALID_JSON');
  });

  it('prototype pollution attempts are refused', async () => {
    const res = await post('{"__proto__": {"admin": true}, "email": "a@b.co", "password": "x"}');
    expect(res.statusCode).toBe(400);
    expect(envelopeOf(res).statusCode).toBe(400);
  });

  it('a body that is not JSON → 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const res = await post('email=a@b.co', type);
      expect(res.statusCode, type).toBe(415);
      expect(envelopeOf(res).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
  });

  it('a body over 1 MiB → 413 PAYLOAD_TOO_LARGE', async () => {
    const res = await post(JSON.stringify({ email: 'a@b.co', password: 'x'.repeat(1024 * 1024 + 10) }));
    expect(res.statusCode).toBe(413);
    expect(envelopeOf(res).code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('deeply nested JSON → 4xx, never 500', async () => {
    const deep = '{"email":"a@b.co","password":"x","x":' + '['.repeat(5000) + ']'.repeat(5000) + '}';
    const res = await post(deep);
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).toBeLessThan(500);
    envelopeOf(res);
  });

  it('bad path parameter → 400 VALIDATION_FAILED', async () => {
    const login = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'path@example.com', password: 'Quiet-Harbor-93-Lantern' } });
    const token = login.json().access_token;
    const res = await t.app.inject({ method: 'DELETE', url: '/auth/sessions/not-a-uuid', headers: { authorization: `Bearer ${token}` } });
    expect(res.statusCode).toBe(400);
    expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
  });

  it('wrong method on a known path → 404 envelope', async () => {
    const res = await t.app.inject({ method: 'PUT', url: '/login' });
    expect(res.statusCode).toBe(404);
    envelopeOf(res);
  });

  it('security headers are on every response class', async () => {
    for (const res of [await t.app.inject('/health'), await t.app.inject('/nope'), await post('{bad')]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(String(res.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['cache-control']).toBe('no-store');
    }
  });
});

describe('OpenAPI document and docs UI', () => {
  const t = useTestApp();

  it('GET /openapi.json is an OpenAPI 3.1 document with the shared error envelope', async () => {
    const res = await t.app.inject('/openapi.json');
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.schemas.ErrorEnvelope).toBeDefined();
    expect(doc.components.schemas.User).toBeDefined();
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/login'].post.operationId).toBe('login');
  });

  it('every operation has an operationId, a summary, tags and responses for 429/500/503', async () => {
    const doc = (await t.app.inject('/openapi.json')).json();
    for (const [path, item] of Object.entries<Record<string, { operationId?: string; summary?: string; tags?: string[]; responses: Record<string, unknown> }>>(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        expect(op.operationId, `${method} ${path}`).toBeTruthy();
        expect(op.summary, `${method} ${path}`).toBeTruthy();
        expect(op.tags?.length, `${method} ${path}`).toBeGreaterThan(0);
        for (const s of ['429', '500', '503']) expect(op.responses[s], `${method} ${path} ${s}`).toBeDefined();
      }
    }
  });

  it('every request body carries an example', async () => {
    const doc = (await t.app.inject('/openapi.json')).json();
    for (const [path, item] of Object.entries<Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>>(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const media = op.requestBody?.content['application/json'];
        const m = media as Record<string, unknown> | undefined;
        if (m) expect(m.example ?? m.examples, `${method} ${path}`).toBeDefined();
      }
    }
  });

  it('GET /docs serves the interactive UI from local assets', async () => {
    const res = await t.app.inject('/docs/');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).not.toMatch(/https?:\/\/(cdn|unpkg|cdnjs)/);
  });
});
