// frakti's own version, in the leaf room so that every room (the CRI Version
// RPC, the CLI's --version) reports the same string.
export const FRAKTI_VERSION = '0.1.0';
