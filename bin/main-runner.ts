import { pathToFileURL } from 'node:url';

/** Loads a module that exports main(argv) → exit code and runs it (see run-typescript.cjs). */
type Entry = { main?: (argv: string[]) => Promise<number>; default?: { main?: (argv: string[]) => Promise<number> } };

const [entry, ...args] = process.argv.slice(2);
import(pathToFileURL(entry).href)
  .then((module: Entry) => {
    const main = module.main ?? module.default?.main;
    if (!main) throw new Error(`${entry} exports no main(argv)`);
    return main(args);
  })
  .then((code) => {
    process.exitCode = code;
  })
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
