export * from './topics.js';
export * from './messages.js';
export * from './rotation.js';
export * from './naming.js';
export * from './errors.js';
export * from './records.js';
export * from './device-rules.js';
export * from './trust-bundle.js';
