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
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'contract', testMatch: ['<rootDir>/test/contract/**/*.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
