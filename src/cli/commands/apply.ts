import { configPath, jobsDir } from '../../config/paths.js';
import { readConfig } from '../../config/store.js';
import { isValidJobId, JobStore } from '../../dispatch/job-store.js';
import { applyToRepo, checkPatch, readPatchFile, type PatchEntry } from '../../dispatch/overlay-apply.js';
import { AppError } from '../../errors.js';
import { parse } from '../args.js';
import { out, style, terminalSafe } from '../output.js';
import type { CommandSpec } from '../spec.js';

export const applySpec: CommandSpec = {
  name: 'apply',
  summary: "Apply the patch a repo: overlay dispatch returned to the agent's repo, after a summary",
  args: [{ name: 'REF', description: 'the job id or ref (32 hex characters) of the dispatch' }],
  options: {
    check: { type: 'boolean', description: 'only check that the patch applies cleanly; change nothing' },
  },
  notes: [
    'Refused (exit 1, nothing changed): a patch that touches .git, leaves the repo (../, absolute paths, a path',
    'through a symlink, a symlink pointing outside), or does not apply (already applied, or the files changed).',
  ],
};

const MARK: Record<PatchEntry['change'], string> = { added: 'A', modified: 'M', deleted: 'D' };

/** `agent-dispatch apply REF [--check]`: the patch of a dispatch, summarised, checked, then applied. */
export async function applyCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const p = parse(applySpec, argv);
  const ref = p.positionals[0]!;
  const shown = terminalSafe(ref.slice(0, 80));
  if (!isValidJobId(ref)) throw new AppError('INVALID_INPUT', `Invalid ref: '${shown}' (expected 32 hex characters)`, { hint: "Run 'agent-dispatch jobs' to list the jobs and refs." });
  const check = p.values['check'] === true;
  const record = new JobStore(jobsDir(env)).get(ref);
  if (!record) throw new AppError('JOB_NOT_FOUND', `No job or ref ${ref} on this machine.`, { hint: "Run 'agent-dispatch jobs' to list them." });
  const result = record.result;
  const patch = result?.patch_file ? readPatchFile(result.patch_file) : result?.patch && !result.patch_truncated ? Buffer.from(result.patch, 'utf8') : undefined;
  if (!patch) {
    throw new AppError('JOB_NOT_FOUND', `Job ${ref} has no patch: ${result ? 'the agent changed nothing, or its policy is not repo: overlay' : 'it has not finished'}.`, {
      hint: result?.patch_truncated ? 'Only a cut inline patch was kept; its patch file is gone.' : "See 'agent-dispatch job ID'.",
    });
  }
  const agent = readConfig(configPath(env)).agents[record.agent];
  if (!agent) throw new AppError('AGENT_NOT_FOUND', `The agent '${terminalSafe(record.agent)}' of job ${ref} is no longer configured.`, { hint: 'Re-add it, or apply the patch file by hand with git apply.' });
  const repo = agent.directory;
  const entries = await checkPatch(patch, repo);
  out(`Patch of ${ref} (agent ${style.bold(terminalSafe(record.agent))}) for ${terminalSafe(repo)}:`);
  for (const e of entries) out(`  ${MARK[e.change]} ${terminalSafe(e.path)}${describe(e)}`);
  out(`  ${count(entries, 'added')} added, ${count(entries, 'modified')} modified, ${count(entries, 'deleted')} deleted${binaries(entries)}`);
  await applyToRepo(patch, repo, check);
  out(check ? style.green('The patch applies cleanly (--check: nothing was changed).') : style.green(`Applied to ${terminalSafe(repo)}.`));
  return 0;
}

function describe(e: PatchEntry): string {
  if (e.symlinkTarget !== undefined) return ` (symlink -> ${terminalSafe(e.symlinkTarget)})`;
  return e.binary ? ' (binary)' : '';
}

function count(entries: PatchEntry[], change: PatchEntry['change']): number {
  return entries.filter((e) => e.change === change).length;
}

function binaries(entries: PatchEntry[]): string {
  const n = entries.filter((e) => e.binary).length;
  return n > 0 ? ` (${n} binary)` : '';
}
