import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Sandbox } from '../dispatch/dispatcher.js';
import { VERSION } from '../version.js';
import { ServerContext } from './context.js';
import { errorResult } from './envelope.js';
import { registerAgentReadTools } from './tools/agents-read.js';
import { registerAgentWriteTools } from './tools/agents-write.js';
import { registerCacheTools } from './tools/cache.js';
import { registerDispatchTools } from './tools/dispatch.js';
import { registerFanOutTools } from './tools/fan-out.js';
import { registerJobTools } from './tools/jobs.js';
import { registerGroupTools } from './tools/groups.js';

export const INSTRUCTIONS = `This server lets you delegate tasks to Claude Code agents in other project directories. Each agent has its own MCP servers, CLAUDE.md and tools, and every dispatch runs in a fresh, hardened Docker container governed by the agent's sandbox policy (mounts, environment, network, tools, resources).

HOW TO USE:
1. list_agents() — see configured agents, their health and the policy each runs under.
2. inspect_agent(name) — cheap detailed lookup: MCP servers, stack, CLAUDE.md preview, policy.
3. list_groups() / inspect_group(name) — named sets of agents with shared context.

MANAGING AGENTS: add_agent(name, directory, policy?), update_agent(name, ...), remove_agent(name), cache_stats() / cache_clear().
An agent's own permission fields can only narrow its policy; 'agent-dispatch policy check' shows the effective sandbox.`;

export interface CreatedServer {
  server: McpServer;
  context: ServerContext;
}

/**
 * The MCP server with its tools; the transport is the caller's choice (stdio for `serve`, in-memory in tests).
 * `sandbox` replaces the Docker runner for tests of the tool layer; `serve` always uses the real one.
 */
export function createServer(env: NodeJS.ProcessEnv = process.env, sandbox?: Sandbox): CreatedServer {
  const server = new McpServer({ name: 'agent-dispatch', version: VERSION }, { instructions: INSTRUCTIONS, capabilities: { logging: {} } });
  // The SDK answers arguments that fail the input schema (and unknown tools) through a private
  // createToolError; route that through the documented envelope so every failure has one shape.
  (server as unknown as { createToolError: (message: string) => CallToolResult }).createToolError = (message: string) =>
    errorResult({ error: message, hint: 'Check the tool name and its parameters (tools/list shows both), then retry.' });
  const context = new ServerContext(env, sandbox);
  registerAgentReadTools(server, context);
  registerAgentWriteTools(server, context);
  registerGroupTools(server, context);
  registerCacheTools(server, context);
  registerDispatchTools(server, context);
  registerFanOutTools(server, context);
  registerJobTools(server, context);
  return { server, context };
}
