import { createInterface } from 'node:readline/promises';
import { Presets, SingleBar } from 'cli-progress';

/**
 * The terminal, behind a seam: commands print lines, ask for confirmation and show progress
 * through it, so tests capture output and answer prompts without a TTY.
 */
export interface Progress {
  tick(): void;
  stop(): void;
}

export interface OperatorIo {
  out(line: string): void;
  err(line: string): void;
  /** Both stdin and stdout are a terminal: a person can answer a prompt. */
  interactive: boolean;
  confirm(question: string): Promise<boolean>;
  /** A progress bar on stderr for long fan-outs; silent when stderr is not a terminal. */
  progress(label: string, total: number): Progress;
}

/** Fan-outs shorter than this finish before a bar is worth drawing. */
export const PROGRESS_THRESHOLD = 10;

const silent: Progress = { tick: () => undefined, stop: () => undefined };

export function terminalIo(): OperatorIo {
  return {
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
    interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    async confirm(question) {
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      try {
        const answer = await rl.question(`${question} [y/N] `);
        return /^y(es)?$/i.test(answer.trim());
      } finally {
        rl.close();
      }
    },
    progress(label, total) {
      if (!process.stderr.isTTY || total < PROGRESS_THRESHOLD) return silent;
      const bar = new SingleBar(
        { stream: process.stderr, format: `${label} [{bar}] {value}/{total}`, clearOnComplete: true, hideCursor: true },
        Presets.shades_classic,
      );
      bar.start(total, 0);
      return { tick: () => bar.increment(), stop: () => bar.stop() };
    },
  };
}
