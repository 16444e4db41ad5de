import { describe, expect, it } from 'vitest';
import { settingsSchema, parseAgent } from '../../src/config/schema.js';
import { claudeCommand, isSessionFlagRejection } from '../../src/dispatch/command.js';
import { AppError } from '../../src/errors.js';
import { claudeFlags } from '../../src/policy/claude-args.js';

const HEAD = ['claude', '-p', '--output-format', 'stream-json', '--verbose'];
const UUID = '0b6a3f0e-8a51-4c59-9d6e-3c1f6a2b7d10';

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a throw');
}

describe('claudeCommand (TestBuildCommand, TestResumableTimeout argv)', () => {
  it('has no prompt in argv: stream-json with --verbose and nothing else', () => {
    expect(claudeCommand({ flags: [] })).toEqual(HEAD);
  });

  it('a fresh session passes --session-id and no --resume', () => {
    const argv = claudeCommand({ flags: [], sessionId: UUID });
    expect(argv).toEqual([...HEAD, '--session-id', UUID]);
    expect(argv).not.toContain('--resume');
  });

  it('a resume passes --resume only', () => {
    expect(claudeCommand({ flags: [], resume: 'abc-123' })).toEqual([...HEAD, '--resume', 'abc-123']);
  });

  it('resume wins over a new session id: never both', () => {
    const argv = claudeCommand({ flags: [], resume: 'abc-123', sessionId: UUID });
    expect(argv).toEqual([...HEAD, '--resume', 'abc-123']);
    expect(argv).not.toContain('--session-id');
  });

  it('empty strings mean "not set"', () => {
    expect(claudeCommand({ flags: [], resume: '', sessionId: '' })).toEqual(HEAD);
    expect(claudeCommand({ flags: [], resume: '', sessionId: UUID })).toEqual([...HEAD, '--session-id', UUID]);
  });

  it('policy flags follow the session flag, in order and untouched', () => {
    const flags = ['--max-budget-usd', '0.5', '--model', 'sonnet', '--allowedTools', 'Read', '--allowedTools', 'Bash(git diff)'];
    expect(claudeCommand({ flags, sessionId: UUID })).toEqual([...HEAD, '--session-id', UUID, ...flags]);
  });

  it('composes with claudeFlags()', () => {
    const agent = parseAgent({ directory: '/srv/api', model: 'sonnet', max_budget_usd: 0.5 });
    const flags = claudeFlags(agent, settingsSchema.parse({}), {
      permissionMode: 'default',
      allowedTools: ['Bash(git diff)'],
      disallowedTools: ['Write'],
      notes: [],
    });
    expect(claudeCommand({ flags, resume: 'sess-1' })).toEqual([
      ...HEAD,
      '--resume',
      'sess-1',
      '--max-budget-usd',
      '0.5',
      '--model',
      'sonnet',
      '--permission-mode',
      'default',
      '--setting-sources',
      'project',
      '--strict-mcp-config',
      '--allowedTools',
      'Bash(git diff)',
      '--disallowedTools',
      'Write',
    ]);
  });
});

describe('argument injection through session ids (TestArgInjection)', () => {
  it('refuses a flag-like resume id with the original message', () => {
    const error = thrown(() => claudeCommand({ flags: [], resume: '--permission-mode' }));
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toBe(
      "Refusing to dispatch: session_id '--permission-mode' starts with '-' and would be interpreted as a command-line flag by the claude CLI.",
    );
    expect(error.hint).toContain('session_id');
    expect(error.hint).not.toContain('agents.yaml');
  });

  it('refuses an id with whitespace or a control character (no session id has one) before any container starts', () => {
    expect(thrown(() => claudeCommand({ flags: [], resume: 'abc --permission-mode bypassPermissions' })).message).toContain('must be a single word');
    expect(thrown(() => claudeCommand({ flags: [], resume: 'abc\u0007' })).code).toBe('INVALID_INPUT');
  });

  it('refuses a single-dash id too', () => {
    expect(thrown(() => claudeCommand({ flags: [], resume: '-x' })).message).toContain("session_id '-x'");
  });

  it('refuses a flag-like fresh session id', () => {
    expect(thrown(() => claudeCommand({ flags: [], sessionId: '--resume' })).code).toBe('INVALID_INPUT');
  });

  it('normal ids still build, including ones containing dashes', () => {
    expect(claudeCommand({ flags: [], resume: UUID })).toContain(UUID);
    expect(claudeCommand({ flags: [], resume: 'my-session--name' })).toContain('my-session--name');
  });
});

describe('isSessionFlagRejection (TestOldCliSessionFlagFallback)', () => {
  it.each([
    "error: unknown option '--session-id'",
    "Error: Unrecognized option: --session-id",
    'unknown argument --session-id',
    "error: unexpected argument '--session-id' found",
    "ERROR: UNKNOWN OPTION '--SESSION-ID'",
  ])('detects %j', (stderr) => {
    expect(isSessionFlagRejection(stderr)).toBe(true);
  });

  it.each([
    '',
    "error: unknown option '--foo'",
    'Error: Invalid session ID. Must be a valid UUID. (--session-id)',
    'Error: Session ID 0b6a is already in use.',
    'No conversation found with session ID: abc',
    'Invalid API key · Fix external API key',
  ])('does not fire on %j', (stderr) => {
    expect(isSessionFlagRejection(stderr)).toBe(false);
  });
});
