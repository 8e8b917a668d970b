// TypeDoc configuration of `npm run docs`: the API reference of @heliosdb/client and
// @heliosdb/server, built into docs/api/ (generated, not committed). Warnings are errors, and
// anything marked @internal is left out.
import { OptionDefaults } from 'typedoc';

const proto = 'https://github.com/heliosdb/heliosdb-typescript/blob/main/proto/heliosdb/v1';

/** @type {Partial<import('typedoc').TypeDocOptions>} */
const config = {
  name: 'HeliosDB TypeScript SDK',
  entryPoints: ['../../src/client/index.ts', '../../src/server/index.ts'],
  tsconfig: '../../tsconfig.json',
  out: '../../docs/api',
  readme: 'none',
  excludeInternal: true,
  excludePrivate: true,
  treatWarningsAsErrors: true,
  treatValidationWarningsAsErrors: true,
  validation: { notExported: true, invalidLink: true, invalidPath: true, rewrittenLink: true, notDocumented: false },
  // protoc-gen-es marks generated declarations with @generated.
  blockTags: [...OptionDefaults.blockTags, '@generated'],
  // The wire contract's generated types are documented by their Protobuf definitions.
  externalSymbolLinkMappings: {
    'heliosdb-typescript': {
      DatabaseService: `${proto}/database.proto`,
      ErrorDetail: `${proto}/error.proto`,
      ErrorReason: `${proto}/error.proto`,
    },
  },
  disableSources: true,
  githubPages: false,
};

export default config;
