// Bounded waits for shutdown: a background writer's last flush is advisory (a touch, a batch of
// rate-limit counts, a lease row), and a shutdown must not hang on it — a statement stuck behind a
// lock or on a connection that went silent would otherwise hold `app.close()` for good.

/** How long a background writer's stop() waits for its last statement. */
export const STOP_GRACE_MS = 2000;

/** Waits for `work`, but no longer than `ms`; either way resolves (the work goes on unobserved, its errors are its own). */
export function withinGrace(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work.then(() => undefined, () => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
