import { AppError, describeError } from '../errors.js';
import { mcpPolicyChanges, type Settings } from '../config/schema.js';
import { appendAudit, AUDIT_FILE, type ConfigChangeRecord } from '../dispatch/audit.js';
import { describePolicyProblem, isPolicyPath, loadPolicy, type PolicyLoad } from '../policy/load.js';
import { policyWidenings, widenedAxes } from '../policy/widening.js';
import { logger } from '../log.js';

const log = logger('policy-gate');

/** The policy every new agent gets; what add_agent's choice is compared with. */
const BASELINE = 'default';

export interface McpPolicyChange {
  tool: ConfigChangeRecord['tool'];
  agent: string;
  /** The agent's policy ref now; undefined for add_agent. */
  from?: string | undefined;
  to: string;
  /** The HTTP user asking; absent for the local user. */
  user?: string | undefined;
}

interface Verdict {
  accepted: boolean;
  reason: string;
  widened?: string[];
  hashes: { from_hash?: string; to_hash?: string };
}

/**
 * The gate on a policy change asked for over MCP (settings.mcp_policy_changes): decides, appends a
 * `config-change` audit record either way, and throws POLICY_CHANGE_REFUSED when refused. Runs under the config
 * lock, after the policy was found valid for the agent's directory, before the config is saved. An accepted
 * change whose record cannot be written is refused too: no policy change over MCP goes unrecorded.
 */
export function enforceMcpPolicyChange(change: McpPolicyChange, settings: Settings, configDir: string): void {
  const { mode, allow } = mcpPolicyChanges(settings);
  const verdict = judge(change, mode, allow, configDir);
  const record: ConfigChangeRecord = {
    kind: 'config-change',
    time: new Date().toISOString(),
    ...(change.user ? { user: change.user } : {}),
    agent: change.agent,
    via: 'mcp',
    tool: change.tool,
    policy: { ...(change.from !== undefined ? { from: change.from } : {}), to: change.to, ...verdict.hashes },
    mode,
    outcome: verdict.accepted ? 'accepted' : 'refused',
    reason: verdict.reason,
    ...(verdict.widened ? { widened: verdict.widened } : {}),
  };
  try {
    appendAudit(configDir, record);
  } catch (error) {
    if (verdict.accepted) {
      throw new AppError('CONFIG_WRITE_FAILED', `could not record the policy change in ${configDir}/${AUDIT_FILE}: ${describeError(error)}`, {
        hint: 'Nothing was changed: a policy change over MCP is only made once it is in the audit log. Check free space and permissions on the config directory.',
      });
    }
    log.error('could not record a refused policy change', { error: describeError(error), agent: change.agent });
  }
  if (verdict.accepted) return;
  const what = change.from === undefined ? `add agent '${change.agent}' with policy '${change.to}'` : `change agent '${change.agent}' from policy '${change.from}' to '${change.to}'`;
  const cli = change.from === undefined ? `agent-dispatch add ${change.agent} <directory> --policy ${change.to}` : `agent-dispatch update ${change.agent} --policy ${change.to}`;
  throw new AppError('POLICY_CHANGE_REFUSED', `${change.tool} may not ${what} over MCP: ${verdict.reason}.`, {
    hint:
      `Widening an agent's sandbox is the user's decision, not the calling model's: ask the user to run '${cli}' or edit agents.yaml ` +
      `(the CLI is not limited), or to list '${change.to}' in settings.mcp_policy_changes.allow. A policy no wider than the current one is accepted.`,
  });
}

function judge(change: McpPolicyChange, mode: string, allow: readonly string[], configDir: string): Verdict {
  const target = loadPolicy(change.to, configDir);
  const hashes: Verdict['hashes'] = {};
  if (target.kind === 'ok') hashes.to_hash = target.hash;
  const current = change.from === undefined ? undefined : loadPolicy(change.from, configDir);
  if (current?.kind === 'ok') hashes.from_hash = current.hash;

  if (mode === 'any') return { accepted: true, reason: "settings.mcp_policy_changes.mode is 'any'", hashes };
  if (change.from === undefined ? change.to === BASELINE : change.to === change.from) {
    return { accepted: true, reason: change.from === undefined ? 'the default policy' : 'the policy is unchanged', hashes };
  }
  if (mode === 'none') return { accepted: false, reason: "settings.mcp_policy_changes.mode is 'none', so policies are not changed over MCP", hashes };
  if (allow.includes(change.to)) return { accepted: true, reason: 'listed in settings.mcp_policy_changes.allow', hashes };
  if (isPolicyPath(change.to)) {
    return {
      accepted: false,
      reason: 'a policy file path is only accepted when listed in settings.mcp_policy_changes.allow (the file could be rewritten after this check); name a preset or a policy in the config directory\'s policies/ instead',
      hashes,
    };
  }
  const baseRef = change.from ?? BASELINE;
  const base: PolicyLoad = current ?? loadPolicy(BASELINE, configDir);
  if (base.kind !== 'ok') return { accepted: false, reason: `the current policy '${baseRef}' does not load, so no change can be shown to be narrower (${describePolicyProblem(base)})`, hashes };
  if (target.kind !== 'ok') return { accepted: false, reason: describePolicyProblem(target), hashes };
  const widenings = policyWidenings(base.policy, target.policy);
  if (widenings.length === 0) return { accepted: true, reason: `no wider than '${baseRef}' on any axis`, hashes };
  const axes = widenedAxes(widenings);
  return {
    accepted: false,
    reason: `'${change.to}' is wider than '${baseRef}' on ${axes.join(', ')} (${widenings.map((w) => w.detail).join('; ')})`,
    widened: axes,
    hashes,
  };
}
