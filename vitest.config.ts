import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests mount real FUSE filesystems and start real daemons: run files one at a time so two
    // suites never race for the same loopback port or mountpoint, and give real I/O time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
