export const FRAKTI_VERSION = '0.1.0';
