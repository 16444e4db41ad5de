/** The settings block the original wrote for an empty config (and its Settings defaults): one copy for every suite. */
export const ORIGINAL_DEFAULT_SETTINGS = {
  default_timeout: 300,
  default_allowed_tools: [],
  default_disallowed_tools: [],
  max_dispatch_depth: 3,
  max_concurrency: 5,
  cache: { enabled: true, ttl: 300, max_size: 1000 },
  job_retention_days: 0,
} as const;
