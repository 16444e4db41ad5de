import { describe, expect, it } from 'vitest';
import { extractPatch, overlayCommand } from '../../src/dispatch/overlay.js';

const BEGIN = '{"type":"agent-dispatch-overlay","event":"patch-begin"}';
const END = '{"type":"agent-dispatch-overlay","event":"patch-end"}';

describe('overlay wrapper', () => {
  it('runs the claude command as positional arguments of a fixed script (no shell interpolation of them)', () => {
    const cmd = overlayCommand(['claude', '-p', '--output-format', 'stream-json', '--model', '$(rm -rf /)']);
    expect(cmd.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(cmd[3]).toBe('agent-dispatch-overlay');
    expect(cmd.slice(4)).toEqual(['claude', '-p', '--output-format', 'stream-json', '--model', '$(rm -rf /)']);
    expect(cmd[2]).toContain('"$@"');
    expect(cmd[2]).not.toContain('rm -rf');
  });

  it('splits the patch out of the output, keeping the other lines in order', () => {
    const lines = ['{"type":"system"}', '{"type":"result","is_error":false}', BEGIN, 'diff --git a/x b/x', '+new', END];
    expect(extractPatch(lines)).toEqual({ lines: lines.slice(0, 2), patch: 'diff --git a/x b/x\n+new\n' });
  });

  it('no changes: an empty patch; no markers at all (claude killed): no patch', () => {
    expect(extractPatch(['a', BEGIN, END]).patch).toBe('');
    expect(extractPatch(['a', 'b'])).toEqual({ lines: ['a', 'b'] });
  });

  it('a patch cut off before its end marker keeps what arrived', () => {
    expect(extractPatch(['a', BEGIN, 'diff --git a/x b/x'])).toEqual({ lines: ['a'], patch: 'diff --git a/x b/x\n' });
  });

  it('a marker-like line inside the patch content cannot end it early (patch lines carry a diff prefix)', () => {
    const lines = [BEGIN, `+${END}`, ' context', END];
    expect(extractPatch(lines).patch).toBe(`+${END}\n context\n`);
  });
});
