// The ops CLI's passkey commands (the same security/ functions as GET/DELETE /users/{id}/passkeys).
import { resolveUser } from '../security/users.js';
import { listUserPasskeys, publicCredential, removeUserPasskey } from '../security/webauthn.js';
import type { Command } from './commands.js';

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export const PASSKEY_COMMANDS: Record<string, Command> = {
  'users passkeys': {
    usage: 'users passkeys USER',
    summary: "list a user's passkeys and security keys",
    args: [1, 1],
    async run(r) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const credentials = (await listUserPasskeys(r.ctx, r.actor, target.id)).map(publicCredential);
      const human = credentials.length
        ? table([['ID', 'NAME', 'USAGE', 'CREATED', 'LAST USED'],
          ...credentials.map((c) => [c.id, JSON.stringify(c.name), c.usage, c.created_at, c.last_used_at ?? '-'])])
        : `user ${target.id} has no passkeys`;
      r.print({ credentials }, human);
    },
  },
  'users remove-passkey': {
    usage: 'users remove-passkey USER CREDENTIAL_ID',
    summary: "remove one of a user's passkeys (the id from `users passkeys`); it stops working at once",
    args: [2, 2],
    async run(r) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      await removeUserPasskey(r.ctx, r.actor, target.id, r.args[1]!);
      r.print({ removed: r.args[1] }, `removed passkey ${r.args[1]} of user ${target.id} (${target.email})`);
    },
  },
};
