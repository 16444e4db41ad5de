import { buildGatewayImage, DEFAULT_GATEWAY_IMAGE } from '../../sandbox/gateway-image.js';
import { buildAgentImage, DEFAULT_AGENT_IMAGE, DEFAULT_BASE_IMAGE, DEFAULT_CLAUDE_VERSION } from '../../sandbox/image.js';
import { list, parse, str, UsageError, type Parsed } from '../args.js';
import { err, out, style } from '../output.js';

const BUILD_USAGE =
  '[agent|gateway] [--base IMAGE] [--claude-binary PATH] [--claude-version V] [--tag T] [--gateway-tag T] [--label K=V]... [--no-cache] [--quiet]';
const TARGETS = ['agent', 'gateway'] as const;

export async function imageCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'build') return imageBuild(rest);
  throw new UsageError(`usage: agent-dispatch image build ${BUILD_USAGE}`);
}

/** Build the agent and the egress gateway image (or the one named) from a local base; progress on stderr, results on stdout. */
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
    { min: 0, max: 1, names: BUILD_USAGE },
  );
  const target = p.positionals[0];
  if (target !== undefined && !(TARGETS as readonly string[]).includes(target)) throw new UsageError(`usage: agent-dispatch image build ${BUILD_USAGE}`);
  const common = {
    base: str(p, 'base') ?? DEFAULT_BASE_IMAGE,
    labels: labelsOf(p),
    noCache: p.values['no-cache'] === true,
    quiet: p.values['quiet'] === true,
  };
  if (target !== 'gateway') await buildAgent(p, common);
  if (target !== 'agent') await buildGateway(str(p, 'gateway-tag') ?? DEFAULT_GATEWAY_IMAGE, common);
  return 0;
}

interface Common {
  base: string;
  labels: Record<string, string>;
  noCache: boolean;
  quiet: boolean;
}

async function buildAgent(p: Parsed, common: Common): Promise<void> {
  const tag = str(p, 'tag') ?? DEFAULT_AGENT_IMAGE;
  const claudeBinary = str(p, 'claude-binary');
  const claudeVersion = str(p, 'claude-version');
  if (!common.quiet) {
    const source = claudeBinary ? `claude binary ${claudeBinary}` : `@anthropic-ai/claude-code@${claudeVersion ?? DEFAULT_CLAUDE_VERSION} from npm`;
    err(style.bold(`Building ${tag} from ${common.base} with ${source}`, process.stderr));
  }
  const started = Date.now();
  const built = await buildAgentImage({
    base: common.base,
    tag,
    labels: common.labels,
    noCache: common.noCache,
    ...(claudeBinary !== undefined ? { claudeBinary } : {}),
    ...(claudeVersion !== undefined ? { claudeVersion } : {}),
    ...progress(common),
  });
  out(`Built ${built.tag} (${shortId(built.imageId)}, Claude Code ${built.claudeVersion}) in ${seconds(started)}s`);
}

async function buildGateway(tag: string, common: Common): Promise<void> {
  if (!common.quiet) err(style.bold(`Building the egress gateway image ${tag} from ${common.base}`, process.stderr));
  const started = Date.now();
  const built = await buildGatewayImage({ base: common.base, tag, labels: common.labels, noCache: common.noCache, ...progress(common) });
  out(`Built ${built.tag} (${shortId(built.imageId)}) in ${seconds(started)}s`);
}

function labelsOf(p: Parsed): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const label of list(p, 'label')) {
    const eq = label.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label must be KEY=VALUE (got '${label}')`);
    labels[label.slice(0, eq)] = label.slice(eq + 1);
  }
  return labels;
}

function progress(common: Common): { onProgress?: (line: string) => void } {
  return common.quiet ? {} : { onProgress: (line: string) => err(line) };
}

function seconds(started: number): string {
  return ((Date.now() - started) / 1000).toFixed(1);
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
