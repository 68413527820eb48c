-- Publish every change that decides authentication on channel cs_auth, so each API instance can
-- drop what it cached (src/security/auth-cache.ts). Fires for every writer, not just the API.
CREATE OR REPLACE FUNCTION cs_notify_auth() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'sessions' THEN
    PERFORM pg_notify('cs_auth', 's:' || COALESCE(NEW.id, OLD.id)::text);
  ELSIF TG_TABLE_NAME = 'users' THEN
    PERFORM pg_notify('cs_auth', 'u:' || COALESCE(NEW.id, OLD.id)::text);
  ELSIF TG_TABLE_NAME = 'roles_users' THEN
    IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('cs_auth', 'u:' || OLD.user_id::text); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('cs_auth', 'u:' || NEW.user_id::text); END IF;
  ELSE
    PERFORM pg_notify('cs_auth', 'r:*');
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER sessions_notify_auth_update AFTER UPDATE ON sessions FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.fs_paa IS DISTINCT FROM NEW.fs_paa
     OR OLD.csrf_token IS DISTINCT FROM NEW.csrf_token OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
     OR OLD.user_id IS DISTINCT FROM NEW.user_id)
  EXECUTE FUNCTION cs_notify_auth();
--> statement-breakpoint
CREATE TRIGGER sessions_notify_auth_delete AFTER DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION cs_notify_auth();
--> statement-breakpoint
CREATE TRIGGER users_notify_auth AFTER UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION cs_notify_auth();
--> statement-breakpoint
CREATE TRIGGER roles_users_notify_auth AFTER INSERT OR UPDATE OR DELETE ON roles_users FOR EACH ROW EXECUTE FUNCTION cs_notify_auth();
--> statement-breakpoint
CREATE TRIGGER roles_notify_auth AFTER UPDATE OR DELETE ON roles FOR EACH ROW EXECUTE FUNCTION cs_notify_auth();
