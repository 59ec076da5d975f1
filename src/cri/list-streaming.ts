// The Stream* RPCs (KEP-5825: StreamPodSandboxes, StreamContainers,
// StreamContainerStats, StreamPodSandboxStats, StreamImages): the same
// answer as the List* call, one item per message, so no message nears
// gRPC's 16 MiB limit however many pods a node runs and however large their
// labels and annotations. No items: the stream ends with no message, as the
// API asks (each message holds at least one item).
import type { CallContext, StreamHandler } from './rpc-wrapper.js';

export function streamedList<Req, Res, Item, Msg>(
  list: (req: Req, ctx: CallContext) => Promise<Res>,
  itemsOf: (res: Res) => Item[],
  message: (item: Item) => Msg,
): StreamHandler<Req, Msg> {
  return async (req, ctx, send) => {
    for (const item of itemsOf(await list(req, ctx))) {
      // A client that went away reads nothing more.
      if (ctx.signal.aborted) return;
      await send(message(item));
    }
  };
}
