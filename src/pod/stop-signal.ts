// The signal StopContainer sends first: the CRI's stop_signal when the client
// gives one, else the image's STOPSIGNAL, else SIGTERM, as containerd picks
// it. Names as the guest agent knows them (x86-64 Linux signals 1-31).
import { PodError } from './errors.js';

const NAMES = [
  'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV',
  'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN',
  'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS',
];
const ALIASES: Record<string, string> = { SIGCLD: 'SIGCHLD', SIGIOT: 'SIGABRT', SIGPOLL: 'SIGIO' };

/** "SIGTERM", "TERM", "term" or "15" as the agent names it; undefined when it is none of the signals 1-31. */
export function signalName(s: string): string | undefined {
  const t = s.trim().toUpperCase();
  if (/^\d{1,2}$/.test(t)) return NAMES[Number(t) - 1];
  const name = t.startsWith('SIG') ? t : `SIG${t}`;
  const canonical = ALIASES[name] ?? name;
  return NAMES.includes(canonical) ? canonical : undefined;
}

/** The stop signal of a new container: the request's, the image's, or SIGTERM. */
export function stopSignalFor(requested: string | undefined, image: string): string {
  if (requested) {
    const name = signalName(requested);
    if (!name) throw new PodError('INVALID_ARGUMENT', `stop signal ${requested} is not one a VM pod's agent sends (signals 1-31)`);
    return name;
  }
  // A STOPSIGNAL the guest cannot send (a real-time one) falls back, as an unknown one does in containerd.
  return (image && signalName(image)) || 'SIGTERM';
}
