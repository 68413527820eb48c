// Account lockout (contract §7). The lockout itself is a later issue: until it lands there is no
// failed-login state to clear, so clearing it is a safe no-op. Admin unlock (API and CLI) already goes
// through this one function, so lockout only has to fill it in.
import type { Database } from '../db/client.js';
import type { SecurityContext } from './context.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];

/**
 * Forgets the failed logins of a user and lifts a lock, if any. Returns whether a lock was lifted.
 * TODO(lockout): delete the user's failure rows / clear locked_until here.
 */
export async function clearLoginFailures(_ctx: Pick<SecurityContext, 'db' | 'clock'>, _userId: number, _db?: Database | Tx): Promise<boolean> {
  return false;
}
