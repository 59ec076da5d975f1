// An undo stack: each step that acquires something registers how to release
// it; on failure the steps run in reverse. Undo errors are collected, not
// thrown over the original error.
import { errorMessage } from './errors.js';
import { failPoint } from './fail-point.js';

export type UndoStep = () => Promise<void> | void;

export class UndoStack {
  private steps: { what: string; step: UndoStep }[] = [];

  push(what: string, step: UndoStep): void {
    this.steps.push({ what, step });
    failPoint(`undo: ${what}`);
  }

  /** Forget the steps: what they would undo is now owned by someone else. */
  commit(): void {
    this.steps = [];
  }

  /** Run every step in reverse; returns the failures as "what: why". */
  async run(): Promise<string[]> {
    const failures: string[] = [];
    while (this.steps.length > 0) {
      const { what, step } = this.steps.pop()!;
      try {
        await step();
      } catch (err) {
        failures.push(`${what}: ${errorMessage(err)}`);
      }
    }
    return failures;
  }
}
