// Preloaded with `node --import`: writes every module URL the process loads to the file named by
// RINGKV_TRACE_IMPORTS, so a test can say which modules a command pulled in.
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(${JSON.stringify(process.env.RINGKV_TRACE_IMPORTS)}, result.url + '\\n');
  return result;
}`)}`,
);
