import { z } from 'zod';
import { parseSize } from './container-spec.js';
import { TOOL_PATTERN, toolPatternProblem } from './tool-pattern.js';

/**
 * Sandbox policy, version 1. One YAML document per policy; presets ship in `policies/`.
 * This schema is the only source of truth: types come from it and `policies/policy.schema.json`
 * is generated from it (`npm run schema`; a test fails when the file is stale).
 */

const HOST_PATTERN = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:(\*|\d{1,5}))?$|^\*(:(\*|\d{1,5}))?$/i;

export const hostPatternSchema = z
  .string()
  .refine((v) => HOST_PATTERN.test(v), {
    error: (i) =>
      `'${String(i.input)}' is not a host pattern: use a name (api.example.com), a wildcard suffix (*.example.com), optionally with :port or :*`,
  })
  .refine((v) => validPort(v), { error: (i) => `'${String(i.input)}' has a port outside 1-65535` })
  .describe('host, *.suffix or *, with an optional :port (default 443) or :* for any port');

function validPort(pattern: string): boolean {
  const port = pattern.split(':')[1];
  if (port === undefined || port === '*') return true;
  const n = Number(port);
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

const absolutePath = z.string().refine((v) => v.startsWith('/') || v.startsWith('~'), {
  error: (i) => `'${String(i.input)}' must be an absolute path (or start with ~)`,
});

export const mountSchema = z
  .object({
    source: absolutePath.describe('Host path'),
    target: z
      .string()
      .refine((v) => v.startsWith('/'), { error: 'target must be an absolute path inside the container' })
      .optional()
      .describe('Path inside the container; defaults to the same path as on the host'),
    mode: z.enum(['ro', 'rw']).default('ro'),
  })
  .strict();

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envName = z.string().refine((v) => ENV_NAME.test(v), { error: (i) => `'${String(i.input)}' is not a variable name` });

/**
 * Names the sandbox sets itself (compile.ts containerEnv can only set these and the credential names: its
 * fixed values are typed by this list); a policy may neither pass nor set them. CLAUDE_CONFIG_DIR, for one,
 * would move claude's settings back onto the persistent session volume.
 */
export const RESERVED_ENV = [
  'HOME',
  'PATH',
  'USER',
  'CLAUDE_CONFIG_DIR',
  'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC',
  'DISABLE_AUTOUPDATER',
  'AGENT_DISPATCH_DEPTH',
  'ANTHROPIC_BASE_URL',
  'HTTPS_PROXY',
  'HTTP_PROXY',
  'NO_PROXY',
  'https_proxy',
  'http_proxy',
  'no_proxy',
  'AGENT_DISPATCH_GATEWAY_SOCKET',
  'AGENT_DISPATCH_GATEWAY_TOKEN',
  'AGENT_DISPATCH_BRIDGE_PORT',
] as const;

/** Credential variables only ever enter a container through `credentials: env`. */
export const CREDENTIAL_ENV = ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'CLAUDE_CODE_OAUTH_TOKEN'] as const;

/**
 * The credential the server holds, in claude's own order of precedence: the egress gateway adds it, and under
 * `credentials: inject` the container gets a placeholder in the same variable, so claude speaks the same auth
 * scheme (an OAuth token also needs claude's OAuth headers).
 */
export function serverCredentialName(env: Readonly<Record<string, string | undefined>>): (typeof CREDENTIAL_ENV)[number] | undefined {
  for (const name of ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'CLAUDE_CODE_OAUTH_TOKEN'] as const) if (env[name]) return name;
  return undefined;
}

/** Every name the sandbox itself may put in a container's environment. */
export type SandboxEnvName = (typeof RESERVED_ENV)[number] | (typeof CREDENTIAL_ENV)[number];

const notReserved = (v: string) => !([...RESERVED_ENV, ...CREDENTIAL_ENV] as readonly string[]).includes(v);
const reservedMessage = (i: { input: unknown }) =>
  (CREDENTIAL_ENV as readonly string[]).includes(String(i.input))
    ? `${String(i.input)} is the Anthropic credential: leave it out of env and set 'credentials: env' if it must enter the container`
    : `${String(i.input)} is set by the sandbox itself and cannot be passed or set by a policy`;

export const envSchema = z
  .object({
    pass: z.array(envName.refine(notReserved, { error: reservedMessage })).default([]).describe('Names copied from the server environment'),
    set: z
      .record(envName.refine(notReserved, { error: reservedMessage }), z.string())
      .default({})
      .describe('Fixed values set in the container'),
  })
  .strict();

export const PERMISSION_MODES = ['plan', 'dontAsk', 'default', 'acceptEdits', 'auto', 'bypassPermissions'] as const;
export type PermissionMode = (typeof PERMISSION_MODES)[number];

/** One tool per entry (see TOOL_PATTERN): claude would split `Read(*) Bash` into two tools. */
const toolPattern = z
  .string()
  .regex(TOOL_PATTERN, { error: (i) => toolPatternProblem(String(i.input)) ?? 'not a tool pattern' })
  .describe('One tool name, optionally with one parenthesised specifier: Read, mcp__server__tool, Bash(git diff:*)');

/** An MCP server name as a `.mcp.json` key; one starting with `-` could never be told from a flag. */
const MCP_SERVER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Which of the repo's `.mcp.json` servers claude may start. Each is a command from the repo that runs in the
 * container when claude starts, before any tool rule applies: `none` (the default) starts none, `repo` every
 * one, a list only those names (the repo still decides what command a listed name runs).
 */
