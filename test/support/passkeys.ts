// Registers a software-authenticator key through the API (POST /wan-register and its finish).
import type { FastifyInstance } from 'fastify';
import { SoftwareAuthenticator } from './authenticator.js';
import { bearer } from './helper.js';

export const PASSKEY_ORIGIN = 'http://localhost:5173';
export const PASSKEY_ENV = { SECURITY_WAN_RP_ID: 'localhost', SECURITY_WAN_ALLOWED_ORIGINS: PASSKEY_ORIGIN };

export async function registerPasskey(app: FastifyInstance, access: string, name: string, usage: 'first' | 'secondary' = 'first') {
  const key = new SoftwareAuthenticator(PASSKEY_ORIGIN, 'localhost');
  const start = await app.inject({ method: 'POST', url: '/wan-register', payload: { name, usage }, headers: bearer(access) });
  if (start.statusCode !== 200) throw new Error(`wan-register: ${start.statusCode} ${start.body}`);
  const { wan_state, credential_options } = start.json();
  const done = await app.inject({ method: 'POST', url: `/wan-register/${wan_state}`, payload: { credential: key.create(credential_options) }, headers: bearer(access) });
  if (done.statusCode !== 201) throw new Error(`wan-register finish: ${done.statusCode} ${done.body}`);
  return { key, credential: done.json().credential as { id: string; name: string; usage: string } };
}

/** Signs in with a passkey (no identity); returns the response. */
export async function passkeySignin(app: FastifyInstance, key: SoftwareAuthenticator) {
  const o = await app.inject({ method: 'POST', url: '/wan-signin', payload: {} });
  const { wan_state, credential_options } = o.json();
  return app.inject({ method: 'POST', url: `/wan-signin/${wan_state}`, payload: { credential: key.get(credential_options) } });
}
