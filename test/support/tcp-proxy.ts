// A TCP proxy in front of PostgreSQL for outage tests (node:net): pass traffic, cut it (every
// connection closed, new ones refused: the database is down), black-hole it (connections accepted,
// every byte swallowed, nothing answered: a dead network path), or delay the answers.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

type Mode = 'open' | 'cut' | 'blackhole';

interface Pair { client: net.Socket; upstream?: net.Socket; holed: boolean }

export class TcpProxy {
  mode: Mode = 'open';
  /** added to every chunk from the database to the client, ms */
  delayMs = 0;
  port = 0;
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();

  constructor(private readonly targetHost: string, private readonly targetPort: number) {}

  /** A PostgreSQL URL like `url` but through this proxy. */
  url(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  async start(): Promise<this> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  private accept(client: net.Socket) {
    const pair: Pair = { client, holed: this.mode === 'blackhole' };
    this.pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => {
      this.pairs.delete(pair);
      pair.upstream?.destroy();
    });
    if (pair.holed) {
      client.on('data', () => undefined);
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (d) => { if (!pair.holed) upstream.write(d); });
    upstream.on('data', (d) => {
      if (pair.holed) return;
      if (this.delayMs) setTimeout(() => { if (!pair.holed) client.write(d); }, this.delayMs);
      else client.write(d);
    });
  }

  /** The database is down: every connection closes, new ones are refused. */
  async cut(): Promise<void> {
    this.mode = 'cut';
    const server = this.server;
    this.server = undefined;
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The path goes silent: open connections stop answering, new ones are accepted and ignored. */
  blackhole(): void {
    this.mode = 'blackhole';
    for (const p of this.pairs) p.holed = true;
  }

  /** Traffic flows again. Black-holed connections lost bytes and are closed; a cut proxy listens again. */
  async restore(): Promise<void> {
    this.mode = 'open';
    for (const p of this.pairs) {
      if (p.holed) {
        p.client.destroy();
        p.upstream?.destroy();
      }
    }
    if (!this.server) await this.start();
  }

  async stop(): Promise<void> {
    await this.cut();
  }
}
