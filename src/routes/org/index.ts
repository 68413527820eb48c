// The organisation module: counties and their departments. Any authenticated user reads; writing needs
// org:write.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { permissionsRequired } from '../guards.js';
import { bodyErrors, errors, IdParam, SECURED } from '../../schemas/common.js';
import { CountyListResponse, CountyResponse, DepartmentListResponse, DepartmentResponse, NameBody } from '../../schemas/admin.js';
import { createCounty, createDepartment, listCounties, listDepartments } from '../../security/org.js';
import { publicCounty, publicDepartment } from '../../security/presenters.js';
import { auditSource } from '../request-source.js';

const TAGS = ['org'];
const canWrite = permissionsRequired('org:write');

export default async function orgRoutes(root: FastifyInstance) {
  root.addHook('onRequest', root.requireAuth);
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;

  app.get('/counties', {
    schema: {
      tags: TAGS, operationId: 'listCounties', summary: 'List counties', security: SECURED,
      response: { 200: CountyListResponse, ...errors(401) },
    },
  }, async () => ({ counties: (await listCounties(ctx)).map(publicCounty) }));

  app.post('/counties', {
    preHandler: canWrite,
    schema: {
      tags: TAGS, operationId: 'createCounty', summary: 'Create a county', security: SECURED,
      description: 'Names are unique, case-insensitively (409 CONFLICT).',
      body: NameBody,
      response: { 201: CountyResponse, ...bodyErrors(401, 403, 409) },
    },
  }, async (request, reply) => {
    const county = await createCounty(ctx, auditSource(request), request.body);
    return reply.code(201).send({ county: publicCounty(county) });
  });

  app.get('/counties/:id/departments', {
    schema: {
      tags: TAGS, operationId: 'listDepartments', summary: 'List the departments of a county', security: SECURED,
      params: IdParam,
      response: { 200: DepartmentListResponse, ...errors(400, 401, 404) },
    },
  }, async (request) => ({ departments: (await listDepartments(ctx, request.params.id)).map(publicDepartment) }));

  app.post('/counties/:id/departments', {
    preHandler: canWrite,
    schema: {
      tags: TAGS, operationId: 'createDepartment', summary: 'Create a department in a county', security: SECURED,
      description: 'Names are unique within a county, case-insensitively (409 CONFLICT). An unknown county is 404.',
      params: IdParam,
      body: NameBody,
      response: { 201: DepartmentResponse, ...bodyErrors(401, 403, 404, 409) },
    },
  }, async (request, reply) => {
    const department = await createDepartment(ctx, auditSource(request), request.params.id, request.body);
    return reply.code(201).send({ department: publicDepartment(department) });
  });
}