export const mcpServersSchema = z
  .union([
    z.enum(['none', 'repo']),
    z.array(z.string().regex(MCP_SERVER_NAME, { error: (i) => `'${String(i.input)}' is not an MCP server name (letters, digits, _ . -)` })),
  ])
  .describe("The repo's .mcp.json servers claude may start: none (default), repo (all), or a list of server names");

export const toolsSchema = z
  .object({
    permission_mode: z.enum(PERMISSION_MODES).default('default').describe('The most permissive mode an agent may use'),
    allow: z
      .array(toolPattern)
      .nullable()
      .default(null)
      .describe('Tools an agent may pre-approve (null = no limit); agent allowed_tools are narrowed to this'),
    deny: z.array(toolPattern).default([]).describe('Tools removed always; enforced by managed settings the repo cannot override'),
    mcp_servers: mcpServersSchema.default('none'),
  })
  .strict();

const MEMORY = /^\d+(\.\d+)?[kmg]?$/i;
/** Docker refuses a memory limit under 6 MiB; 0 would mean no limit at all. */
const MIN_MEMORY = 6 * 1024 ** 2;
/** 0 would mean an unlimited tmpfs (bounded only by host memory). */
const MIN_TMP_SIZE = 1024 ** 2;

/** At least `min` bytes; a malformed size is left to the format check. */
function atLeast(min: number): (v: string) => boolean {
  return (v) => !MEMORY.test(v) || parseSize(v) >= min;
}

export const resourcesSchema = z
  .object({
    memory: z
      .string()
      .refine((v) => MEMORY.test(v), { error: "memory is a size such as '2g' or '512m'" })
      .refine(atLeast(MIN_MEMORY), { error: (i) => `memory must be at least 6m, Docker's minimum (got '${String(i.input)}'; 0 would mean no memory limit at all)` })
      .default('2g'),
    cpus: z.number().positive().max(64).default(1),
    pids: z.number().int().min(16).max(32768).default(512),
    nofile: z.number().int().min(64).max(1_048_576).default(4096).describe('Open-file limit (ulimit -n)'),
    tmp_size: z
      .string()
      .refine((v) => MEMORY.test(v), { error: "tmp_size is a size such as '256m'" })
      .refine(atLeast(MIN_TMP_SIZE), { error: (i) => `tmp_size must be at least 1m (got '${String(i.input)}'; 0 would make /tmp and $HOME tmpfs mounts with no size limit)` })
      .default('256m')
      .describe('Size of each tmpfs (/tmp, $HOME)'),
    timeout: z.number().int().min(10).max(7200).default(3600).describe('Upper bound on any dispatch wall-clock time, seconds'),
    max_file_size: z
      .string()
      .refine((v) => MEMORY.test(v), { error: "max_file_size is a size such as '1g'" })
      .refine(atLeast(MIN_TMP_SIZE), { error: (i) => `max_file_size must be at least 1m (got '${String(i.input)}')` })
      .default('1g')
      .describe('Largest file any process in the container may write (ulimit -f): bounds what one file adds to the repo, the session volume or a tmpfs'),
  })
  .strict();

export const networkSchema = z
  .object({
    mode: z.enum(['gateway', 'open']).default('gateway').describe('gateway: no route but the egress gateway; open: plain bridge network'),
    allow: z.array(hostPatternSchema).default([]).describe('Destinations the gateway may tunnel to, besides the Anthropic API'),
  })
  .strict();

export const policySchema = z
  .object({
    version: z.literal(1, { error: 'version must be 1 (the only policy format so far)' }),
    description: z.string().default(''),
    repo: z.enum(['ro', 'rw', 'overlay']).default('ro').describe('How the agent directory is mounted'),
    repo_git: z
      .enum(['protected', 'writable'])
      .default('protected')
      .describe(
        "With repo: rw, whether the agent may write the repo's .git (config, hooks: commands your next git runs on the host). protected: mounted read-only",
      ),
    mounts: z.array(mountSchema).default([]).describe('Extra host paths; never the Docker socket, /, $HOME or system dirs'),
    env: envSchema.default({ pass: [], set: {} }),
    credentials: z.enum(['inject', 'env']).default('inject').describe('inject: the gateway adds the key; env: the key enters the container'),
    network: networkSchema.default({ mode: 'gateway', allow: [] }),
    tools: toolsSchema.default({ permission_mode: 'default', allow: null, deny: [], mcp_servers: 'none' }),
    resources: resourcesSchema.default(() => resourcesSchema.parse({})),
    image: z.string().min(1).default('agent-dispatch/agent:latest').describe('Local image the agent container runs'),
  })
  .strict();

export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;
export type Mount = z.output<typeof mountSchema>;

/** The keys valid at a path of a policy document, for "did you mean" suggestions. */
export function policyKeysAt(path: PropertyKey[]): string[] {
  const shapes: Record<string, { shape: Record<string, unknown> }> = {
    '': policySchema,
    env: envSchema,
    network: networkSchema,
    tools: toolsSchema,
    resources: resourcesSchema,
    mounts: mountSchema,
  };
  const key = typeof path[0] === 'string' ? path[0] : '';
  const shape = path.length === 0 ? shapes[''] : shapes[key];
  return shape ? Object.keys(shape.shape) : [];
}
