import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Sandbox } from '../dispatch/dispatcher.js';
import { VERSION } from '../version.js';
import { ServerContext, type ContextOptions } from './context.js';
import { errorResult } from './envelope.js';
import { registerAgentReadTools } from './tools/agents-read.js';
import { registerAgentWriteTools } from './tools/agents-write.js';
import { registerCacheTools } from './tools/cache.js';
import { registerDispatchTools } from './tools/dispatch.js';
import { registerFanOutTools } from './tools/fan-out.js';
import { registerJobTools } from './tools/jobs.js';
import { registerGroupTools } from './tools/groups.js';

export const INSTRUCTIONS = `This server lets you delegate tasks to Claude Code agents in other project directories. Each agent has its own MCP servers, CLAUDE.md and tools. Every dispatch runs in a fresh, hardened Docker container under the agent's sandbox policy (what it may read and write, which environment and network it gets, which tools it may use); the container is removed afterwards.

WHEN TO DISPATCH: when a task needs another project's files, tools or context (its database, container logs, internal APIs, code you do not have). Do not dispatch what you can do yourself. Tasks must be self-contained: the agent sees only what you send.

HOW TO USE:
1. list_agents() — the configured agents: directory, description, health, detected stack, and the policy each runs under (policy_summary).
2. inspect_agent(name) — cheap detailed lookup (no container): MCP servers, stack, CLAUDE.md and README previews, policy, and its last dispatch (egress decisions included).
3. dispatch(agent, task) — one-shot; clean successes are cached (the answer says cached: true).
4. dispatch_session(agent, task, session_id?) — multi-turn: pass the session_id of an earlier result to continue that conversation; empty starts a new one.
5. dispatch_parallel(dispatches, aggregate?) — several dispatches at once; dispatches is a JSON string of an array of {agent, task, context?, caller?, goal?, response_format?, return_ref?, summary_chars?, timeout_seconds?, group?}, all validated before any starts; aggregate="<agent>" has that agent synthesise the results.
6. dispatch_stream(agent, task) — like dispatch, with live progress notifications.
7. dispatch_dialogue(requester, responder, topic, max_rounds?) — two agents talk until one ends with [RESOLVED] (max_rounds 1-10, default 3).
8. Always pass caller= (your project name) and goal= (why you need this): the agent answers better, and both go into the audit log. response_format="json" returns the answer parsed as parsed_result.

GROUPS: list_groups(), inspect_group(name); dispatch(agent, task, group=name) (the agent must be a member) prepends the group's shared_context to your context. Works on dispatch and per item in dispatch_parallel.

TIMEOUTS: pass timeout_seconds= per call (10-7200, capped by the policy). A timed-out result has error_type "timeout" and a session_id: resume with dispatch_session(agent, 'Continue where you left off', session_id=<that session_id>). The transcript survives the container, so the agent picks up where it stopped.

PERMISSIONS: a result may carry denied_tools and a hint. Grant with update_agent(name, allowed_tools=...) or update_agent(name, permission_mode=...) and dispatch again; the agent's policy still caps both (a tool or mode it does not allow is narrowed away: policy changes are the user's call).

SANDBOX: each dispatch starts from a clean container, so nothing an agent writes outside its repo persists. With repo: overlay the agent edits a private copy and the result carries its changes as a git patch (patch, patch_file); the user's repo is untouched until someone applies it. Network goes only through an egress gateway that allows the policy's hosts: refused connections show in the result's egress field (denied, denied_hosts) — a failure there is the policy, not a bug; ask the user to allow the host rather than retrying.

ASYNC DISPATCH: for long tasks, dispatch_async(agent, task, ...) returns a job_id at once; dispatch_status(job_id) shows its state and a live progress tail without blocking; dispatch_wait(job_id, timeout_seconds?) blocks until it ends (or returns timed_out_waiting: true — the job keeps running, wait again); dispatch_cancel(job_id) stops it (a running job's container is killed); dispatch_jobs(status?, limit?) lists jobs, newest first; dispatch_gc(max_age_days?) deletes finished jobs older than that.

SAVING CONTEXT: dispatch(..., return_ref=true, summary_chars=500) stores the full result and returns a ref, its size and a summary; fetch_result(ref, max_chars?) reads it when you need it. Refs and job_ids are the same 32-hex ids.

MANAGING AGENTS: add_agent(name, directory, description?, model?, policy?, ...), update_agent(name, ...) ('none' clears a field), remove_agent(name); cache_stats() / cache_clear(). Over MCP an agent's policy can only be narrowed (or set to one the user listed in settings.mcp_policy_changes.allow); every policy change is audited. To widen a sandbox, ask the user: 'agent-dispatch update <name> --policy <policy>'.

Every failure is {"error", "hint"}: the hint says what to do next.`;

/** What an HTTP user of the shared service is told on top: whose agents and jobs they see, and who manages agents. */
export const SHARED_SERVICE_INSTRUCTIONS = `

SHARED SERVICE: you are connected to a dispatch service shared by several users, as the user your token names. list_agents shows only the agents granted to you; jobs and refs are yours alone (another user's id answers "not found"). Agents and policies are managed by the service's admins (settings.admins): add_agent, update_agent, remove_agent and cache_clear answer FORBIDDEN to anyone else — ask an admin to grant an agent or change it.`;

export interface CreatedServer {
  server: McpServer;
  context: ServerContext;
}

/**
 * The MCP server with its tools; the transport is the caller's choice (stdio for `serve`, in-memory in tests).
 * `sandbox` replaces the Docker runner for tests of the tool layer; `serve` always uses the real one.
 * `options.core` shares one core between sessions (HTTP); `options.caller` says who this session serves.
 */
export function createServer(env: NodeJS.ProcessEnv = process.env, sandbox?: Sandbox, options: ContextOptions = {}): CreatedServer {
  const instructions = options.caller?.kind === 'user' ? INSTRUCTIONS + SHARED_SERVICE_INSTRUCTIONS : INSTRUCTIONS;
  const server = new McpServer({ name: 'agent-dispatch', version: VERSION }, { instructions, capabilities: { logging: {} } });
  // The SDK answers arguments that fail the input schema (and unknown tools) through a private
  // createToolError; route that through the documented envelope so every failure has one shape.
  (server as unknown as { createToolError: (message: string) => CallToolResult }).createToolError = (message: string) =>
    errorResult({ error: message, hint: 'Check the tool name and its parameters (tools/list shows both), then retry.' });
  const context = new ServerContext(env, sandbox, options);
  registerAgentReadTools(server, context);
  registerAgentWriteTools(server, context);
  registerGroupTools(server, context);
  registerCacheTools(server, context);
  registerDispatchTools(server, context);
  registerFanOutTools(server, context);
  registerJobTools(server, context);
  return { server, context };
}
