export * from './schema.js';
export * from './paths.js';
export * from './load.js';
export * from './save.js';
export * from './store.js';
export { withFileLock } from './lock.js';
export { writeFileAtomic, ensurePrivateDir } from './atomic-write.js';
