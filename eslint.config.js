// ESLint flat config: the rules STYLE.md names, type-aware on tsconfig.json, plus the Temporal boundaries
// (workflow code stays free of Node and of activity implementations; activities log through the SDK).
const { builtinModules } = require('node:module');
const { defineConfig } = require('eslint/config');
const tseslint = require('typescript-eslint');
const { importX, createNodeResolver } = require('eslint-plugin-import-x');

/** Workflow code runs in Temporal's deterministic sandbox, which has no Node APIs: ban every built-in. */
const NODE_BUILTINS = builtinModules;

module.exports = defineConfig(
  {
    ignores: ['node_modules/', '.tools/', '.fleetscore/', 'coverage/', 'test/fixtures/', 'bench/results/'],
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: {
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    plugins: { 'import-x': importX },
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: __dirname },
    },
    settings: {
      'import-x/extensions': ['.ts', '.js', '.cjs', '.json'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.cjs', '.json', '.node'] })],
    },
    rules: {
      eqeqeq: ['error', 'always'],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'error',
      // Type-only imports are erased, so only value cycles count (the rule skips `import type`).
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      // The TypeScript variant of no-restricted-imports, for `allowTypeImports`: types of activities are fine.
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: NODE_BUILTINS.map((name) => ({
            name,
            message: 'Workflow code is sandboxed and deterministic: no Node built-ins (do the I/O in an activity).',
          })),
          patterns: [
            {
              group: ['node:*'],
              message: 'Workflow code is sandboxed and deterministic: no Node built-ins (do the I/O in an activity).',
            },
            {
              group: ['**/activities', '**/activities/**'],
              allowTypeImports: true,
              message:
                'Workflows import activities only as types (`import type`) and call them through proxyActivities.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['activities/**/*.ts', 'lib/scoring/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'console',
          property: 'log',
          message: "Use the SDK's `log` (from @temporalio/activity) with structured fields, or the shard log.",
        },
      ],
    },
  },
);
