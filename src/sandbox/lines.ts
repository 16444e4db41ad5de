import { StringDecoder } from 'node:string_decoder';

/** Lines that must survive however much other output came first (e.g. claude's final result), under their own cap. */
export interface KeepRule {
  test(line: string): boolean;
  cap: number;
}

/**
 * Splits a byte stream into lines (UTF-8; an invalid byte becomes U+FFFD instead of an exception). Every line
 * goes to `onLine`; only a bounded amount is kept: at most `cap` characters of ordinary lines, and at most
 * `keep.cap` characters of lines the keep rule marks. Output from the container is untrusted: each chunk is
 * scanned once, a line longer than the larger cap is cut, and nothing past the caps is stored.
 */
export class LineCollector {
  readonly lines: string[] = [];
  /** True once output past a cap was dropped or a line was cut. */
  truncated = false;
  private readonly decoder = new StringDecoder('utf8');
  private pieces: string[] = [];
  private pending = 0;
  /** The rest of an over-long line is being dropped, up to its newline. */
  private skipping = false;
  private kept = 0;
  private keptMarked = 0;
  private readonly maxLine: number;

  constructor(
    private readonly cap: number,
    private readonly onLine?: (line: string) => void,
    private readonly keep?: KeepRule,
  ) {
    this.maxLine = Math.max(cap, keep?.cap ?? 0);
  }

  push(chunk: Buffer): void {
    const text = this.decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.append(text.slice(start, nl));
      if (this.skipping) this.skipping = false;
      else this.emit();
      start = nl + 1;
    }
    if (start < text.length) this.append(text.slice(start));
  }

  flush(): void {
    this.append(this.decoder.end());
    if (this.pieces.length > 0) this.emit();
  }

  private append(piece: string): void {
    if (piece === '') return;
    if (this.skipping) {
      this.truncated = true;
      return;
    }
    const room = this.maxLine - this.pending;
    const kept = piece.length > room ? piece.slice(0, room) : piece;
    this.pieces.push(kept);
    this.pending += kept.length;
    if (this.pending >= this.maxLine) {
      // A line as long as the larger cap is complete as far as we care: emit it, drop the rest of it.
      this.truncated ||= piece.length > room;
      this.emit();
      this.skipping = true;
    }
  }

  private emit(): void {
    const line = this.pieces.join('');
    this.pieces = [];
    this.pending = 0;
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
