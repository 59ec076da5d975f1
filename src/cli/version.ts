export { FRAKTI_VERSION } from '../lib/version.js';
