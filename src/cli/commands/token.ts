import { TokenStore, tokensPath } from '../../config/tokens.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../../mcp/http/listen.js';
import { fail, parse, str, UsageError } from '../args.js';
import { out } from '../output.js';
import type { CommandGroup, CommandSpec } from '../spec.js';

const DEFAULT_URL = `http://${DEFAULT_HOST}:${DEFAULT_PORT}/mcp`;

const createSpec: CommandSpec = {
  name: 'token create',
  summary: 'Make a bearer token for a user of serve --http (shown once) and print the claude mcp add line',
  args: [{ name: 'USER', description: 'who the token is for (letters, digits, - and _)' }],
  options: { url: { type: 'string', value: 'URL', description: `the service URL users connect to (default: ${DEFAULT_URL})` } },
  notes: ["Only the token's SHA-256 is stored ($AGENT_DISPATCH_TOKENS_FILE, else auth/tokens.json beside agents.yaml; mode 0600)."],
};
const listSpec: CommandSpec = { name: 'token list', summary: 'List the tokens (id, user, created; never the token)', args: [], options: {} };
const revokeSpec: CommandSpec = {
  name: 'token revoke',
  summary: "Revoke every token of USER, or one token with --id (applies to the service's next request)",
  args: [{ name: 'USER', description: 'the user whose tokens to revoke', optional: true }],
  options: { id: { type: 'string', value: 'ID', description: 'revoke only this token (ids: agent-dispatch token list)' } },
};

export const tokenCommands: CommandGroup = {
  name: 'token',
  summary: 'Bearer tokens for the users of serve --http',
  subcommands: [
    { spec: createSpec, run: tokenCreate },
    { spec: listSpec, run: tokenList },
    { spec: revokeSpec, run: tokenRevoke },
  ],
};

const store = () => new TokenStore(tokensPath());

async function tokenCreate(argv: string[]): Promise<number> {
  const p = parse(createSpec, argv);
  const url = serviceUrl(str(p, 'url') ?? DEFAULT_URL);
  const { token, info } = await store().create(p.positionals[0]!);
  out(`Token ${info.id} for ${info.user} (shown only now; it is stored hashed):`);
  out(`  ${token}`);
  out(`${info.user} registers the service with Claude Code by running:`);
  out(`  claude mcp add --transport http agent-dispatch ${url} --header "Authorization: Bearer ${token}"`);
  return 0;
}

function tokenList(argv: string[]): number {
  parse(listSpec, argv);
  const tokens = store().list();
  if (tokens.length === 0) {
    out('No tokens. Make one with: agent-dispatch token create USER');
    return 0;
  }
  const width = Math.max(4, ...tokens.map((t) => t.user.length));
  out(`${'ID'.padEnd(12)}  ${'USER'.padEnd(width)}  CREATED`);
  for (const t of tokens) out(`${t.id}  ${t.user.padEnd(width)}  ${t.created_at}`);
  return 0;
}

async function tokenRevoke(argv: string[]): Promise<number> {
  const p = parse(revokeSpec, argv);
  const user = p.positionals[0];
  const id = str(p, 'id');
  if ((user === undefined) === (id === undefined)) throw new UsageError('token revoke takes USER or --id ID (one of them).');
  const revoked = user !== undefined ? await store().revoke('user', user) : await store().revoke('id', id!);
  if (revoked.length === 0) fail(user !== undefined ? `${user} has no tokens.` : `No token with id ${id}. 'agent-dispatch token list' shows the ids.`);
  out(`Revoked ${revoked.length} token(s): ${revoked.map((t) => `${t.id} (${t.user})`).join(', ')}.`);
  return 0;
}

/** An http(s) URL; a bare origin gets the /mcp path. */
function serviceUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(`--url ${value} is not a URL; for example ${DEFAULT_URL}.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`--url must be http:// or https:// (got ${value}).`);
  if (url.pathname === '/') url.pathname = '/mcp';
  return url.toString();
}
