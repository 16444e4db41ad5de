import { describe, expect, it } from 'vitest';
import { LineCollector } from '../../src/sandbox/lines.js';

describe('LineCollector under hostile output', () => {
  it('is linear: 64 MiB with no newline, in 64 KiB chunks, is taken in well under a second per 10 MiB', () => {
    const c = new LineCollector(16 * 1024 * 1024);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const started = performance.now();
    for (let i = 0; i < 1024; i++) c.push(chunk);
    c.flush();
    expect(performance.now() - started).toBeLessThan(3000);
    expect(c.lines).toHaveLength(1);
    expect(c.lines[0]).toHaveLength(16 * 1024 * 1024);
    expect(c.truncated).toBe(true);
  });

  it('many short lines past the cap are dropped and flagged, the first ones kept in order', () => {
    const c = new LineCollector(10);
    c.push(Buffer.from('aaaa\nbbbb\ncccc\ndddd\n'));
    c.flush();
    expect(c.lines).toEqual(['aaaa', 'bbbb', 'cc']);
    expect(c.truncated).toBe(true);
  });

  it('marked lines are kept under their own cap after ordinary output filled its cap; all lines reach onLine', () => {
    const seen: string[] = [];
    const c = new LineCollector(8, (l) => seen.push(l), { test: (l) => l.startsWith('{"type":"result"'), cap: 100 });
    c.push(Buffer.from(`${'x'.repeat(20)}\n${'y'.repeat(20)}\n{"type":"result","result":"kept"}\n`));
    c.flush();
    expect(c.lines).toEqual(['x'.repeat(8), '{"type":"result","result":"kept"}']);
    expect(seen).toHaveLength(3);
    expect(c.truncated).toBe(true);
  });

  it('a marked line longer than the ordinary cap is kept whole (up to its own cap)', () => {
    const c = new LineCollector(4, undefined, { test: (l) => l.startsWith('R'), cap: 64 });
    c.push(Buffer.from(`R${'z'.repeat(40)}\n`));
    c.flush();
    expect(c.lines).toEqual([`R${'z'.repeat(40)}`]);
  });

  it('a multi-byte character split across chunks is decoded whole', () => {
    const bytes = Buffer.from('é\n');
    const c = new LineCollector(100);
    c.push(bytes.subarray(0, 1));
    c.push(bytes.subarray(1));
    expect(c.lines).toEqual(['é']);
    expect(c.truncated).toBe(false);
  });
});
