// The layer rules of docs/architecture.md, checked by dependency-cruiser (`npm run lint:layers`,
// run by .ci/run). Every rule is an error: one forbidden import fails the check.
//
// "Ours" is whatever is neither a Node builtin nor an npm package: a layer that "imports nothing
// of ours" may still use node: builtins and npm packages.

/** A rule forbidding `from` to import any module of ours outside `allowed` (regexes on repo paths). */
function onlyImports(name, comment, from, allowed) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: from },
    to: { dependencyTypesNot: ['core'], pathNot: ['^node_modules/', ...allowed] },
  };
}

module.exports = {
  forbidden: [
    onlyImports('sys-imports-nothing-of-ours', 'sys/ (syscalls Node lacks) imports only node: builtins and npm packages',
      '^sys/', ['^sys/']),
    onlyImports('proto-imports-nothing-of-ours', 'proto/ (the wire contract) imports only node: builtins and npm packages',
      '^proto/', ['^proto/']),
    onlyImports('fuse-kernel-imports-sys', 'fuse/kernel/ (the FUSE protocol) may import sys/ only',
      '^fuse/kernel/', ['^fuse/kernel/', '^sys/']),
    onlyImports('fuse-passthrough-imports-kernel-and-sys', 'fuse/passthrough/ may import fuse/kernel/ and sys/ only',
      '^fuse/passthrough/', ['^fuse/passthrough/', '^fuse/kernel/', '^sys/']),
    onlyImports('fuse-mfs-imports-kernel-proto-cluster-sys', 'fuse/mfs/ (the /mfs mount) may import fuse/kernel/, proto/ (sessions), cluster/ and sys/ only: never server/',
      '^fuse/mfs/', ['^fuse/mfs/', '^fuse/kernel/', '^proto/', '^cluster/', '^sys/']),
    // dfsa/ and cluster/ import nothing of server/, so the daemon running DFSA (load dissemination,
    // the Advisor service) and reading the map cannot make a cycle (docs/architecture.md).
    onlyImports('server-imports-proto-sys-dfsa-cluster', 'server/ may import proto/, sys/, dfsa/ and cluster/ only (not fuse/, not bin/)',
      '^server/', ['^server/', '^proto/', '^sys/', '^dfsa/', '^cluster/']),
    onlyImports('cluster-imports-nothing-of-ours', 'cluster/ (membership: the map file, discovery) imports only node: builtins and npm packages',
      '^cluster/', ['^cluster/']),
    onlyImports('dfsa-imports-proto', 'dfsa/ may import proto/ only',
      '^dfsa/', ['^dfsa/', '^proto/']),
    {
      name: 'bench-not-test',
      comment: 'bench/ may import anything except test/',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^test/' },
    },
    {
      name: 'only-test-imports-test',
      comment: 'nothing imports test/ but test/ itself',
      severity: 'error',
      from: { pathNot: '^test/' },
      to: { path: '^test/' },
    },
    {
      name: 'only-bin-and-test-import-bin',
      comment: 'nothing outside bin/ and test/ imports bin/ (the composition roots, which may be split into modules of their own)',
      severity: 'error',
      from: { pathNot: '^(test|bin)/' },
      to: { path: '^bin/' },
    },
    {
      name: 'no-circular',
      comment: 'no circular dependencies',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    // The whole repo is given on the command line ("."), so that a layer folder that does not exist
    // yet (dfsa/) is no error and a new folder is checked from its first file on.
    exclude: { path: '^dist/' },
    doNotFollow: { path: '^node_modules/' },
    // Type-only imports are dependencies too.
    tsPreCompilationDeps: true,
    // Resolve as tsc does: `./x.js` specifiers name `./x.ts` sources (NodeNext).
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
