// `frakti --version`: frakti's version, the guest kernel it boots and the
// hash of the files it ships (the name of the folder the single executable
// extracts them to), read without extracting anything.
import { errorMessage } from '../lib/errors.js';
import { FRAKTI_VERSION } from '../lib/version.js';
import { isSingleExecutable, shippedHash, shippedText } from '../lib/shipped-files.js';

export { FRAKTI_VERSION } from '../lib/version.js';

export function versionText(): string {
  const lines = [`frakti ${FRAKTI_VERSION}`];
  try {
    lines.push(`guest kernel ${shippedText('release').trim()} (source ${shippedText('source-version').trim()}, config ${shippedText('config-hash').trim()})`);
    lines.push(`assets sha256:${shippedHash()}${isSingleExecutable() ? '' : ' (checkout)'}`);
  } catch (err) {
    lines.push(`guest files missing (run make): ${errorMessage(err)}`);
  }
  lines.push(`node ${process.version}`);
  return lines.join('\n') + '\n';
}
