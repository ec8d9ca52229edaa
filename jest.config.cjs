// TypeScript and the ESM-only dependencies (middy, aedes and their kin) are compiled to
// CommonJS by swc, so jest runs without --experimental-vm-modules.
const esmPackages = [
  '@middy', 'aedes', 'aedes-persistence', 'aedes-packet', 'mqemitter', 'hyperid', 'fastfall',
  'fastparallel', 'fastseries', 'reusify', 'retimer', 'uuid', 'bulk-write-stream', 'end-of-stream',
];
const transform = {
  '^.+\\.(t|j|mj)sx?$': [
    '@swc/jest',
    {
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        target: 'es2022',
        transform: { decoratorMetadata: true, legacyDecorator: true },
      },
      module: { type: 'commonjs' },
    },
  ],
};
const common = {
  transform,
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  testEnvironment: 'node',
  // Sources import siblings as './x.js' (NodeNext); the files are .ts.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};
module.exports = {
  // A test's timeout is there to catch a hang, not to time it (speed is the bench's job): jest's
  // default 5 s failed tests that start a local Step Functions or DynamoDB Local harness when the
  // machine's load average passed ~40 (a fresh-clone run beside a 10,000-device bench). Tests that
  // need longer still say so themselves.
  testTimeout: 30_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'contract', testMatch: ['<rootDir>/test/contract/**/*.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
