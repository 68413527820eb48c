// The baseline: bare Fastify hello-world, no plugins, no logging. Every figure is a ratio to this.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
const port = Number(process.argv[2] ?? 0);
await app.listen({ host: '127.0.0.1', port });
const addr = app.server.address();
process.send?.({ port: typeof addr === 'object' && addr ? addr.port : port });
