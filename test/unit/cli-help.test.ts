/**
 * `--help` is rendered from the same spec the parser reads: every option of every command and subcommand
 * shows up, and each command parses with exactly the spec its help is rendered from.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CommandSpec } from '../../src/cli/spec.js';
import { leaves } from '../../src/cli/spec.js';
import { COMMANDS } from '../../src/cli/main.js';
import { run, setupEnv, type Env } from './cli-harness.js';

/** While set, `parse` records the spec it was given and stops the command (nothing after parsing runs). */
const recorded: { on: boolean; specs: CommandSpec[] } = { on: false, specs: [] };

vi.mock('../../src/cli/args.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/cli/args.js')>();
  return {
    ...actual,
    parse: (spec: CommandSpec, argv: string[]) => {
      if (!recorded.on) return actual.parse(spec, argv);
      recorded.specs.push(spec);
      throw new actual.UsageError('parse recorded');
    },
  };
});

let env: Env;
beforeEach(() => {
  env = setupEnv();
});
afterEach(() => {
  recorded.on = false;
  recorded.specs = [];
  env.cleanup();
  vi.unstubAllEnvs();
});

const commands = leaves(COMMANDS);

describe('--help on every command and subcommand', () => {
  it('there is something to check', () => {
    expect(commands.map((c) => c.spec.name)).toEqual(expect.arrayContaining(['add', 'group add', 'policy check', 'image build', 'jobs', 'job', 'cancel', 'gc']));
  });

  it.each(commands.map((c) => [c.spec.name, c] as const))('%s --help lists its usage, arguments and every option in its spec', async (name, command) => {
    for (const flag of ['--help', '-h']) {
      const r = await run(...name.split(' '), flag);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      const help = r.stdout;
      expect(help).toContain(`agent-dispatch ${name}: ${command.spec.summary}`);
      expect(help).toContain(`usage: agent-dispatch ${name}`);
      for (const arg of command.spec.args) expect(help).toMatch(new RegExp(`^ {2}\\[?${escape(arg.name)}.* ${escape(arg.description)}`, 'm'));
      for (const [option, o] of Object.entries(command.spec.options)) {
        const flagText = `${o.short ? `-${o.short}, ` : ''}--${option}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
        // The option's own line: its flag(s), value name and description.
        expect(help, option).toMatch(new RegExp(`^ +${escape(flagText)} +${escape(o.description)}`, 'm'));
      }
    }
  });

  it.each(COMMANDS.filter((e) => !('spec' in e)).map((g) => [(g as { name: string }).name, g] as const))('%s --help lists its subcommands', async (name, group) => {
    const r = await run(name, '--help');
    expect(r.code).toBe(0);
    for (const sub of (group as { subcommands: { spec: CommandSpec }[] }).subcommands) expect(r.stdout).toContain(sub.spec.name.slice(name.length + 1));
  });

  it('the top-level help lists every command and subcommand with its summary', async () => {
    const r = await run('--help');
    for (const c of commands) expect(r.stdout).toMatch(new RegExp(`^ {2}${escape(c.spec.name)} +${escape(c.spec.summary)}$`, 'm'));
  });

  it('--help after -- is an argument, not a request for help', async () => {
    const r = await run('describe', '--', '--help');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Agent '--help' not found");
  });
});

describe('the parser reads the spec the help is rendered from', () => {
  it.each(commands.map((c) => [c.spec.name, c] as const))('%s parses with exactly its registered spec', async (_name, command) => {
    recorded.on = true;
    await expect(Promise.resolve().then(() => command.run([]))).rejects.toThrow('parse recorded');
    expect(recorded.specs).toHaveLength(1);
    expect(recorded.specs[0]).toBe(command.spec);
  });

  it('an option missing from a spec is refused by the parser (exit 2, names the command)', async () => {
    for (const c of commands) {
      const r = await run(...c.spec.name.split(' '), '--not-in-any-spec');
      expect(r.code, c.spec.name).toBe(2);
      expect(r.stderr).toContain(`${c.spec.name}: Unknown option '--not-in-any-spec'`);
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
