// Registration and the password policy, independent of HTTP. Logins are security/login.ts.
import { validationError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { createUser, type CreateUserInput, type UserRecord } from './datastore.js';
import { ROLE_CITIZEN } from './role-names.js';
import { queueRegistrationMail } from './confirmable.js';

export { invalidCredentials, type ClientInfo } from './login.js';

export type RegisterInput = Omit<CreateUserInput, 'roles' | 'active' | 'confirmedAt' | 'departmentId'>;

/** Policy messages for a new password, keyed for the envelope's `fields`. */
export function checkPasswordPolicy(ctx: SecurityContext, field: string, password: string, email?: string): void {
  const problems = ctx.passwords.validate(password, { email });
  if (problems.length) throw validationError({ [field]: problems });
}

export async function registerUser(ctx: SecurityContext, input: RegisterInput): Promise<UserRecord> {
  checkPasswordPolicy(ctx, 'password', input.password, input.email);
  // bcrypt first: a connection is not held open for the ~150 ms a hash takes at cost 12.
  const passwordHash = await ctx.passwords.hash(input.password);
  // The account and its email (confirmation / welcome) commit together: the transactional outbox.
  return ctx.db.transaction(async (tx) => {
    const user = await createUser(ctx, {
      ...input,
      passwordHash,
      roles: [ROLE_CITIZEN],
      confirmedAt: null,
    }, tx);
    await queueRegistrationMail(ctx, tx, user);
    return user;
  });
}
