/**
 * Remove the registrations a survey found, then keep asking `claude mcp get` for each name until it answers
 * none or something that may stay: removing one scope can reveal the same name in the next one.
 */
import type { ClaudeMcp, Outcome } from './claude-mcp.js';
import { REMOVABLE_SCOPES, type McpGetResult } from './mcp-output.js';
import { isForeign, registrationOf, SERVER_NAME, type Judge, type Registration } from './mcp-survey.js';
import { where } from './registration-report.js';

/** What Claude Code runs as agent-dispatch afterwards (this program, or none), and what was removed. */
export interface Replaced {
  removed: Registration[];
  current: Registration | undefined;
}

export function removeForeign(mcp: ClaudeMcp, foreign: Registration[], judge: Judge): Outcome<Replaced> {
  const removed: Registration[] = [];
  const remove = (r: Registration & { scope: string }): Outcome<void> => {
    if (!REMOVABLE_SCOPES.includes(r.scope)) return { ok: false, message: `${where(r)} is in the ${r.scope} configuration, which claude mcp remove cannot change; remove it there.` };
    const done = mcp.remove(r.name, r.scope);
    if (!done.ok) return { ok: false, message: `Could not remove ${where(r)}: ${done.message}` };
    removed.push(r);
    return done;
  };

  for (const r of foreign) {
    if (r.scope === undefined) continue; // found again below, by `get`
    const done = remove({ ...r, scope: r.scope });
    if (!done.ok) return done;
  }
  let current: Registration | undefined;
  for (const name of new Set([SERVER_NAME, ...foreign.map((r) => r.name)])) {
    // One removal per scope a name can be in, and one more look to see it gone.
    for (let attempt = 0; ; attempt++) {
      const got = mcp.get(name);
      if (!got.ok) return got;
      const next = got.value && registration(mcp, got.value, judge);
      if (!next || !isForeign(name, next.verdict)) {
        if (name === SERVER_NAME) current = next;
        break;
      }
      if (attempt === REMOVABLE_SCOPES.length) return { ok: false, message: `${where(next)} is still registered after removing it from every scope.` };
      const done = remove({ ...next, scope: next.scope ?? '' });
      if (!done.ok) return done;
    }
  }
  return { ok: true, value: { removed, current } };
}

/** `mcp get` shows no command for a registration without a `type`: then `mcp list` is asked for it. */
function registration(mcp: ClaudeMcp, view: McpGetResult, judge: Judge): Registration {
  const listed = view.command === undefined && view.url === undefined ? mcp.list() : undefined;
  return registrationOf(view, listed?.ok ? listed.value : { entries: [], conflicts: [] }, judge);
}
