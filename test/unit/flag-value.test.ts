import { describe, expect, it } from 'vitest';
import { parseAgent, settingsSchema } from '../../src/config/schema.js';
import { AppError } from '../../src/errors.js';
import { claudeFlags } from '../../src/policy/claude-args.js';
import { flagLikeProblem, wordProblem } from '../../src/policy/flag-value.js';

describe('wordProblem: what may follow --model / --permission-mode / --resume', () => {
  it.each(['sonnet', 'opus', 'claude-sonnet-4-5', 'claude-3-5-haiku@20241022', 'plan', 'bypassPermissions', '0b1c2d3e-aaaa-4bbb-8ccc-123456789abc'])('%s is fine', (value) => {
    expect(wordProblem('model', value)).toBeUndefined();
  });

  it.each([
    ['-x', "model '-x' starts with '-' and would be interpreted as a command-line flag by the claude CLI"],
    ['--dangerously-skip-permissions', "model '--dangerously-skip-permissions' starts with '-'"],
    ['son net', 'model "son net" contains whitespace or a control character'],
    [' sonnet', 'model " sonnet" contains whitespace'],
    ['sonnet\n--permission-mode', 'model "sonnet\\n--permission-mode" contains whitespace'],
    ['sonnet\u0000', 'model "sonnet\\u0000" contains whitespace or a control character'],
    ['sonnet\u007f', 'contains whitespace or a control character'],
    ['sonnet\u00a0x', 'contains whitespace'],
  ])('%j is refused', (value, message) => {
    expect(wordProblem('model', value)).toContain(message);
  });

  it('flagLikeProblem (tool entries: spaces allowed inside a specifier) only refuses a leading -', () => {
    expect(flagLikeProblem('allowed tool', 'Bash(git diff *)')).toBeUndefined();
    expect(flagLikeProblem('allowed tool', '-Bash')).toContain("starts with '-'");
  });
});

describe('the dispatch path applies the same rule', () => {
  const settings = settingsSchema.parse({});
  const tools = { permissionMode: 'default' as const, allowedTools: [], disallowedTools: [], notes: [] };

  it.each(['-x', 'son net'])('claudeFlags refuses model %j with the door message behind "Refusing to dispatch"', (model) => {
    const agent = parseAgent({ directory: '/tmp', model });
    let caught: unknown;
    try {
      claudeFlags(agent, settings, tools);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(AppError);
    expect((caught as AppError).message).toBe(`Refusing to dispatch: ${wordProblem('model', model)}.`);
  });

  it('a tool pattern with spaces in its specifier still reaches argv', () => {
    const agent = parseAgent({ directory: '/tmp' });
    expect(claudeFlags(agent, settings, { ...tools, allowedTools: ['Bash(git diff *)'] })).toContain('Bash(git diff *)');
  });
});
