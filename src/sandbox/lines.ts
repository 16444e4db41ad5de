import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into lines (UTF-8; an invalid byte becomes U+FFFD instead of an exception) and
 * keeps at most `cap` characters of them: output from the container is untrusted.
 */
export class LineCollector {
  readonly lines: string[] = [];
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private kept = 0;

  constructor(
    private readonly cap: number,
    private readonly onLine?: (line: string) => void,
  ) {}

  push(chunk: Buffer): void {
    const text = this.partial + this.decoder.write(chunk);
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.emit(line);
    // A single line longer than the cap is cut, not buffered forever.
    if (this.partial.length > this.cap) {
      this.emit(this.partial);
      this.partial = '';
    }
  }

  flush(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest !== '') this.emit(rest);
  }

  private emit(line: string): void {
    if (this.kept >= this.cap) return;
    const kept = line.slice(0, this.cap - this.kept);
    this.kept += kept.length;
    this.lines.push(kept);
    this.onLine?.(kept);
  }
}
