import { StringDecoder } from 'node:string_decoder';

/** Lines that must survive however much other output came first (e.g. claude's final result), under their own cap. */
export interface KeepRule {
  test(line: string): boolean;
  cap: number;
}

/**
 * Splits a byte stream into lines (UTF-8; an invalid byte becomes U+FFFD instead of an exception), in one pass
 * over each chunk: nothing is ever searched twice, and at most `maxLine` characters of a line are held. A
 * longer line goes to `onLine` cut to its first `maxLine` characters (`cut` true) as soon as it is that long;
 * the rest of it, up to its newline, is dropped unseen.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pieces: string[] = [];
  private pending = 0;
  /** The rest of an over-long line is being dropped, up to its newline. */
  private skipping = false;

  constructor(
    private readonly maxLine: number,
    private readonly onLine: (line: string, cut: boolean) => void,
  ) {}

  push(chunk: Buffer): void {
    const text = this.decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.append(text.slice(start, nl));
      if (this.skipping) this.skipping = false;
      else this.emit(false);
      start = nl + 1;
    }
    if (start < text.length) this.append(text.slice(start));
  }

  /** The end of the stream: a last line without a newline is passed on. */
  flush(): void {
    this.append(this.decoder.end());
    if (this.pieces.length > 0) this.emit(false);
    this.skipping = false;
  }

  private append(piece: string): void {
    if (piece === '' || this.skipping) return;
    const room = this.maxLine - this.pending;
    if (piece.length <= room) {
      this.pieces.push(piece);
      this.pending += piece.length;
      return;
    }
    this.pieces.push(piece.slice(0, room));
    this.emit(true);
    this.skipping = true;
  }

  private emit(cut: boolean): void {
    const line = this.pieces.join('');
    this.pieces = [];
    this.pending = 0;
    this.onLine(line, cut);
  }
}

/**
 * Docker's multiplexed attach stream (no TTY: frames of an 8-byte header, type and length, then the payload)
 * into stdout and stderr, in one pass: a frame's payload is passed on piece by piece as it arrives, never
 * gathered, whatever length its header claims. The pieces are views of the chunk: copy what is kept.
 */
export function demuxer(stdout: (piece: Buffer) => void, stderr: (piece: Buffer) => void): (chunk: Buffer) => void {
  const header = Buffer.alloc(8);
  let filled = 0;
  let remaining = 0;
  let toStderr = false;
  return (chunk) => {
    let at = 0;
    while (at < chunk.length) {
      if (remaining === 0) {
        const n = Math.min(8 - filled, chunk.length - at);
        chunk.copy(header, filled, at, at + n);
        filled += n;
        at += n;
        if (filled < 8) return;
        filled = 0;
        toStderr = header[0] === 2;
        remaining = header.readUInt32BE(4);
        continue;
      }
      const n = Math.min(remaining, chunk.length - at);
      (toStderr ? stderr : stdout)(chunk.subarray(at, at + n));
      remaining -= n;
      at += n;
    }
  };
}

/**
 * Splits a byte stream into lines (LineSplitter). Every line goes to `onLine`; only a bounded amount is kept:
 * at most `cap` characters of ordinary lines, and at most `keep.cap` characters of lines the keep rule marks.
 * Output from the container is untrusted: a line longer than the larger cap is cut, and nothing past the caps
 * is stored.
 */
export class LineCollector {
  readonly lines: string[] = [];
  /** True once output past a cap was dropped or a line was cut. */
  truncated = false;
  private readonly splitter: LineSplitter;
  private kept = 0;
  private keptMarked = 0;

  constructor(
    private readonly cap: number,
    private readonly onLine?: (line: string) => void,
    private readonly keep?: KeepRule,
  ) {
    this.splitter = new LineSplitter(Math.max(cap, keep?.cap ?? 0), (line, cut) => {
      this.truncated ||= cut;
      this.emit(line);
    });
  }

  push(chunk: Buffer): void {
    this.splitter.push(chunk);
  }

  flush(): void {
    this.splitter.flush();
  }

  private emit(line: string): void {
    this.onLine?.(line);
    if (this.keep?.test(line)) {
      if (this.keptMarked + line.length > this.keep.cap) {
        this.truncated = true;
        return;
      }
      this.keptMarked += line.length;
      this.lines.push(line);
      return;
    }
    const room = this.cap - this.kept;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const kept = line.length > room ? line.slice(0, room) : line;
    if (kept.length < line.length) this.truncated = true;
    this.kept += kept.length;
    this.lines.push(kept);
  }
}
