import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert',
  'buffer',
  'child_process',
  'cluster',
  'crypto',
  'dgram',
  'dns',
  'events',
  'fs',
  'fs/promises',
  'http',
  'https',
  'net',
  'os',
  'path',
  'process',
  'readline',
  'stream',
  'timers',
  'tls',
  'url',
  'util',
  'worker_threads',
  'zlib',
];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.virtflow/', 'coverage/', 'bin/', '**/*.js', '**/*.mjs'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no I/O, no database, no hypervisor.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.map((name) => ({ name, message: 'Workflows must stay deterministic.' })),
            { name: 'mongodb', message: 'Workflows reach MongoDB only through activities.' },
          ],
          patterns: [
            { group: ['node:*'], message: 'Workflows must stay deterministic.' },
            {
              group: ['**/hypervisor/**', '**/inventory/**'],
              message: 'Workflows reach these only through activities.',
              allowTypeImports: true,
            },
            {
              group: ['**/activities/**'],
              message: 'Workflows call activities through their proxies (activity-proxies.ts): types only.',
              allowTypeImports: true,
            },
            {
              group: ['**/activities/host/**', '!**/activities/host/contract'],
              message: 'Workflows know a host only by its contract (activities/host/contract.ts).',
            },
          ],
        },
      ],
    },
  },
);
