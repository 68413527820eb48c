// Loaded into the benchmarked server (node --import ./bench/probe.ts): answers the bench's IPC
// questions about this process's caches, so the hit rate of a scenario is measured where it happens.
// Nothing here runs in production; the server itself is started exactly as deployed.
import { processCacheStats, resetProcessCacheStats } from '../src/security/cache-protocol.js';

process.channel?.unref();
process.on('message', (m: { q?: string; id?: number }) => {
  if (m?.q === 'cache-stats-reset') resetProcessCacheStats();
  if (m?.q === 'cache-stats' || m?.q === 'cache-stats-reset') process.send?.({ id: m.id, cacheStats: processCacheStats() });
});
