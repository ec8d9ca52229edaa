export * from './quotas.js';
export * from './call-profile.js';
export * from './rate-budget.js';
export * from './admission.js';
export * from './calendar.js';
export * from './live.js';
