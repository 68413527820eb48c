// What the audit log and the administrative functions need to know about an HTTP caller.
import type { FastifyRequest } from 'fastify';
import type { AuditSource } from '../security/audit.js';
import type { ClientInfo } from '../security/auth.js';
import { scopeOf, type Actor } from '../security/users.js';

/** The User-Agent header as sent (the one place it is read), or null. */
export function userAgentOf(request: { headers: Record<string, unknown> }): string | null {
  const ua = request.headers['user-agent'];
  return typeof ua === 'string' ? ua : null;
}

/** IP and user agent of the client that opens a session or a personal token. */
export function clientInfo(request: { ip: string; headers: Record<string, unknown> }): ClientInfo {
  return { ip: request.ip ?? null, userAgent: userAgentOf(request) };
}

/** Actor, IP, user agent and request id of a request; `actorId` defaults to the authenticated user. */
export function auditSource(request: FastifyRequest, actorId: number | null = request.auth?.user.id ?? null): AuditSource {
  return { actorId, ...clientInfo(request), requestId: request.id };
}

/** The authenticated caller as an administrative actor (with their user scope). Only behind requireAuth. */
export function actorOf(request: FastifyRequest): Actor {
  return { ...auditSource(request), scope: scopeOf(request.auth!.user) };
}
