// ESLint flat config: typescript-eslint's type-checked recommended rules plus the ones the team's style names
// (floating promises, type imports, import cycles, eqeqeq), and the Temporal boundaries: workflow code
// (workflows/ and the workflow-safe modules in lib/shared/) stays free of Node, of activity implementations and
// of the rest of lib/; activities log through the SDK; no package's internal paths.
const { builtinModules } = require('node:module');
const { defineConfig } = require('eslint/config');
const tseslint = require('typescript-eslint');
const { importX, createNodeResolver } = require('eslint-plugin-import-x');

/** Workflow code runs in Temporal's deterministic sandbox, which has no Node APIs: ban every built-in. */
const NODE_BUILTINS = builtinModules;
const NO_NODE = 'Workflow code is sandboxed and deterministic: no Node built-ins (do the I/O in an activity).';
const nodeBans = [...NODE_BUILTINS.map((name) => ({ name, message: NO_NODE }))];
/**
 * Code that runs in the workflow sandbox: no Node built-ins, no internal paths, plus `patterns` of its own. The
 * TypeScript variant of no-restricted-imports, for `allowTypeImports` (types of activities are fine).
 */
function workflowSafe(files, patterns) {
  return {
    files,
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: nodeBans, patterns: [INTERNAL_PATHS, { group: ['node:*'], message: NO_NODE }, ...patterns] },
      ],
    },
  };
}

/** Only a package's public entry points: `pkg/lib/...` paths are internal and change without notice. */
const INTERNAL_PATHS = {
  group: ['@temporalio/*/lib/*', '@temporalio/*/lib/**'],
  message: "Import the SDK's public entry point (`@temporalio/<package>`), never its internal `lib/` paths.",
};

module.exports = defineConfig(
  {
    ignores: ['node_modules/', '.tools/', '.cache/', '.fleetscore/', 'coverage/', 'test/fixtures/', 'bench/results/'],
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
    extends: [tseslint.configs.recommendedTypeChecked],
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
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [INTERNAL_PATHS] }],
      // `_`-prefixed names mark what a destructuring leaves out on purpose.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
  {
    // jest's asymmetric matchers (`expect.any`, `expect.objectContaining`) are typed `any`, and `expect(obj.fn)`
    // passes methods unbound on purpose.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/unbound-method': 'off',
      // Test doubles implement async interfaces with bodies that need no await.
      '@typescript-eslint/require-await': 'off',
    },
  },
  workflowSafe(
    ['workflows/**/*.ts'],
    [
      {
        group: ['**/activities', '**/activities/**'],
        allowTypeImports: true,
        message: 'Workflows import activities only as types (`import type`) and call them through proxyActivities.',
      },
      {
        group: ['**/lib/**', '!**/lib/shared', '!**/lib/shared/**'],
        allowTypeImports: true,
        message: 'Workflows import only the workflow-safe modules of lib/shared/ (the rest of lib/ does I/O).',
      },
    ],
  ),
  workflowSafe(
    ['lib/shared/**/*.ts'],
    [
      {
        group: ['../*', '../**'],
        message: 'lib/shared/ is imported by workflow code: it imports nothing of fleetscore outside itself.',
      },
    ],
  ),
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
