import { ensureOpenFiles, openFilesNeeded, readOpenFileLimit } from '../../../cli/demo/open-files.js';

describe('cli/demo/open-files: the fleet needs two open files per device', () => {
  it('reads RLIMIT_NOFILE from /proc/self/limits text', () => {
    const text = 'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            20000                20000                files     \n';

    expect(readOpenFileLimit(text)).toEqual({ soft: 20_000, hard: 20_000 });
    expect(readOpenFileLimit('Max open files            unlimited            unlimited            files\n')).toEqual({ soft: Infinity, hard: Infinity });
    expect(readOpenFileLimit('nothing here')).toBeUndefined();
  });

  it('10,000 devices need more than the common limit of 20,000', () => {
    expect(openFilesNeeded(10_000)).toBeGreaterThan(20_000);
    expect(openFilesNeeded(1_000)).toBeLessThan(4_000);
  });

  it('a fleet this process can hold passes; one no limit allows is a clear error naming the numbers', () => {
    expect(ensureOpenFiles(10)).toBeUndefined();
    // More than Linux lets any process open (fs.nr_open), so no raise can help.
    const message = ensureOpenFiles(100_000_000);

    expect(message).toMatch(/^100000000 devices need about 200001024 open files in this process \(2 per device.*\); the limit is \d+\. Raise it \(ulimit -n 200001024/);
  });
});
