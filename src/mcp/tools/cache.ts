import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { isAdmin, requireAdmin } from '../../core/access.js';
import { callerUser } from '../../core/caller.js';
import { guarded, jsonResult } from '../envelope.js';
import type { ServerContext } from '../context.js';

const DISABLED = { enabled: false, message: 'Cache is disabled in settings' };

export function registerCacheTools(server: McpServer, ctx: ServerContext): void {
  server.registerTool(
    'cache_stats',
    { description: 'Result cache statistics: size, max_size, hits, misses, evictions, hit_rate, ttl (expired entries are dropped first). On a shared service a user who is not an admin sees the counts of their own entries and lookups.', inputSchema: {} },
    () =>
      guarded('cache_stats', () => {
        const config = ctx.config();
        const cache = ctx.cacheFor(config);
        if (!cache) return jsonResult(DISABLED);
        cache.evictExpired();
        // An admin (and the local user) sees the whole cache; any other user only their own part of it.
        return jsonResult(cache.stats(isAdmin(config, ctx.caller) ? undefined : callerUser(ctx.caller)));
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
