import { describe, expect, it } from 'vitest';
import { demuxer, LineCollector, LineSplitter } from '../../src/sandbox/lines.js';

const MiB = 1024 * 1024;

/** One Docker attach frame: type (1 stdout, 2 stderr), three zero bytes, the length, the payload. */
function frame(type: 1 | 2, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('LineSplitter (the gateway event channel)', () => {
  it('is linear: 50 MiB in 4 KiB chunks, as one line and as 100-byte lines, each well within 5 s', () => {
    for (const line of [50 * MiB, 100]) {
      const chunk = Buffer.alloc(4096, 'x');
      // a newline every `line` bytes
      for (let i = line - 1; i < chunk.length; i += line) chunk[i] = 0x0a;
      let lines = 0;
      let longest = 0;
      const s = new LineSplitter(MiB, (l) => {
        lines += 1;
        longest = Math.max(longest, l.length);
      });
      const started = performance.now();
      for (let i = 0; i < (50 * MiB) / chunk.length; i++) s.push(chunk);
      s.flush();
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(longest).toBeLessThanOrEqual(MiB);
      expect(lines).toBe(line === 100 ? Math.floor((50 * MiB) / 4096) * Math.floor(4096 / 100) + 1 : 1);
    }
  });

  it('an over-long line is passed on once, cut and flagged, without being held whole; the next line is whole', () => {
    const seen: [number, boolean][] = [];
    const s = new LineSplitter(20, (line, cut) => seen.push([line.length, cut]));
    s.push(Buffer.from('x'.repeat(7)));
    s.push(Buffer.from(`${'y'.repeat(1000)}\n{"event":"pong"}\n`));
    s.push(Buffer.from('0123456789\n'));
    s.flush();
    expect(seen).toEqual([
      [20, true],
      [16, false],
      [10, false],
    ]);
  });

  it('a line exactly the cap is not cut; a last line without a newline is passed on at flush', () => {
    const seen: [string, boolean][] = [];
    const s = new LineSplitter(4, (line, cut) => seen.push([line, cut]));
    s.push(Buffer.from('abcd\nef'));
    s.flush();
    expect(seen).toEqual([
      ['abcd', false],
      ['ef', false],
    ]);
  });
});

describe('demuxer (the gateway attach stream)', () => {
  it('splits frames cut anywhere, headers included, into stdout and stderr', () => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const push = demuxer((p) => out.push(Buffer.from(p)), (p) => err.push(Buffer.from(p)));
    const stream = Buffer.concat([frame(1, Buffer.from('{"a":1}\n')), frame(2, Buffer.from('warn')), frame(1, Buffer.alloc(0)), frame(1, Buffer.from('{"b":2}\n'))]);
    for (let i = 0; i < stream.length; i += 3) push(stream.subarray(i, i + 3));
    expect(Buffer.concat(out).toString()).toBe('{"a":1}\n{"b":2}\n');
    expect(Buffer.concat(err).toString()).toBe('warn');
  });

  it('is linear: one 64 MiB frame in 16 KiB chunks is passed through piece by piece within 5 s', () => {
    let bytes = 0;
    let pieces = 0;
    const push = demuxer(
      (p) => {
        bytes += p.length;
        pieces += 1;
      },
      () => undefined,
    );
    const header = Buffer.alloc(8);
    header[0] = 1;
    header.writeUInt32BE(64 * MiB, 4);
    const chunk = Buffer.alloc(16 * 1024, 'z');
    const started = performance.now();
    push(header);
    for (let i = 0; i < (64 * MiB) / chunk.length; i++) push(chunk);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(bytes).toBe(64 * MiB);
    expect(pieces).toBe(4096);
  });
});

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
