import { createInterface } from 'node:readline/promises';

/** Asks the user a yes/no question; "no" unless they say yes. */
export type Confirm = (question: string) => Promise<boolean>;

/** On a terminal, asks on stderr; without one (a script, CI, a pipe) the answer is no, without asking. */
export async function askOnTty(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
