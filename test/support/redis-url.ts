/** The Redis server the tests use, with a key prefix of each test's own: `ETL_TEST_REDIS_URL` or the local one. */
export const REDIS_URL = process.env.ETL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
