import { buildAgentImage, DEFAULT_AGENT_IMAGE, DEFAULT_BASE_IMAGE, DEFAULT_CLAUDE_VERSION } from '../../sandbox/image.js';
import { buildGatewayImage, DEFAULT_GATEWAY_IMAGE } from '../../sandbox/gateway-image.js';
import { list, parse, str, UsageError } from '../args.js';
import { err, out, style } from '../output.js';

const BUILD_USAGE = '[--base IMAGE] [--claude-binary PATH] [--claude-version V] [--tag T] [--gateway-tag T] [--label K=V]... [--no-cache] [--quiet]';

export async function imageCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'build') return imageBuild(rest);
  throw new UsageError(`usage: agent-dispatch image build ${BUILD_USAGE}`);
}

/** Build the agent image from a local base; progress on stderr, the result on stdout. */
async function imageBuild(argv: string[]): Promise<number> {
  const p = parse(
    'image build',
    argv,
    {
      base: { type: 'string' },
      'claude-binary': { type: 'string' },
      'claude-version': { type: 'string' },
      tag: { type: 'string', short: 't' },
      'gateway-tag': { type: 'string' },
      label: { type: 'string', multiple: true },
      'no-cache': { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    },
    { min: 0, max: 0, names: BUILD_USAGE },
  );
  const labels: Record<string, string> = {};
  for (const label of list(p, 'label')) {
    const eq = label.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label must be KEY=VALUE (got '${label}')`);
    labels[label.slice(0, eq)] = label.slice(eq + 1);
  }
  const base = str(p, 'base') ?? DEFAULT_BASE_IMAGE;
  const tag = str(p, 'tag') ?? DEFAULT_AGENT_IMAGE;
  const claudeBinary = str(p, 'claude-binary');
  const quiet = p.values['quiet'] === true;
  if (!quiet) {
    const source = claudeBinary ? `claude binary ${claudeBinary}` : `@anthropic-ai/claude-code@${str(p, 'claude-version') ?? DEFAULT_CLAUDE_VERSION} from npm`;
    err(style.bold(`Building ${tag} from ${base} with ${source}`, process.stderr));
  }
  const started = Date.now();
  const built = await buildAgentImage({
    base,
    tag,
    labels,
    noCache: p.values['no-cache'] === true,
    ...(claudeBinary !== undefined ? { claudeBinary } : {}),
    ...(str(p, 'claude-version') !== undefined ? { claudeVersion: str(p, 'claude-version')! } : {}),
    ...(quiet ? {} : { onProgress: (line: string) => err(line) }),
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  out(`Built ${built.tag} (${shortId(built.imageId)}, Claude Code ${built.claudeVersion}) in ${seconds}s`);
  const gatewayTag = str(p, 'gateway-tag') ?? DEFAULT_GATEWAY_IMAGE;
  if (!quiet) err(style.bold(`Building the egress gateway image ${gatewayTag} from ${base}`, process.stderr));
  const gatewayStarted = Date.now();
  const gateway = await buildGatewayImage({
    base,
    tag: gatewayTag,
    labels,
    noCache: p.values['no-cache'] === true,
    ...(quiet ? {} : { onProgress: (line: string) => err(line) }),
  });
  out(`Built ${gateway.tag} (${shortId(gateway.imageId)}) in ${((Date.now() - gatewayStarted) / 1000).toFixed(1)}s`);
  return 0;
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
