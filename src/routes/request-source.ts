// What the audit log and the administrative functions need to know about an HTTP caller.
import type { FastifyRequest } from 'fastify';
import type { AuditSource } from '../security/audit.js';
import type { ClientInfo } from '../security/auth.js';
import { scopeOf, type Actor } from '../security/users.js';
import { userPrincipal } from '../security/delegation.js';
import { clientAddress } from '../security/client-address.js';

/** The User-Agent header as sent (the one place it is read), or null. */
export function userAgentOf(request: { headers: Record<string, unknown> }): string | null {
  const ua = request.headers['user-agent'];
  return typeof ua === 'string' ? ua : null;
}

/** IP and user agent of the client that opens a session or a personal token. */
export function clientInfo(request: { ip: string; headers: Record<string, unknown> }): ClientInfo {
  return { ip: clientAddress(request.ip), userAgent: userAgentOf(request) };
}

/** Actor, IP, user agent and request id of a request; `actorId` defaults to the authenticated user. */
export function auditSource(request: FastifyRequest, actorId: number | null = request.auth?.user.id ?? null): AuditSource {
  return { actorId, ...clientInfo(request), requestId: request.id };
}

/**
 * The authenticated caller as an administrative actor: their user scope and their strength for the
 * delegation rule (a personal access token: the intersection of its permissions and the owner's, never
 * unlimited). Only behind requireAuth.
 */
export function actorOf(request: FastifyRequest): Actor {
  const auth = request.auth!;
  return {
    ...auditSource(request),
    scope: scopeOf(auth.user),
    principal: userPrincipal(auth.user, auth.method === 'token' ? 'personal-token' : 'session'),
  };
}
