// tsc emits only .js; the .proto files are loaded at run time from beside the compiled proto/ modules.
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';

mkdirSync('dist/proto', { recursive: true });
for (const f of readdirSync('proto')) if (f.endsWith('.proto')) cpSync(`proto/${f}`, `dist/proto/${f}`);
// npm links bins only when installed; tests and admins also call dist/bin/*.js directly.
if (existsSync('dist/bin')) {
  for (const f of readdirSync('dist/bin')) if (f.endsWith('.js')) chmodSync(`dist/bin/${f}`, 0o755);
}
