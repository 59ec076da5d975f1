// tar-stream's header codec (its headers.js), which tar-stream's package.json
// does not export. Node is pointed at the file beside tar-stream's main; the
// release bundle (scripts/build-release.mjs) resolves this module to that same
// file, so both see the one module object that tar-stream's extract uses.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

const headers: unknown = require(join(dirname(require.resolve('tar-stream')), 'headers.js'));
export default headers;
