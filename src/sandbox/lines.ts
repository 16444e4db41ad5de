import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into lines (UTF-8; an invalid byte becomes U+FFFD instead of an exception) and keeps
 * at most `cap` characters of them: output from the container is untrusted. Linear in the input: each chunk
 * is scanned once, an unfinished line is kept as pieces, and nothing past the cap is stored.
 */
export class LineCollector {
  readonly lines: string[] = [];
  /** True once output past the cap was dropped. */
  truncated = false;
  private readonly decoder = new StringDecoder('utf8');
  private pieces: string[] = [];
  private pending = 0;
  private kept = 0;

  constructor(
    private readonly cap: number,
    private readonly onLine?: (line: string) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.kept >= this.cap) {
      this.truncated = true;
      return;
    }
    const text = this.decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.append(text.slice(start, nl));
      this.emit();
      start = nl + 1;
    }
    if (start < text.length) this.append(text.slice(start));
  }

  flush(): void {
    this.append(this.decoder.end());
    if (this.pieces.length > 0) this.emit();
  }

  /** Room left for the line being assembled; a line longer than the cap is cut, not buffered. */
  private append(piece: string): void {
    if (piece === '') return;
    const room = this.cap - this.kept - this.pending;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const kept = piece.length > room ? piece.slice(0, room) : piece;
    if (kept.length < piece.length) this.truncated = true;
    this.pieces.push(kept);
    this.pending += kept.length;
    if (this.kept + this.pending >= this.cap) this.emit();
  }

  private emit(): void {
    if (this.kept >= this.cap) {
      this.truncated = true;
      this.pieces = [];
      this.pending = 0;
      return;
    }
    const line = this.pieces.join('');
    this.pieces = [];
    this.pending = 0;
    this.kept += line.length;
    this.lines.push(line);
    this.onLine?.(line);
  }
}
