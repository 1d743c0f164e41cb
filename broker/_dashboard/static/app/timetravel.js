// Time travel: the exact state of a workspace at any past offset, rebuilt by folding its stored
// history from the start with the same fold as the live page (app/fold.js). The I/O is injected:
// `fetchPage({after, before, limit})` answers like the connection's `history` (oldest first
// with `after`). States at page ends are kept as checkpoints, so moving the scrubber around
// folds only the pages between the nearest checkpoint and the target.

import { foldEvent, newWorkspaceState } from "./fold.js";

/**
 * @typedef {import("./fold.js").WorkspaceState} WorkspaceState
 * @typedef {import("./fold.js").EventMsg} EventMsg
 * @typedef {(query: {after: number, before: number, limit: number}) =>
 *   Promise<{events: EventMsg[], more: boolean}>} FetchPage
 * @typedef {{offset: number, state: WorkspaceState, lost: {from: number, to: number} | null,
 *   event: EventMsg | null}} Checkpoint
 * @typedef {{state: WorkspaceState, offset: number, exact: boolean,
 *   lost: {from: number, to: number} | null, event: EventMsg | null}} Rebuilt
 */

/** Events per history request: the protocol's largest page. */
export const PAGE_LIMIT = 1000;
/** Checkpoints kept; the oldest beyond this are dropped (offset 0 always stays). */
export const MAX_CHECKPOINTS = 500;

export class StateRebuilder {
  /**
   * @param {{name: string, epoch: number, created: string, fetchPage: FetchPage,
   *   pageLimit?: number, maxCheckpoints?: number}} options
   */
  constructor({ name, epoch, created, fetchPage, pageLimit = PAGE_LIMIT, maxCheckpoints = MAX_CHECKPOINTS }) {
    this.fetchPage = fetchPage;
    this.pageLimit = pageLimit;
    this.maxCheckpoints = maxCheckpoints;
    /** @type {Map<number, Checkpoint>} by offset */
    this.checkpoints = new Map([
      [0, { offset: 0, state: newWorkspaceState(name, epoch, created), lost: null, event: null }],
    ]);
  }

  /**
   * The state as it was right after the event at `offset` was folded in (offset 0: before
   * any event). `exact` is false when retention removed events before `offset`: the state
   * then starts from an empty workspace at the first retained event, and `lost` names the
   * missing range. `event` is the event at `offset`, when it is stored.
   * @param {number} offset
   * @returns {Promise<Rebuilt>}
   */
  async stateAt(offset) {
    const from = this.nearestCheckpoint(offset);
    let state = from.state;
    let lost = from.lost;
    let position = from.offset;
    let last = from.event;
    while (position < offset) {
      const limit = Math.min(this.pageLimit, offset - position);
      const page = await this.fetchPage({ after: position, before: offset + 1, limit });
      if (page.events.length === 0) {
        break;
      }
      for (const event of page.events) {
        if (event.offset > position + 1 && lost === null) {
          lost = { from: position + 1, to: event.offset - 1 };
        }
        state = foldEvent(state, event);
        position = event.offset;
        last = event;
      }
      this.remember({ offset: position, state, lost, event: last });
      if (!page.more) {
        break;
      }
    }
    return {
      state,
      offset: position,
      exact: lost === null,
      lost,
      event: last !== null && last.offset === offset ? last : null,
    };
  }

  /** @param {number} offset @returns {Checkpoint} */
  nearestCheckpoint(offset) {
    /** @type {Checkpoint} */
    let best = /** @type {Checkpoint} */ (this.checkpoints.get(0));
    for (const checkpoint of this.checkpoints.values()) {
      if (checkpoint.offset <= offset && checkpoint.offset > best.offset) {
        best = checkpoint;
      }
    }
    return best;
  }

  /** @param {Checkpoint} checkpoint */
  remember(checkpoint) {
    this.checkpoints.delete(checkpoint.offset);
    this.checkpoints.set(checkpoint.offset, checkpoint);
    while (this.checkpoints.size > this.maxCheckpoints) {
      for (const key of this.checkpoints.keys()) {
        if (key !== 0) {
          this.checkpoints.delete(key);
          break;
        }
      }
    }
  }
}
