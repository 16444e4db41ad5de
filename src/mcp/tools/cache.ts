import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { requireAdmin } from '../../core/access.js';
import { guarded, jsonResult } from '../envelope.js';
import type { ServerContext } from '../context.js';

const DISABLED = { enabled: false, message: 'Cache is disabled in settings' };

export function registerCacheTools(server: McpServer, ctx: ServerContext): void {
  server.registerTool(
    'cache_stats',
    { description: 'Result cache statistics: size, max_size, hits, misses, evictions, hit_rate, ttl (expired entries are dropped first).', inputSchema: {} },
    () =>
      guarded('cache_stats', () => {
        const cache = ctx.cacheFor(ctx.config());
        if (!cache) return jsonResult(DISABLED);
        cache.evictExpired();
        return jsonResult(cache.stats());
      }),
  );

  server.registerTool(
    'cache_clear',
    { description: 'Empty the result cache and reset its counters.', inputSchema: {} },
    () =>
      guarded('cache_clear', () => {
        const config = ctx.config();
        requireAdmin(config, ctx.caller, 'cache_clear');
        const cache = ctx.cacheFor(config);
        return jsonResult(cache ? { cleared: cache.clear() } : DISABLED);
      }),
  );
}
