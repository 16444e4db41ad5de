export { AppError, type ErrorCode } from './errors.js';
export * from './config/index.js';
export * from './policy/index.js';
export { createServer, INSTRUCTIONS } from './mcp/server.js';
export { DispatchCache } from './dispatch/cache.js';
export { main } from './cli/main.js';
