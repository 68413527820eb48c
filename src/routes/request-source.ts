// What the audit log and the administrative functions need to know about an HTTP caller.
import type { FastifyRequest } from 'fastify';
import type { AuditSource } from '../security/audit.js';
import { scopeOf, type Actor } from '../security/users.js';
import { clientAddress } from '../security/client-address.js';

/** Actor, IP, user agent and request id of a request; `actorId` defaults to the authenticated user. */
export function auditSource(request: FastifyRequest, actorId: number | null = request.auth?.user.id ?? null): AuditSource {
  const ua = request.headers['user-agent'];
  return { actorId, ip: clientAddress(request.ip), userAgent: typeof ua === 'string' ? ua : null, requestId: request.id };
}

/** The authenticated caller as an administrative actor (with their user scope). Only behind requireAuth. */
export function actorOf(request: FastifyRequest): Actor {
  return { ...auditSource(request), scope: scopeOf(request.auth!.user) };
}
