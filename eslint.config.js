// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

// Keys come from the keyring (src/security/keyring.ts) only: nothing else reads the secrets.
const KEYRING_ONLY = {
  selector: "MemberExpression[property.name=/^SECRET_KEY(_FALLBACKS)?$/]",
  message: 'Take keys from src/security/keyring.ts; do not read SECRET_KEY / SECRET_KEY_FALLBACKS',
};
// Public shapes are built in the presenters: a timestamp formatted in a route or the CLI is a shape built elsewhere.
const SHAPES_IN_PRESENTERS = {
  selector: "CallExpression[callee.property.name='toISOString']",
  message: 'Public shapes are built in security/presenters.ts',
};

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'dist/', 'openapi/', 'migrations/', 'bench/results/', 'examples/**/vendor/', 'test/generated/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'off',
    },
  },
  {
    // The environment is read in one place only (src/config.ts).
    files: ['src/**/*.ts'],
    ignores: ['src/config.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read configuration through src/config.ts' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/config.ts', 'src/security/keyring.ts'],
    rules: { 'no-restricted-syntax': ['error', KEYRING_ONLY] },
  },
  // The layers (docs/architecture.md): server → app → routes/plugins → schemas/security (the
  // framework-free core) → db → config/errors. Each zone names what its files may not import; CI runs
  // `npm run lint`, so a crossing fails the build (test/lint/layers.test.ts proves each zone fires).
  // One config object per zone: no-restricted-imports settings do not merge across objects.
  {
    files: ['src/security/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { regex: '^(fastify|fastify-plugin|@fastify/.*)$', message: 'security/ is the framework-free core: no Fastify here' },
        { regex: '(^|/)(plugins|routes|cli)/|^\\.{1,2}/(.*/)?(app|server)(\\.js)?$', message: 'security/ may not import the HTTP layer, the CLI or the app' },
      ] }],
    },
  },
  {
    files: ['src/routes/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { regex: '(^|/)db/|^(drizzle-orm|postgres)(/.*)?$', message: 'Routes do not touch the database: call security/ (types of rows too come through security/)' },
        { regex: '(^|/)cli/|^\\.{1,2}/(.*/)?(app|server)(\\.js)?$', message: 'Routes may not import the CLI or the app' },
      ] }],
      'no-restricted-syntax': ['error', KEYRING_ONLY, SHAPES_IN_PRESENTERS],
    },
  },
  {
    files: ['src/db/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { regex: '(^|/)(security|plugins|routes|cli|schemas)/|^\\.{1,2}/(.*/)?(app|server|runtime)(\\.js)?$', message: 'db/ sits below the core: it may not import security/ or anything above it' },
        { regex: '^(fastify|fastify-plugin|@fastify/.*)$', message: 'db/ knows nothing of Fastify' },
      ] }],
    },
  },
  {
    files: ['src/cli/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { regex: '(^|/)(routes|plugins)/|^\\.{1,2}/(.*/)?(app|server)(\\.js)?$', message: 'The CLI calls security/ directly: no routes, plugins or app (and so no Fastify)' },
        { regex: '^(fastify|fastify-plugin|@fastify/.*)$', message: 'The CLI does not load Fastify' },
      ] }],
      'no-restricted-syntax': ['error', KEYRING_ONLY, SHAPES_IN_PRESENTERS],
    },
  },
  {
    files: ['examples/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
);
