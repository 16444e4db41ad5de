import { describe, expect, it } from 'vitest';
import { extractPatch, overlayCommand } from '../../src/dispatch/overlay.js';

const BEGIN = '{"type":"agent-dispatch-overlay","event":"patch-begin"}';
const END = '{"type":"agent-dispatch-overlay","event":"patch-end"}';

/** What `base64` prints: 76-character lines. */
function base64Lines(bytes: Buffer): string[] {
  return bytes.toString('base64').match(/.{1,76}/g) ?? [];
}

describe('overlay wrapper', () => {
  it('runs the claude command as positional arguments of a fixed script (no shell interpolation of them)', () => {
    const cmd = overlayCommand(['claude', '-p', '--output-format', 'stream-json', '--model', '$(rm -rf /)']);
    expect(cmd.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(cmd[3]).toBe('agent-dispatch-overlay');
    expect(cmd.slice(4)).toEqual(['claude', '-p', '--output-format', 'stream-json', '--model', '$(rm -rf /)']);
    expect(cmd[2]).toContain('"$@"');
    expect(cmd[2]).not.toContain('rm -rf');
  });

  it('splits the base64 patch out of the output, keeping the other lines in order', () => {
    const patch = Buffer.from('diff --git a/x b/x\n+new\n');
    const lines = ['{"type":"system"}', '{"type":"result","is_error":false}', BEGIN, ...base64Lines(patch), END];
    const split = extractPatch(lines);
    expect(split.lines).toEqual(lines.slice(0, 2));
    expect(split.patch).toEqual(patch);
    expect(split.complete).toBe(true);
  });

  it('any byte survives: a Latin-1 file and a NUL come back exactly', () => {
    const patch = Buffer.concat([Buffer.from('diff --git a/l1 b/l1\n+caf'), Buffer.from([0xe9, 0x00, 0xff]), Buffer.from('\n')]);
    expect(extractPatch([BEGIN, ...base64Lines(patch), END]).patch).toEqual(patch);
  });

  it('no changes: an empty patch; no markers at all (claude killed): no patch', () => {
    expect(extractPatch(['a', BEGIN, END]).patch).toEqual(Buffer.alloc(0));
    expect(extractPatch(['a', 'b'])).toEqual({ lines: ['a', 'b'], complete: false });
  });

  it('a patch cut off before its end marker is marked incomplete', () => {
    const split = extractPatch(['a', BEGIN, ...base64Lines(Buffer.from('diff --git a/x b/x\n'))]);
    expect(split).toMatchObject({ lines: ['a'], complete: false });
    expect(split.patch?.toString()).toBe('diff --git a/x b/x\n');
  });
});
