/** Terminal output for the CLI: stdout for results, stderr for progress and warnings; colour only on a TTY. */
const useColor = (stream: NodeJS.WriteStream) => stream.isTTY === true && !process.env['NO_COLOR'];

function paint(code: number, text: string, stream: NodeJS.WriteStream = process.stdout): string {
  return useColor(stream) ? `\u001b[${code}m${text}\u001b[0m` : text;
}

export const style = {
  red: (t: string, s?: NodeJS.WriteStream) => paint(31, t, s),
  green: (t: string, s?: NodeJS.WriteStream) => paint(32, t, s),
  yellow: (t: string, s?: NodeJS.WriteStream) => paint(33, t, s),
  cyan: (t: string, s?: NodeJS.WriteStream) => paint(36, t, s),
  bold: (t: string, s?: NodeJS.WriteStream) => paint(1, t, s),
};

export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function err(line = ''): void {
  process.stderr.write(`${line}\n`);
}

export function warn(message: string): void {
  out(style.yellow(`Warning: ${message}`));
}

/**
 * Text from elsewhere (an agent's answer, a job file) made safe to print: C0 and C1 control characters (and DEL)
 * removed, except newline and tab. An agent's answer could otherwise carry escape sequences that set the terminal
 * title or the clipboard (OSC 52), move the cursor over earlier lines, or hide text; stripped always, also when
 * the output is not a terminal.
 */
export function terminalSafe(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}
