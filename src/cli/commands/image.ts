import { buildGatewayImage, DEFAULT_GATEWAY_IMAGE } from '../../sandbox/gateway-image.js';
import { buildAgentImage, DEFAULT_AGENT_IMAGE, DEFAULT_BASE_IMAGE, DEFAULT_CLAUDE_VERSION } from '../../sandbox/image.js';
import { list, parse, str, UsageError, type Parsed } from '../args.js';
import { synopsis, type CommandGroup, type CommandSpec } from '../spec.js';
import { err, out, style } from '../output.js';
import { copySpec, imageCopy } from './image-copy.js';

const TARGETS = ['agent', 'gateway'] as const;

const buildSpec: CommandSpec = {
  name: 'image build',
  summary: 'Build the agent and egress gateway images locally from a local base (never pulls)',
  args: [{ name: 'agent|gateway', optional: true, description: 'build only this image (default: both)' }],
  options: {
    base: { type: 'string', value: 'IMAGE', description: `local base image both are built from (default: ${DEFAULT_BASE_IMAGE})` },
    'claude-binary': { type: 'string', value: 'PATH', description: 'copy this native claude binary into the agent image instead of installing from npm' },
    'claude-version': { type: 'string', value: 'V', description: `Claude Code version to install from npm, or the one --claude-binary must report (default: ${DEFAULT_CLAUDE_VERSION})` },
    tag: { type: 'string', short: 't', value: 'T', description: `agent image tag (default: ${DEFAULT_AGENT_IMAGE})` },
    'gateway-tag': { type: 'string', value: 'T', description: `gateway image tag (default: ${DEFAULT_GATEWAY_IMAGE})` },
    label: { type: 'string', multiple: true, value: 'K=V', description: 'label both images' },
    'no-cache': { type: 'boolean', description: 'rebuild every layer' },
    quiet: { type: 'boolean', short: 'q', description: 'no build progress on stderr' },
  },
};

export const imageCommands: CommandGroup = {
  name: 'image',
  summary: 'Images dispatches run in',
  subcommands: [
    { spec: buildSpec, run: imageBuild },
    { spec: copySpec, run: imageCopy },
  ],
};

/** Build the agent and the egress gateway image (or the one named) from a local base; progress on stderr, results on stdout. */
async function imageBuild(argv: string[]): Promise<number> {
  const p = parse(buildSpec, argv);
  const target = p.positionals[0];
  if (target !== undefined && !(TARGETS as readonly string[]).includes(target)) throw new UsageError(`usage: ${synopsis(buildSpec)}`);
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
